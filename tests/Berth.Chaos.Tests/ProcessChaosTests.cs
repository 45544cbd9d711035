namespace Berth.Chaos.Tests;

/// <summary>
/// Issue #14's chaos suite: faults injected under paced loopback load into a real app run by the real <c>berth</c>, each
/// scenario recording failed requests, recovery time and what was lost. Bounded (every load ≤ 2 min and 60,000 requests,
/// every wait has a deadline) and loopback only. docs/reliability.md holds the table these numbers fill.
/// </summary>
[Collection("chaos")]
[Trait("Category", "Chaos")]
public sealed class ProcessChaosTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task Kill9_Replica_NoRequestFailsReplicaBackNothingLost()
    {
        await using var app = new ChaosApp("replica");
        await using var load = await app.UpUnderLoadAsync(2);
        var events = await app.EventIdsAsync();

        var victim = (await app.PidsAsync()).Values.First();
        var clock = Stopwatch.StartNew();
        Process.GetProcessById(victim).Kill();
        await Poll.UntilAsync(async () => !(await app.PidsAsync()).ContainsValue(victim) && await app.ReadyAsync() == 2, Deadline, "2 ready replicas again after the kill");
        var recovery = clock.Elapsed;
        await load.MoreAsync(200);
        var result = await load.StopAsync();

        var orphans = await app.OrphansAsync();
        var after = await app.EventIdsAsync();
        new ChaosResult("kill -9 of a replica", result, recovery, $"events {events.Except(after).Count()}, orphans {orphans.Count}").Report(output);
        result.AssertNoneFailedUncapped();
        Assert.Empty(orphans);
        Assert.Empty(events.Except(after));
    }

    [Fact]
    public async Task Kill9_Supervisor_NoRequestFailsNoOrphanLeft()
    {
        await using var app = new ChaosApp("supervisor");
        await using var load = await app.UpUnderLoadAsync(2);

        var replica = (await app.PidsAsync()).Values.First();
        var supervisor = ParentOf(replica);
        Assert.Contains("supervisor", File.ReadAllText($"/proc/{supervisor}/cmdline"), StringComparison.Ordinal);
        var clock = Stopwatch.StartNew();
        Process.GetProcessById(supervisor).Kill();
        // The replica outlives its supervisor (as a container outlives a killed shim): it is still Running by its pid and
        // start time, so it is kept; what goes is its log capture and exit record until it is next restarted.
        await load.MoreAsync(400);
        await Poll.UntilAsync(async () => await app.ReadyAsync() == 2 && (await app.OrphansAsync()).Count == 0, Deadline, "2 ready replicas and no orphan");
        var recovery = clock.Elapsed;
        var result = await load.StopAsync();

        var kept = (await app.PidsAsync()).ContainsValue(replica);
        new ChaosResult("kill -9 of a replica's supervisor", result, recovery,
            $"orphans {(await app.OrphansAsync()).Count}; the replica {(kept ? "kept running (its log capture lost)" : "replaced")}").Report(output);
        result.AssertNoneFailedUncapped();
        Assert.Empty(await app.OrphansAsync());
    }

    [Fact]
    public async Task Kill9_ControlPlaneMidRollout_RolloutCompletesAfterRestartNothingLost()
    {
        await using var app = new ChaosApp("rollout", replicas: 3);
        await using var load = await app.UpUnderLoadAsync(3);
        var events = await app.EventIdsAsync();

        app.WriteSpec(3, env: "2");
        var applied = await app.Cli.RunAsync("up", "-d");
        Assert.True(applied.Code == 0, $"berth up -d with version 2: {applied}");
        await Poll.UntilAsync(async () => (await app.Cli.EventsAsync()).Any(e => e.GetProperty("type").GetString() == "started" && e.GetProperty("id").GetInt64() > events[^1]),
            Deadline, "the first replica of version 2 started");
        var revisions = await RevisionsAsync(app);
        var before = await app.EventIdsAsync();
        var clock = Stopwatch.StartNew();
        await app.KillControlPlaneAsync();

        var up = await app.Cli.RunAsync("up", "-d");
        Assert.True(up.Code == 0, $"berth up -d after the kill: {up}");
        await Poll.UntilAsync(async () =>
        {
            var ps = await app.Cli.PsAsync();
            return ps.Count == 3 && ps.All(r => r.GetProperty("phase").GetString() == "ready" && r.GetProperty("revision").GetInt64() == revisions.Max());
        }, Deadline, "3 ready replicas of the new revision");
        var recovery = clock.Elapsed;
        await load.MoreAsync(200);
        var result = await load.StopAsync();

        var after = await app.EventIdsAsync();
        var orphans = await app.OrphansAsync();
        var lostRevisions = revisions.Except(await RevisionsAsync(app)).Count();
        new ChaosResult("kill -9 of the control plane mid-rollout (the data plane is in its process)", result, recovery,
            $"events {before.Except(after).Count()}, revisions {lostRevisions}, orphans {orphans.Count}").Report(output);
        Assert.Empty(before.Except(after));
        Assert.Equal(0, lostRevisions);
        Assert.Empty(orphans);
        Assert.False(result.Capped, result.ToString());
    }

    [Fact]
    public async Task Kill9_ControlPlaneMidScale_ScaleCompletesAfterRestartNoOrphan()
    {
        await using var app = new ChaosApp("scale", replicas: 2);
        await using var load = await app.UpUnderLoadAsync(2);

        app.WriteSpec(6);
        var applied = await app.Cli.RunAsync("up", "-d");
        Assert.True(applied.Code == 0, $"berth up -d with 6 replicas: {applied}");
        await Poll.UntilAsync(() => app.LiveReplicaProcesses().Count >= 3, Deadline, "the scale under way (a third replica process)");
        var events = await app.EventIdsAsync();
        var clock = Stopwatch.StartNew();
        await app.KillControlPlaneAsync();
        var startedBeforeKill = app.LiveReplicaProcesses();

        var up = await app.Cli.RunAsync("up", "-d");
        Assert.True(up.Code == 0, $"berth up -d after the kill: {up}");
        await Poll.UntilAsync(async () => await app.ReadyAsync() == 6 && (await app.Cli.PsAsync()).Count == 6, Deadline, "6 ready replicas");
        var recovery = clock.Elapsed;
        await load.MoreAsync(200);
        var result = await load.StopAsync();

        var orphans = await app.OrphansAsync();
        var pids = (await app.PidsAsync()).Values.ToHashSet();
        var adopted = startedBeforeKill.Count(pids.Contains);
        new ChaosResult("kill -9 of the control plane mid-scale (2 → 6)", result, recovery,
            $"events {events.Except(await app.EventIdsAsync()).Count()}, orphans {orphans.Count}; {adopted} of {startedBeforeKill.Count} replicas running at the kill adopted").Report(output);
        Assert.Empty(orphans);
        Assert.Empty(events.Except(await app.EventIdsAsync()));
        Assert.Equal(6, app.LiveReplicaProcesses().Count);
    }

    [RootFact]
    public async Task DiskFull_StateFolder_NoRequestFails507ThenHealsOnceFreed()
    {
        await using var app = new ChaosApp("diskfull");
        var disk = app.StateOnTmpfs(4096);
        await using var load = await app.UpUnderLoadAsync(2);
        using var api = app.Api();

        disk.Fill();
        var refused = await api.SendAsync(HttpMethod.Post, "/v1/services/web/scale", """{"replicas": 3}""");
        Assert.Equal(507, refused.Status);
        await load.MoreAsync(400);
        var clock = Stopwatch.StartNew();
        disk.Free();
        await Poll.UntilAsync(async () => (await api.SendAsync(HttpMethod.Post, "/v1/services/web/scale", """{"replicas": 3}""")).Status == 200, Deadline, "the scale accepted once space is freed");
        await Poll.UntilAsync(async () => await app.ReadyAsync() == 3, Deadline, "3 ready replicas");
        var recovery = clock.Elapsed;
        await load.MoreAsync(200);
        var result = await load.StopAsync();

        new ChaosResult("state folder's disk full (4 MiB tmpfs), then freed", result, recovery, $"the refused scale (507, nothing changed); orphans {(await app.OrphansAsync()).Count}").Report(output);
        result.AssertNoneFailedUncapped();
        Assert.Empty(await app.OrphansAsync());
    }

    [RootFact]
    public async Task ReadOnly_StateFolderAfterControlPlaneKill_UpRefusesClearlyDownStopsEverythingUpAgainOnceWritable()
    {
        await using var app = new ChaosApp("readonly");
        await using var load = await app.UpUnderLoadAsync(2);
        var pids = (await app.PidsAsync()).Values.ToList();

        // A live SQLite keeps its files open read-write, so a read-only remount under it is refused ("busy"); the fault
        // is met where it bites: a control plane starting on a read-only state folder.
        await app.KillControlPlaneAsync();
        var clock = Stopwatch.StartNew();
        CliResult up, down;
        LoopbackLoadResult result;
        using (Mount.ReadOnly(app.State))
        {
            // No control plane, and none can start: the data plane (its own process) keeps serving its last routes.
            await load.MoreAsync(200);
            up = await app.Cli.RunAsync("up", "-d");
            await load.MoreAsync(200);
            result = await load.StopAsync();
            down = await app.Cli.RunAsync("down");
        }

        await app.UpAsync(2);
        var recovery = clock.Elapsed;
        await using var again = app.Load();
        await again.MoreAsync(200);
        var afterwards = await again.StopAsync();

        new ChaosResult("read-only state folder after a control-plane kill: up refused (load until here), down, writable, up", result, recovery,
            $"replicas left running after down: {pids.Count(p => Directory.Exists($"/proc/{p}"))}; orphans {(await app.OrphansAsync()).Count}; after the new up {afterwards.Failed} of {afterwards.Total} failed").Report(output);
        result.AssertNoneFailedUncapped();
        afterwards.AssertNoneFailedUncapped();
        Assert.True(up.Code == 6, $"berth up -d on a read-only state folder: {up}");
        Assert.Contains("is read-only", up.Err, StringComparison.Ordinal);
        Assert.True(down.Code == 0, $"berth down on a read-only state folder: {down}");
        Assert.All(pids, p => Assert.False(Directory.Exists($"/proc/{p}"), $"replica {p} still runs after down"));
        Assert.Empty(await app.OrphansAsync());
    }

    [Fact]
    public async Task CorruptDatabase_AfterControlPlaneKill_UpRefusesClearlyDownStopsEverything()
    {
        await using var app = new ChaosApp("corrupt");
        await using var load = await app.UpUnderLoadAsync(2);
        var pids = (await app.PidsAsync()).Values.ToList();

        await app.KillControlPlaneAsync();
        var db = Path.Combine(app.State, "state.db");
        File.WriteAllBytes(db, [.. Enumerable.Repeat((byte)0x5a, 8192)]);
        File.Delete(db + "-wal");
        File.Delete(db + "-shm");
        var clock = Stopwatch.StartNew();
        // No control plane, and none can start: the data plane (its own process) keeps serving its last routes.
        await load.MoreAsync(200);
        var up = await app.Cli.RunAsync("up", "-d");
        await load.MoreAsync(200);
        var result = await load.StopAsync();
        var down = await app.Cli.RunAsync("down");
        var recovery = clock.Elapsed;

        new ChaosResult("state.db overwritten after a control-plane kill: up refused (load until here), then down", result, recovery,
            $"history and events (the file); replicas left running after down: {pids.Count(p => Directory.Exists($"/proc/{p}"))}").Report(output);
        result.AssertNoneFailedUncapped();
        Assert.True(up.Code == 6, $"berth up -d on a damaged store: {up}");
        Assert.Contains("is damaged", up.Err, StringComparison.Ordinal);
        Assert.True(down.Code == 0, $"berth down on a damaged store: {down}");
        Assert.All(pids, p => Assert.False(Directory.Exists($"/proc/{p}"), $"replica {p} still runs after down"));
    }

    private static int ParentOf(int pid)
    {
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return int.Parse(fields[1], System.Globalization.CultureInfo.InvariantCulture);
    }

    private static async Task<List<long>> RevisionsAsync(ChaosApp app)
    {
        using var api = app.Api();
        return [.. (await api.GetAsync("/v1/revisions")).EnumerateArray().Select(r => r.GetProperty("number").GetInt64())];
    }
}

[CollectionDefinition("chaos", DisableParallelization = true)]
public sealed class ChaosCollection;
