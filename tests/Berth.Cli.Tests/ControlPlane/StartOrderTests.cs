namespace Berth.Cli.Tests.ControlPlane;

/// <summary>Issue #21 (round 6) with the real <c>berth</c>: the detached control plane applies its spec as soon as the
/// controllers have adopted, before the API's Kestrel starts, and what it moved off the critical path (the telemetry
/// receiver, the network-namespace probe) still comes up: the replicas get the receiver's exporter settings and the
/// app serves, through the API that started after the apply.</summary>
[Collection("real processes")]
public sealed class StartOrderTests : IAsyncLifetime
{
    private readonly AppFolder _app = new("berth-cli-order-", TestHttpServer.App("order"));

    public Task InitializeAsync() => Task.CompletedTask;

    // IAsyncLifetime, not IAsyncDisposable: xunit v2 never calls a test class's IAsyncDisposable.DisposeAsync (v3 does), so
    // whatever the test started (its app, control plane, data plane, replicas) would be left running.
    public async Task DisposeAsync()
    {
        await _app.Cli.DownAsync();
        await _app.DisposeAsync();
    }

    /// <summary>The control plane's startup-trace milestones in the order it wrote them.</summary>
    private List<string> Milestones() =>
        [.. File.ReadAllLines(Path.Combine(_app.State, "control-plane.log"))
            .Where(l => l.StartsWith("startup-trace ", StringComparison.Ordinal))
            .Select(l => l.Split(' ', 4) is { Length: 4 } p ? p[3] : "")];

    [Fact]
    public async Task UpDetached_Traced_SpecAppliedBeforeApiStartsAndEverythingComesUp()
    {
        _app.Cli.Environment["BERTH_TRACE_STARTUP"] = "1";
        await _app.Cli.UpDetachedAsync(2);

        var milestones = Milestones();
        int At(string what)
        {
            var i = milestones.IndexOf(what);
            Assert.True(i >= 0, $"no '{what}' in the control plane's trace:\n{string.Join('\n', milestones)}");
            return i;
        }

        Assert.True(At("host: control plane started (adopted)") < At("daemon: applying"), string.Join('\n', milestones));
        Assert.True(At("daemon: applied") < At("host: api started"), string.Join('\n', milestones));
        Assert.True(At("host: telemetry receiver started") < At("daemon: applying"), string.Join('\n', milestones));
        Assert.True(At("host: network namespaces probed") < At("daemon: applying"), string.Join('\n', milestones));

        // The receiver, started beside the store, still gives every replica its exporter settings.
        foreach (var replica in await _app.Cli.PsAsync())
        {
            var pid = replica.GetProperty("pid").GetInt32();
            var environment = File.ReadAllText($"/proc/{pid}/environ").Split('\0');
            Assert.Contains(environment, v => v.StartsWith("OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:", StringComparison.Ordinal));
        }

        // The apply's events reached the control plane's own log (its printer starts before the apply, as before).
        var log = File.ReadAllText(Path.Combine(_app.State, "control-plane.log"));
        Assert.Contains("web-", log, StringComparison.Ordinal);
    }
}
