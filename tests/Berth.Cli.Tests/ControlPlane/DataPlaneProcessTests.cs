using Xunit.Abstractions;

namespace Berth.Cli.Tests.ControlPlane;

/// <summary>The data plane as its own process (issue #13 §1, §6), with the real <c>berth</c> program over real replica
/// processes, under bounded loopback load: a <c>kill -9</c> of either plane, and <c>berth down</c>.</summary>
[Collection("real processes")]
public sealed class DataPlaneProcessTests : IAsyncLifetime
{
    private readonly AppFolder _app = new("berth-cli-dp-");
    private readonly ITestOutputHelper _output;
    private readonly int _port = Ports.Free();

    public DataPlaneProcessTests(ITestOutputHelper output)
    {
        _output = output;
        _app.WriteSpec(TestHttpServer.App("dataplane", port: _port));
    }

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        var dataPlane = _app.Cli.DataPlanePid();
        await _app.DisposeAsync();
        if (dataPlane is { } pid && Alive(pid))
        {
            Process.GetProcessById(pid).Kill();
        }
    }

    private static bool Alive(int pid) => Directory.Exists($"/proc/{pid}") && !File.ReadAllText($"/proc/{pid}/stat").Split(')')[^1].TrimStart().StartsWith('Z');

    private int DataPlanePid() => _app.Cli.DataPlanePid() ?? throw new InvalidOperationException($"no data-plane.json in {_app.Cli.State}: the data plane is not running");

    [Fact]
    public async Task ControlPlaneKilled9_UnderLoad_NoRequestFailsWhileItIsGoneOrAfterItReturns()
    {
        await _app.Cli.UpDetachedAsync(2);
        var dataPlane = DataPlanePid();
        await using var load = LoopbackLoad.Start(_port, new LoopbackLoadOptions { Clients = 2, MaxRequests = 200_000, MaxTime = TimeSpan.FromMinutes(5) });
        await load.MoreAsync(100);

        await _app.Cli.KillControlPlaneAsync();
        await load.MoreAsync(300);
        Assert.Equal(ExitCodes.Unavailable, (await _app.Cli.RunAsync("ps")).Code);
        Assert.True(Alive(dataPlane), "the data plane must outlive the control plane's SIGKILL");

        await _app.Cli.UpDetachedAsync(2);
        await load.MoreAsync(300);
        // The adopted data plane takes the new control plane's snapshots: a third replica joins its routes.
        await _app.Cli.OkAsync("scale", "web=3");
        await Poll.UntilAsync(() => File.ReadAllText(Path.Combine(_app.Cli.State, "data-plane-routes.json")).Split("\"replicaId\"").Length - 1 == 3,
            TimeSpan.FromSeconds(60), "3 upstreams in the data plane's applied snapshot after 'berth scale web=3'");
        await load.MoreAsync(200);
        var result = await load.StopAsync();

        _output.WriteLine($"control plane kill -9 and return under load: {result}");
        result.AssertNoneFailedUncapped();
        Assert.Equal(dataPlane, DataPlanePid());
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task DataPlaneKilled9_StandbyPromotedOrNewOneStarted_TrafficResumesWithinAMeasuredGap(bool standby)
    {
        if (!standby)
        {
            _app.Cli.Environment["BERTH_DATA_PLANE_STANDBY"] = "0";
        }

        await _app.Cli.UpDetachedAsync(2);
        var controlPlane = _app.Cli.ControlPlanePid()!.Value;
        var old = DataPlanePid();
        var standbyFile = Path.Combine(_app.Cli.State, "data-plane-standby.json");
        if (standby)
        {
            await Poll.UntilAsync(() => File.Exists(standbyFile) && File.ReadAllText(Path.Combine(_app.Cli.State, "control-plane.log")).Contains("Standby data plane", StringComparison.Ordinal),
                TimeSpan.FromSeconds(60), "the standby data plane started and connected");
        }
        else
        {
            Assert.False(File.Exists(standbyFile), "BERTH_DATA_PLANE_STANDBY=0 still started a standby");
        }

        var expected = standby ? ReadPid(standbyFile) : (int?)null;
        using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false, ConnectTimeout = TimeSpan.FromSeconds(1), PooledConnectionLifetime = TimeSpan.Zero })
        {
            BaseAddress = new Uri($"http://127.0.0.1:{_port}"),
            Timeout = TimeSpan.FromSeconds(2),
        };
        Assert.Equal("ok", await http.GetStringAsync("/"));

        Process.GetProcessById(old).Kill();
        var gap = Stopwatch.StartNew();
        var failed = 0;
        string? lastError = null;
        // Bounded: one GET at a time, at most 60s or 100,000 attempts, until one is answered.
        while (gap.Elapsed < TimeSpan.FromSeconds(60) && failed < 100_000)
        {
            try
            {
                if (await http.GetStringAsync("/") == "ok")
                {
                    break;
                }
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
            {
                failed++;
                lastError = e.Message;
            }

            await Task.Delay(1);
        }

        gap.Stop();
        _output.WriteLine($"data plane kill -9 ({(standby ? "standby promoted" : "no standby: a new one started")}): first answered GET {gap.ElapsedMilliseconds} ms after the kill ({failed} GETs failed before it; last error: {lastError})");
        Assert.True(gap.Elapsed < TimeSpan.FromSeconds(60), $"no GET answered within 60s of the data plane's SIGKILL ({failed} failed; last: {lastError})");
        await Poll.UntilAsync(() => _app.Cli.DataPlanePid() is { } now && now != old, TimeSpan.FromSeconds(30), "data-plane.json naming the data plane that replaced the killed one");
        var replacement = DataPlanePid();
        if (expected is { } promoted)
        {
            Assert.Equal(promoted, replacement);
            await Poll.UntilAsync(() => File.Exists(standbyFile) && ReadPid(standbyFile) is { } next && next != promoted && Alive(next),
                TimeSpan.FromSeconds(60), "a new standby started after the old one was promoted");
        }

        Assert.True(Alive(replacement), $"the new data plane {replacement} is running");
        Assert.Equal(controlPlane, _app.Cli.ControlPlanePid());

        await using var load = LoopbackLoad.Start(_port, new LoopbackLoadOptions { Clients = 2, MaxRequests = 10_000, MaxTime = TimeSpan.FromMinutes(2) });
        await load.MoreAsync(200);
        (await load.StopAsync()).AssertNoneFailedUncapped();
    }

    [Fact]
    public async Task Upgrade_ControlPlaneOfANewerBuild_PassesTheListeningSocketsToANewDataPlane_NoConnectionRefused()
    {
        // The first control plane and its data planes pose as an older Berth.
        // A fresh connection per request: every request is also a connect, so a port closed for any moment refuses some.
        var (old, result, log) = await UpgradeFromOlderUnderLoadAsync(freshConnections: true);

        var took = System.Text.RegularExpressions.Regex.Match(log, $@"Took 1 listening sockets over from data plane {old} in [0-9.]+ ms");
        _output.WriteLine($"hand-over under load (fresh connection per request): {result}; {took.Value}");
        Assert.True(took.Success, $"the new data plane should have taken the old one's listening socket over:\n{log}");
        Assert.Contains($"Passed 1 listening sockets to data plane {_app.Cli.DataPlanePid()}", log, StringComparison.Ordinal);
        Assert.Contains("Let go of 1 passed listening sockets", log, StringComparison.Ordinal);
        // The port never closes: the old and the new data plane hold the same socket until the old one lets go of it.
        result.AssertNoneFailedUncapped();
        Assert.DoesNotContain("older", File.ReadAllText(Path.Combine(_app.Cli.State, "data-plane.json")), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Upgrade_OldDataPlaneDoesNotPass_NewOneBindsEachPortTheMomentItIsFree_ClosedOnlyBriefly()
    {
        // An older Berth whose data plane cannot pass sockets (as before round 6): BERTH_DATA_PLANE_PASS=0 makes it answer
        // 'pass' with an error, so the hand-over falls back to binding each port the moment the old one closes it.
        _app.Cli.Environment["BERTH_DATA_PLANE_PASS"] = "0";
        var (_, result, log) = await UpgradeFromOlderUnderLoadAsync(freshConnections: false);

        var tookOver = System.Text.RegularExpressions.Regex.Match(log, @"Took the port of web\.http over [0-9.]+ ms after the hand-over began \((?<refused>[0-9]+) binds refused");
        _output.WriteLine($"bind-ahead hand-over under load: {result}; {tookOver.Value}");
        Assert.True(tookOver.Success, $"the new data plane bound the port ahead of its listener:\n{log}");
        Assert.DoesNotContain("listening sockets over", log, StringComparison.Ordinal);
        // Between the old data plane's close and the new one's bind (retried on a thread of its own) the port refuses
        // connections: brief, under 1% of the requests of this load.
        Assert.False(result.Capped, result.ToString());
        Assert.True(result.Failed * 100 < result.Total, $"more than 1% of requests failed in the hand-over: {result}");
        Assert.All(result.FirstErrors, e => Assert.Contains("Connection refused", e, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Up_DataPlaneProcess_ThreadPoolWorkersDoNotSpin()
    {
        await _app.Cli.UpDetachedAsync(2);
        var dataPlane = DataPlanePid();

        // DataPlaneRuntime.Environment reaches the process that serves traffic (docs/benchmarks.md, "Mesh round 7").
        var environment = File.ReadAllText($"/proc/{dataPlane}/environ").Split('\0');
        Assert.Contains("DOTNET_ThreadPool_UnfairSemaphoreSpinLimit=0", environment);
    }

    [Fact]
    public async Task Up_UserSetInlineSocketCompletions_TheDataPlaneRunsWithThemAndServes()
    {
        // Off by default (DataPlaneRuntime.Environment); a DOTNET_ variable given to berth up reaches the data plane.
        _app.Cli.Environment["DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS"] = "1";
        await _app.Cli.UpDetachedAsync(2);
        var dataPlane = DataPlanePid();

        var environment = File.ReadAllText($"/proc/{dataPlane}/environ").Split('\0');
        Assert.Contains("DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=1", environment);
        Assert.Contains("DOTNET_ThreadPool_UnfairSemaphoreSpinLimit=0", environment);
        await using var load = LoopbackLoad.Start(_port, new LoopbackLoadOptions { Clients = 2, MaxRequests = 10_000, MaxTime = TimeSpan.FromMinutes(2) });
        await load.MoreAsync(200);
        var result = await load.StopAsync();
        Assert.Equal(0, result.Failed);
    }

    [Fact]
    public async Task Down_StopsTheDataPlaneAfterTheReplicas_NothingOfItLeft()
    {
        await _app.Cli.UpDetachedAsync(2);
        var dataPlane = DataPlanePid();
        var replicas = (await _app.Cli.PsAsync()).Select(r => r.GetProperty("pid").GetInt32()).ToList();

        await _app.Cli.OkAsync("down");

        Assert.False(Alive(dataPlane), $"data plane {dataPlane} still running after 'berth down'");
        Assert.All(replicas, pid => Assert.False(Alive(pid), $"replica {pid} still running after 'berth down'"));
        Assert.Equal(["data-plane-token", "data-plane.log"], Directory.EnumerateFiles(_app.Cli.State, "data-plane*").Select(Path.GetFileName).Order(StringComparer.Ordinal));
        Assert.DoesNotContain(Process.GetProcesses(), p => Alive(p.Id) && ReadCmdline(p.Id).Contains(_app.Cli.State, StringComparison.Ordinal) && ReadCmdline(p.Id).Contains("__data-plane", StringComparison.Ordinal));
        var log = File.ReadAllText(Path.Combine(_app.Cli.State, "data-plane.log"));
        // Last: the data plane closed the listener (its replicas had left the routes) before it was told to stop.
        var listenerStopped = log.IndexOf("Mesh listener for web.http stopped", StringComparison.Ordinal);
        var told = log.IndexOf("Stopping at the control plane's request", StringComparison.Ordinal);
        Assert.True(listenerStopped >= 0 && told > listenerStopped, $"the data plane's log should show the listener stopped, then the stop request:\n{log}");
    }

    [Fact]
    public async Task Down_AfterControlPlaneKilled9_StopsTheDataPlaneItLeft()
    {
        await _app.Cli.UpDetachedAsync(2);
        var dataPlane = DataPlanePid();
        await _app.Cli.KillControlPlaneAsync();

        var down = await _app.Cli.OkAsync("down");

        Assert.Contains("stopped 2 replicas left by a control plane that is gone", down.Err, StringComparison.Ordinal);
        await Poll.UntilAsync(() => !Alive(dataPlane), TimeSpan.FromSeconds(20), $"data plane {dataPlane} stopped by 'berth down'");
        Assert.Null(_app.Cli.DataPlanePid());
    }

    /// <summary>Starts the app under a control plane and data plane posing as an older Berth (BERTH_DATA_PLANE_BUILD=older),
    /// puts bounded loopback load on it, kills the older control plane with SIGKILL and starts one of this build, which
    /// replaces the older data plane; returns the older data plane's pid, the load's result and the data plane log.</summary>
    private async Task<(int Old, LoopbackLoadResult Result, string Log)> UpgradeFromOlderUnderLoadAsync(bool freshConnections)
    {
        _app.Cli.Environment["BERTH_DATA_PLANE_BUILD"] = "older";
        await _app.Cli.UpDetachedAsync(2);
        var old = DataPlanePid();
        await using var load = LoopbackLoad.Start(_port, new LoopbackLoadOptions { Clients = 2, FreshConnections = freshConnections, MaxRequests = 200_000, MaxTime = TimeSpan.FromMinutes(5) });
        await load.MoreAsync(100);
        await _app.Cli.KillControlPlaneAsync("the older control plane");

        _app.Cli.Environment.Remove("BERTH_DATA_PLANE_BUILD");
        await _app.Cli.UpDetachedAsync(2);
        await Poll.UntilAsync(() => !Alive(old) && _app.Cli.DataPlanePid() is { } now && now != old, TimeSpan.FromSeconds(60), "the older data plane replaced by one of this build");
        await load.MoreAsync(300);
        var result = await load.StopAsync();
        return (old, result, File.ReadAllText(Path.Combine(_app.Cli.State, "data-plane.log")));
    }

    private static int? ReadPid(string infoFile)
    {
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(infoFile));
            return doc.RootElement.GetProperty("pid").GetInt32();
        }
        catch (Exception e) when (e is IOException or JsonException)
        {
            return null;
        }
    }

    private static string ReadCmdline(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/cmdline").Replace('\0', ' ');
        }
        catch (IOException)
        {
            return "";
        }
    }
}
