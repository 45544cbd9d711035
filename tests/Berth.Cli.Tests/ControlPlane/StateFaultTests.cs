using System.Diagnostics;
using System.Text.Json;

namespace Berth.Cli.Tests.ControlPlane;

/// <summary>Issue #14 §4 with the real <c>berth</c>: a damaged, read-only or full state folder gives a clear error (what, and
/// how to fix it; never a stack trace), <c>berth down</c> still stops every replica, and a full disk heals by itself.</summary>
[Collection("real processes")]
public sealed class StateFaultTests : AppFolderTest
{
    public StateFaultTests()
        : base("berth-cli-fault-") => App.WriteSpec(TestHttpServer.App("faulty"));

    private static bool Alive(int pid) => Directory.Exists($"/proc/{pid}");

    private async Task<List<int>> UpThenKillControlPlaneAsync()
    {
        await App.Cli.UpDetachedAsync(2);
        var pids = (await App.Cli.PsAsync()).Select(r => r.GetProperty("pid").GetInt32()).ToList();
        await App.Cli.KillControlPlaneAsync();
        Assert.All(pids, pid => Assert.True(Alive(pid), $"replica {pid} outlives the control plane"));
        return pids;
    }

    private static void AssertNoStackTrace(CliResult result) =>
        Assert.DoesNotContain(result.Err.Split('\n'), l => l.TrimStart().StartsWith("at ", StringComparison.Ordinal) || l.Contains("Exception", StringComparison.Ordinal));

    [Fact]
    public async Task Down_CorruptStateDb_StopsEveryReplicaFromTheDriversRecordsAndSaysHowToFix()
    {
        var pids = await UpThenKillControlPlaneAsync();
        var db = Path.Combine(App.Cli.State, "state.db");
        File.WriteAllBytes(db, [.. Enumerable.Repeat((byte)0x5a, 8192)]);
        File.Delete(db + "-wal");
        File.Delete(db + "-shm");

        var up = await App.Cli.RunAsync("up");
        Assert.Equal(6, up.Code);
        AssertNoStackTrace(up);
        Assert.Contains($"berth: error: the state store {db} is damaged (SQLite Error 26: 'file is not a database')", up.Err, StringComparison.Ordinal);
        Assert.Contains($"berth: fix: run 'berth down' (it stops the replicas from the drivers' own records), then move {db} aside", up.Err, StringComparison.Ordinal);

        var down = await App.Cli.RunAsync("down");
        Assert.True(down.Code == 0, $"berth down: {down}");
        AssertNoStackTrace(down);
        Assert.Contains("berth: stopped 2 replicas the drivers still ran (faulty)", down.Err, StringComparison.Ordinal);
        Assert.All(pids, pid => Assert.False(Alive(pid), $"replica {pid} still runs after down"));
    }

    [RootFact]
    public async Task UpAndDown_ReadOnlyStateFolder_ClearErrorAndDownStillStopsEveryReplica()
    {
        var pids = await UpThenKillControlPlaneAsync();
        CliResult up, down;
        using (Mount.ReadOnly(App.Cli.State))
        {
            up = await App.Cli.RunAsync("up");
            down = await App.Cli.RunAsync("down");
        }

        Assert.Equal(6, up.Code);
        AssertNoStackTrace(up);
        var db = Path.Combine(App.Cli.State, "state.db");
        Assert.Contains($"berth: error: the state store {db} is read-only (SQLite Error 8: 'attempt to write a readonly database')", up.Err, StringComparison.Ordinal);
        Assert.Contains($"berth: fix: make {App.Cli.State} and the files in it writable by you", up.Err, StringComparison.Ordinal);
        Assert.True(down.Code == 0, $"berth down on a read-only state folder: {down}");
        AssertNoStackTrace(down);
        Assert.All(pids, pid => Assert.False(Alive(pid), $"replica {pid} still runs after down"));
    }

    [RootFact]
    public async Task Api_StateFolderDiskFull_507JsonReplicasKeepRunningAndItHealsOnceSpaceIsFreed()
    {
        using var disk = Mount.SmallTmpfs(App.Cli.State, 4096);
        await App.Cli.UpDetachedAsync(2);
        using var api = new ControlPlaneApi(App.Cli.State);
        var before = (await App.Cli.PsAsync()).Select(r => r.GetProperty("pid").GetInt32()).ToList();

        disk.Fill();
        Assert.True(disk.Available < 64 * 1024, $"the tmpfs is full ({disk.Available} bytes free)");
        var (status, type, body) = await api.SendAsync(HttpMethod.Post, "/v1/services/web/scale", """{"replicas": 3}""");
        Assert.Equal(507, status);
        Assert.Equal("application/json", type);
        var error = JsonDocument.Parse(body).RootElement;
        Assert.Equal(507, error.GetProperty("status").GetInt32());
        Assert.StartsWith($"the disk of the state folder {App.Cli.State} is full, so state.db cannot be written; free space there", error.GetProperty("error").GetString(), StringComparison.Ordinal);

        // Replicas keep running. One killed now is restarted as soon as its driver can write its records (the process
        // driver keeps them, and the logs, in the state folder): at the latest once space is freed, with no one's help.
        Process.GetProcessById(before[0]).Kill();
        await Poll.UntilAsync(async () => (await api.GetAsync("/v1/replicas")).EnumerateArray().Any(r => r.GetProperty("restarts").GetInt32() >= 1 || r.GetProperty("phase").GetString() != "ready"),
            TimeSpan.FromSeconds(30), "the control plane saw the kill");
        Assert.True(Alive(before[1]), "the other replica kept running");

        // Space freed: the same request now succeeds, with no restart of the control plane.
        disk.Free();
        var seen = "";
        try
        {
            await Poll.UntilAsync(async () =>
            {
                var replicas = await api.GetAsync("/v1/replicas");
                seen = replicas.ToString();
                return replicas.EnumerateArray().Count(r => r.GetProperty("phase").GetString() == "ready") == 2;
            }, TimeSpan.FromSeconds(60), "both replicas ready again once space is freed");
        }
        catch (TimeoutException e)
        {
            throw new TimeoutException($"{e.Message}; replicas: {seen}\nlog: {File.ReadAllText(Path.Combine(App.Cli.State, "control-plane.log"))}", e);
        }

        await Poll.UntilAsync(async () => (await api.SendAsync(HttpMethod.Post, "/v1/services/web/scale", """{"replicas": 3}""")).Status == 200,
            TimeSpan.FromSeconds(30), "the scale accepted once space is freed");
        await Poll.UntilAsync(async () => (await api.GetAsync("/v1/replicas")).EnumerateArray().Count(r => r.GetProperty("phase").GetString() == "ready") == 3,
            TimeSpan.FromSeconds(60), "3 ready replicas after the disk was freed");

        // Every running replica has its record in the store, with the pid it runs as.
        var pids = (await App.Cli.PsAsync()).Select(r => r.GetProperty("pid").GetInt32()).Order().ToList();
        using (var store = Berth.Orchestration.State.StateStore.Open(App.Cli.State))
        {
            Assert.Equal(pids, store.ListReplicas().Select(r => r.Handle?.Pid ?? 0).Order().ToList());
        }

        await App.Cli.DownAsync();
        Assert.All(pids, pid => Assert.False(Alive(pid), $"replica {pid} still runs after down"));
    }
}
