
namespace Berth.Cli.Tests.ControlPlane;

/// <summary>Issue #14 §13 through the real <c>berth</c> program: a replica whose readiness probe fails says why in
/// <c>berth ps</c>, and each transition is an event.</summary>
[Collection("real processes")]
public sealed class ReadinessCliTests : AppFolderTest
{
    public ReadinessCliTests()
        : base("berth-cli-ready-")
    {
        App.Write("sick", "");
        App.WriteSpec($$"""
            name: readiness
            services:
              web:
                run: {{TestHttpServer.Yaml}}
                environment: {SICK: {{App.File("sick")}}}
                endpoints:
                  http: {}
                probes:
                  readiness: {http: /healthz, period: 300ms, failure_threshold: 3}
                stop_grace_period: 1s
            """);
    }

    [Fact]
    public async Task Ps_ReadinessAnswering500_ShowsWhyNotReadyAndEventsOnEachTransition()
    {
        await App.Cli.OkAsync("up", "-d");
        await Poll.UntilAsync(async () => (await App.Cli.PsAsync()).SingleOrDefault() is { } r && r.TryGetProperty("reason", out var reason) && reason.GetString() is { } why &&
            why.StartsWith("readiness: HTTP 500 from GET /healthz, ", StringComparison.Ordinal) && InARow(why) >= 3,
            TimeSpan.FromSeconds(60), "ps -o json to give the readiness failure as the reason, 3 or more in a row");
        var table = await App.Cli.OkAsync("ps");
        Assert.Matches(@"web-[0-9a-f]{5} +web +running .*readiness: HTTP 500 from GET /healthz, \d+ in a row", table.Out);

        File.Delete(App.File("sick"));
        await Poll.UntilAsync(async () => await App.Cli.CountAsync("ready") == 1, TimeSpan.FromSeconds(60), "Ready once the probe passes");
        Assert.False((await App.Cli.PsAsync()).Single().TryGetProperty("reason", out var reason), $"no reason once Ready, got {reason}");

        var transitions = (await App.Cli.EventsAsync()).Where(e => e.GetProperty("type").GetString() is "not-ready" or "ready")
            .OrderBy(e => e.GetProperty("id").GetInt64())
            .Select(e => $"{e.GetProperty("type").GetString()}: {e.GetProperty("message").GetString()}").ToList();
        Assert.Equal(2, transitions.Count);
        Assert.Equal("not-ready: not ready: readiness: HTTP 500 from GET /healthz, 3 in a row", transitions[0]);
        Assert.StartsWith("ready: ready ", transitions[1], StringComparison.Ordinal);
    }

    private static int InARow(string why) =>
        int.Parse(why[(why.LastIndexOf(", ", StringComparison.Ordinal) + 2)..why.IndexOf(" in a row", StringComparison.Ordinal)], CultureInfo.InvariantCulture);
}
