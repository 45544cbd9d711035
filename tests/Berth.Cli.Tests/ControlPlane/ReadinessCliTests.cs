
namespace Berth.Cli.Tests.ControlPlane;

/// <summary>Issue #14 §13 through the real <c>berth</c> program: a replica whose readiness probe fails says why in
/// <c>berth ps</c>, and each transition is an event.</summary>
[Collection("real processes")]
public sealed class ReadinessCliTests : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("berth-cli-ready-").FullName;
    private readonly BerthCli _cli;

    public ReadinessCliTests()
    {
        _cli = new BerthCli(_dir);
        File.WriteAllText(Path.Combine(_dir, "sick"), "");
        File.WriteAllText(Path.Combine(_dir, "berth.yaml"), $$"""
            name: readiness
            services:
              web:
                run: {{TestHttpServer.Yaml}}
                environment: {SICK: {{Path.Combine(_dir, "sick")}}}
                endpoints:
                  http: {}
                probes:
                  readiness: {http: /healthz, period: 300ms, failure_threshold: 3}
                stop_grace_period: 1s
            """);
    }

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        await _cli.DownAsync();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public async Task Ps_ReadinessAnswering500_ShowsWhyNotReadyAndEventsOnEachTransition()
    {
        await _cli.OkAsync("up", "-d");
        await Poll.UntilAsync(async () => (await _cli.PsAsync()).SingleOrDefault() is { } r && r.TryGetProperty("reason", out var reason) && reason.GetString() is { } why &&
            why.StartsWith("readiness: HTTP 500 from GET /healthz, ", StringComparison.Ordinal) && InARow(why) >= 3,
            TimeSpan.FromSeconds(60), "ps -o json to give the readiness failure as the reason, 3 or more in a row");
        var table = await _cli.OkAsync("ps");
        Assert.Matches(@"web-[0-9a-f]{5} +web +running .*readiness: HTTP 500 from GET /healthz, \d+ in a row", table.Out);

        File.Delete(Path.Combine(_dir, "sick"));
        await Poll.UntilAsync(async () => await _cli.CountAsync("ready") == 1, TimeSpan.FromSeconds(60), "Ready once the probe passes");
        Assert.False((await _cli.PsAsync()).Single().TryGetProperty("reason", out var reason), $"no reason once Ready, got {reason}");

        var transitions = (await _cli.EventsAsync()).Where(e => e.GetProperty("type").GetString() is "not-ready" or "ready")
            .OrderBy(e => e.GetProperty("id").GetInt64())
            .Select(e => $"{e.GetProperty("type").GetString()}: {e.GetProperty("message").GetString()}").ToList();
        Assert.Equal(2, transitions.Count);
        Assert.Equal("not-ready: not ready: readiness: HTTP 500 from GET /healthz, 3 in a row", transitions[0]);
        Assert.StartsWith("ready: ready ", transitions[1], StringComparison.Ordinal);
    }

    private static int InARow(string why) =>
        int.Parse(why[(why.LastIndexOf(", ", StringComparison.Ordinal) + 2)..why.IndexOf(" in a row", StringComparison.Ordinal)], CultureInfo.InvariantCulture);
}
