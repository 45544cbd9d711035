
namespace Berth.Cli.Tests.ControlPlane;

/// <summary>The real <c>berth</c> binary: a detached control plane over real processes, killed with SIGKILL and started again.</summary>
[Collection("real processes")]
public sealed class UpDownTests : IDisposable
{
    private readonly AppFolder _app = new("berth-cli-up-", TestHttpServer.App("updown"));

    public void Dispose() => _app.Dispose();

    private CliResult Berth(params string[] args) => _app.Cli.Run(args);

    private List<JsonElement> Ps() => _app.Cli.PsAsync().GetAwaiter().GetResult();

    private int ControlPlanePid() => _app.Cli.ControlPlanePid() ?? throw new InvalidOperationException("no api.json: the control plane is not running");

    [Fact]
    public async Task UpDetached_ControlPlaneKilled9_RestartAdoptsReplicasWithoutRestartingThem()
    {
        var (code, _, err) = Berth("up", "-d");
        Assert.True(code == 0, $"berth up -d failed ({code}): {err}");
        Assert.Contains("control plane running in the background", err, StringComparison.Ordinal);
        await Poll.UntilAsync(() => Ps().Count(r => r.GetProperty("phase").GetString() == "ready") == 2, TimeSpan.FromSeconds(60), "2 Ready replicas");
        var before = Ps().ToDictionary(r => r.GetProperty("id").GetString()!, r => r.GetProperty("pid").GetInt32());
        // The store commits a pass's events together, so 'events' can trail what 'ps' shows for a moment (seen under load
        // in CI: the start events came after this read and counted as new): wait for both replicas' ready events.
        string[] eventsBefore = [];
        await Poll.UntilAsync(() =>
        {
            eventsBefore = Berth("events", "-o", "json").Out.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            return eventsBefore.Count(e => JsonDocument.Parse(e).RootElement.GetProperty("type").GetString() == "ready") == 2;
        }, TimeSpan.FromSeconds(30), "both replicas' ready events in 'berth events'");

        var controlPlane = ControlPlanePid();
        Process.GetProcessById(controlPlane).Kill();
        await Poll.UntilAsync(() => !Directory.Exists($"/proc/{controlPlane}"), TimeSpan.FromSeconds(20), "the control plane gone");
        Assert.All(before.Values, pid => Assert.True(Directory.Exists($"/proc/{pid}"), $"replica pid {pid} must survive the control plane's SIGKILL"));
        // ps reads the drivers' records: both replicas, running and unmanaged, and how to resume (issue #14 §15).
        var ps = Berth("ps");
        Assert.Equal(ExitCodes.Unavailable, ps.Code);
        Assert.Contains("2 replicas still run unmanaged (nothing restarts, probes or routes them); 'berth up -d' resumes managing them without restarting them, 'berth down' stops them", ps.Err, StringComparison.Ordinal);
        var unmanaged = ps.Out.Split('\n').Where(l => l.StartsWith("web-", StringComparison.Ordinal)).ToList();
        Assert.Equal(before.Keys.Order(), unmanaged.Select(l => l.Split(' ')[0]).Order());
        Assert.All(unmanaged, l => Assert.Contains(" running ", l, StringComparison.Ordinal));
        Assert.All(unmanaged, l => Assert.EndsWith("unmanaged: no control plane; 'berth up -d' resumes", l, StringComparison.Ordinal));
        var psJson = Berth("ps", "-o", "json");
        Assert.Equal(before, JsonDocument.Parse(psJson.Out).RootElement.EnumerateArray().ToDictionary(r => r.GetProperty("id").GetString()!, r => r.GetProperty("pid").GetInt32()));

        (code, _, err) = Berth("up", "-d");
        Assert.True(code == 0, $"second berth up -d failed ({code}): {err}");
        await Poll.UntilAsync(() => Ps().Count(r => r.GetProperty("phase").GetString() == "ready") == 2, TimeSpan.FromSeconds(60), "2 Ready after adoption");
        Assert.Equal(before, Ps().ToDictionary(r => r.GetProperty("id").GetString()!, r => r.GetProperty("pid").GetInt32()));
        var eventsAfter = Berth("events", "-o", "json").Out.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(eventsBefore, eventsAfter.Take(eventsBefore.Length));
        var newer = eventsAfter.Skip(eventsBefore.Length).Select(e => JsonDocument.Parse(e).RootElement.GetProperty("type").GetString()).ToList();
        Assert.Equal(2, newer.Count(t => t == "adopted"));
        Assert.DoesNotContain("started", newer);

        // Scaling takes effect within a second of the request.
        var scale = Berth("scale", "web=3");
        Assert.True(scale.Code == 0, scale.Err);
        await Poll.UntilAsync(() => Ps().Count(r => r.GetProperty("phase").GetString() == "ready") == 3, TimeSpan.FromSeconds(60), "3 Ready after scale");
        var events = Berth("events", "-o", "json").Out.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(e => JsonDocument.Parse(e).RootElement).ToList();
        var scaled = events.Last(e => e.GetProperty("type").GetString() == "scaled").GetProperty("time").GetDateTimeOffset();
        var scheduled = events.Last(e => e.GetProperty("type").GetString() == "scheduled").GetProperty("time").GetDateTimeOffset();
        Assert.True(scheduled - scaled < TimeSpan.FromSeconds(1), $"scheduled {scheduled - scaled} after the scale request");

        var down = Berth("down");
        Assert.True(down.Code == 0, down.Err);
        await Poll.UntilAsync(() => before.Values.All(pid => !Directory.Exists($"/proc/{pid}")), TimeSpan.FromSeconds(30), "replicas stopped by berth down");
    }

    [Fact]
    public async Task UpForeground_CtrlC_StopsEveryReplicaAndExits130()
    {
        await using var up = _app.Cli.Start("up");
        await Poll.UntilAsync(() => up.ErrLines.Any(l => l.Contains("'updown' is up: 2/2 replicas ready", StringComparison.Ordinal)), TimeSpan.FromSeconds(60),
            "the foreground control plane to report all ready");
        var pids = Ps().Select(r => r.GetProperty("pid").GetInt32()).ToList();
        Assert.Equal(2, pids.Count);
        // Logs are interleaved on stdout, prefixed by replica.
        await Poll.UntilAsync(() => up.OutLines.Count(l => l.Contains("| listening on ", StringComparison.Ordinal)) == 2, TimeSpan.FromSeconds(30), "both replicas' first log line, prefixed");

        await up.InterruptAsync();

        var ended = await up.WaitAsync(TimeSpan.FromSeconds(60), "berth up to exit after Ctrl-C");
        Assert.Equal(ExitCodes.Cancelled, ended.Code);
        Assert.All(pids, pid => Assert.False(Directory.Exists($"/proc/{pid}"), $"replica pid {pid} stopped"));
        Assert.Contains(up.ErrLines, l => l.Contains("'updown' stopped", StringComparison.Ordinal));
    }

    [CgroupFact]
    public async Task UpWithNodes_Replicas_RunInTheirNodesCgroupSpreadAcrossNodes()
    {
        File.WriteAllText(Path.Combine(_app.Path, "berth.yaml"), """
            name: nodes
            nodes:
              - {name: a, cpu: 1, memory: 256Mi}
              - {name: b, cpu: 1, memory: 256Mi}
            services:
              s:
                run: [sleep, "300"]
                replicas: 2
                resources: {requests: {cpu: 500m, memory: 64Mi}}
                stop_grace_period: 1s
            """);
        var (code, _, err) = Berth("up", "-d");
        Assert.True(code == 0, err);
        await Poll.UntilAsync(() => Ps().Count(r => r.GetProperty("phase").GetString() == "ready") == 2, TimeSpan.FromSeconds(60), "2 Ready");
        var replicas = Ps();
        Assert.Equal(["a", "b"], replicas.Select(r => r.GetProperty("node").GetString()).Order());
        foreach (var r in replicas)
        {
            var cgroups = File.ReadAllText($"/proc/{r.GetProperty("pid").GetInt32()}/cgroup");
            Assert.Contains($"/berth/nodes/{r.GetProperty("node").GetString()}/{r.GetProperty("id").GetString()}", cgroups, StringComparison.Ordinal);
        }

        Assert.Equal(0, Berth("down").Code);
    }

    /// <summary>The pids of detached control planes running this folder's spec.</summary>
    private List<int> ControlPlanes()
    {
        var spec = Path.Combine(_app.Path, "berth.yaml");
        return [.. ProcFs.Pids().Where(pid => ProcFs.CommandLine(pid) is { } args && args.Contains(Commands.ControlPlaneCommands.DaemonCommand) && args.Contains(spec))];
    }

    /// <summary>Whether some process holds the state folder's lock, asked with util-linux's flock(1) as an outsider would.</summary>
    private bool LockHeld()
    {
        using var p = Process.Start(new ProcessStartInfo("flock", ["-n", Path.Combine(_app.Path, ".berth", "control-plane.lock"), "true"]) { UseShellExecute = false })!;
        p.WaitForExit();
        return p.ExitCode != 0;
    }

    [Fact]
    public async Task UpDetached_TwoAtOnce_OneControlPlaneAndTheSpecsReplicas()
    {
        var first = Task.Run(() => Berth("up", "-d"));
        var second = Task.Run(() => Berth("up", "-d"));
        var runs = await Task.WhenAll(first, second);

        Assert.All(runs, r => Assert.True(r.Code == 0, $"berth up -d failed ({r.Code}): {r.Err}"));
        await Poll.UntilAsync(() => Ps().Count(r => r.GetProperty("phase").GetString() == "ready") == 2, TimeSpan.FromSeconds(60), "2 Ready replicas");
        await Poll.UntilAsync(() => ControlPlanes().Count == 1, TimeSpan.FromSeconds(30), "the losing control plane to hand its spec over and exit");
        Assert.True(LockHeld(), "the running control plane holds the state folder's lock");
        Assert.Equal(2, Ps().Count);
        var perl = Ps().Select(r => r.GetProperty("pid").GetInt32()).ToList();
        Assert.Equal(2, perl.Distinct().Count());

        // 'berth events' pages from the newest, and says how to read the older ones.
        var all = Berth("events", "-o", "json").Out.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(e => JsonDocument.Parse(e).RootElement.GetProperty("id").GetInt64()).ToList();
        var (eventsCode, newest, hint) = Berth("events", "-o", "json", "--limit", "2");
        var ids = newest.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(e => JsonDocument.Parse(e).RootElement.GetProperty("id").GetInt64()).ToList();
        Assert.Equal(0, eventsCode);
        Assert.True(ids.Count == 2 && ids[1] >= all[^1] && ids[0] > all[^3], $"the newest two events, got {string.Join(',', ids)} of {string.Join(',', all)}");
        Assert.Contains($"older events: berth events --before {ids[0]}", hint, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Down_TwoAtOnce_NothingLeftRunning()
    {
        var (code, _, err) = Berth("up", "-d");
        Assert.True(code == 0, $"berth up -d failed ({code}): {err}");
        await Poll.UntilAsync(() => Ps().Count(r => r.GetProperty("phase").GetString() == "ready") == 2, TimeSpan.FromSeconds(60), "2 Ready replicas");
        var pids = Ps().Select(r => r.GetProperty("pid").GetInt32()).ToList();

        var downs = await Task.WhenAll(Task.Run(() => Berth("down")), Task.Run(() => Berth("down")));

        Assert.All(downs, r => Assert.True(r.Code == 0, $"berth down failed ({r.Code}): {r.Err}"));
        await Poll.UntilAsync(() => ControlPlanes().Count == 0, TimeSpan.FromSeconds(30), "no control plane left");
        await Poll.UntilAsync(() => pids.All(pid => !Directory.Exists($"/proc/{pid}")), TimeSpan.FromSeconds(30), "every replica stopped by the two 'berth down'");
        Assert.False(LockHeld(), "the state folder's lock is free once the control plane is gone");
        Assert.Equal(ExitCodes.Unavailable, Berth("ps").Code);
    }

    [Fact]
    public async Task Up_RenamedAppOnARunningControlPlane_RefusedWithoutPruneNothingChangedThenReplacedWithPrune()
    {
        await _app.Cli.UpDetachedAsync(2);
        var pids = Ps().Select(r => r.GetProperty("pid").GetInt32()).Order().ToList();
        _app.WriteSpec(TestHttpServer.App("renamed", replicas: 1));

        var refused = Berth("up", "-d");

        Assert.True(refused.Code != 0, $"a rename without --prune was accepted: {refused}");
        Assert.Contains("$.name: renaming the app 'updown' to 'renamed' removes every replica of 'updown'; apply with prune to do that ('berth up --prune', POST /v1/apply?prune=true)", refused.Err, StringComparison.Ordinal);
        Assert.Equal(pids, Ps().Select(r => r.GetProperty("pid").GetInt32()).Order().ToList());

        var pruned = Berth("up", "-d", "--prune");

        Assert.True(pruned.Code == 0, $"berth up -d --prune failed: {pruned}");
        var seen = "";
        try
        {
            await Poll.UntilAsync(() => Ps() is var now && (seen = string.Join("; ", now)) is not null && now.Count == 1 && now[0].GetProperty("phase").GetString() == "ready"
                && !pids.Contains(now[0].GetProperty("pid").GetInt32()), TimeSpan.FromSeconds(60), "the renamed app's one replica ready, the old ones gone");
        }
        catch (TimeoutException e)
        {
            throw new TimeoutException($"{e.Message}; ps: {seen}; up --prune: {pruned}", e);
        }
        await Poll.UntilAsync(() => pids.All(pid => !Directory.Exists($"/proc/{pid}")), TimeSpan.FromSeconds(30), "the old app's replicas stopped");
    }

    [Fact]
    public void Ps_NoControlPlane_UnavailableWithHowToStartOne()
    {
        var (code, _, err) = Berth("ps");
        Assert.Equal(ExitCodes.Unavailable, code);
        Assert.Equal($"berth: error: no control plane is running for this app (state folder {Path.Combine(_app.Path, ".berth")}); start one with 'berth up' or 'berth up -d'\n", err);
    }
}
