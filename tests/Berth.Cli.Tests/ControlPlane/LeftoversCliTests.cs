
namespace Berth.Cli.Tests.ControlPlane;

/// <summary>Issue #14 §9 through the real <c>berth</c> program: a churn of 50 replicas leaves a bounded number of replica
/// folders and no empty cgroups, and the logs of the last removed replicas stay readable with <c>berth logs --previous</c>.</summary>
[Collection("real processes")]
public sealed class LeftoversCliTests : AppFolderTest
{
    public LeftoversCliTests()
        : base("berth-cli-churn-")
    {
        App.WriteSpec($"name: {App.Name}\nservices:\n" + IdleService.Entry("w", replicas: 5, limits: "{memory: 64Mi}", says: "hello from $ENV{BERTH_REPLICA}"));
    }

    private string Replicas => Path.Combine(App.Cli.State, "replicas");

    /// <summary>This app's cgroup folders in every v1 controller (or the v2 tree) below berth/{app}.</summary>
    private List<string> Cgroups() =>
    [
        .. new[] { "/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpuacct", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/cpuset", "/sys/fs/cgroup" }
            .Select(root => Path.Combine(root, "berth", App.Name))
            .Where(Directory.Exists)
            .SelectMany(app => Directory.EnumerateDirectories(app).Prepend(app))
            .Distinct(),
    ];

    [CgroupFact]
    public async Task Churn_FiftyReplicas_BoundedFoldersNoEmptyCgroupsPreviousLogsReadable()
    {
        await App.Cli.UpDetachedAsync(ready: 5);
        var seen = new HashSet<string>((await App.Cli.PsAsync()).Select(r => r.GetProperty("id").GetString()!));
        while (seen.Count < 50)
        {
            await App.Cli.OkAsync("scale", "w=0");
            await Poll.UntilAsync(async () => (await App.Cli.PsAsync()).Count == 0, TimeSpan.FromSeconds(60), "every replica removed");
            await App.Cli.OkAsync("scale", "w=5");
            await Poll.UntilAsync(async () => await App.Cli.CountAsync("ready") == 5, TimeSpan.FromSeconds(60), "5 new replicas Ready");
            seen.UnionWith((await App.Cli.PsAsync()).Select(r => r.GetProperty("id").GetString()!));
        }

        var live = (await App.Cli.PsAsync()).Select(r => r.GetProperty("id").GetString()!).ToHashSet();
        // Folders: the 5 live replicas and the 5 removed ones whose logs are kept (OrchestratorDefaults.TerminatedReplicasKept).
        await Poll.UntilAsync(() => Directory.GetDirectories(Replicas).Length == 10, TimeSpan.FromSeconds(30),
            $"10 replica folders after a churn of {seen.Count} (5 live, 5 kept); there are {Directory.GetDirectories(Replicas).Length}");
        Assert.Subset(Directory.GetDirectories(Replicas).Select(d => Path.GetFileName(d)).ToHashSet(), live);

        // No empty cgroup: the app's group and one per live replica, each holding its replica.
        await Poll.UntilAsync(() => Cgroups().All(c => Path.GetFileName(c) == App.Name || live.Contains(Path.GetFileName(c))), TimeSpan.FromSeconds(30),
            $"only live replicas' cgroups under berth/{App.Name}; found {string.Join(", ", Cgroups())}");
        Assert.All(Cgroups().Where(c => Path.GetFileName(c) != App.Name), c => Assert.NotEmpty(File.ReadAllText(Path.Combine(c, "cgroup.procs")).Trim()));

        // The replica removed last, through its service and by its id.
        var previous = await App.Cli.OkAsync("logs", "--previous", "w");
        var line = Assert.Single(previous.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        var id = line[..line.IndexOf(' ', StringComparison.Ordinal)];
        Assert.DoesNotContain(id, live);
        Assert.EndsWith($"| hello from {id}", line, StringComparison.Ordinal);
        Assert.Contains($"hello from {id}", (await App.Cli.OkAsync("logs", "-p", id)).Out, StringComparison.Ordinal);
        var gone = seen.Except(live).Except(Directory.GetDirectories(Replicas).Select(Path.GetFileName)).First()!;
        var refused = await App.Cli.RunAsync("logs", "-p", gone);
        Assert.NotEqual(0, refused.Code);
        Assert.Contains($"no replica or service '{gone}', and no removed replica of that id has its logs kept", refused.Err, StringComparison.Ordinal);

        // A live replica: --previous is its runs before the current one (kubectl's previous container).
        var restarted = live.First();
        var notYet = await App.Cli.RunAsync("logs", "-p", restarted);
        Assert.Contains($"replica '{restarted}' has not restarted, so it has no previous run", notYet.Err, StringComparison.Ordinal);
        await App.Cli.OkAsync("restart", restarted);
        await Poll.UntilAsync(async () => (await App.Cli.PsAsync()).Any(r => r.GetProperty("id").GetString() == restarted && r.GetProperty("restarts").GetInt32() == 1
            && r.GetProperty("phase").GetString() == "ready"), TimeSpan.FromSeconds(60), $"{restarted} restarted and Ready");
        await Poll.UntilAsync(async () => (await App.Cli.OkAsync("logs", restarted)).Out.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length == 2,
            TimeSpan.FromSeconds(30), "both runs' lines in the replica's log");
        Assert.Equal([$"{restarted.PadRight(14)} | hello from {restarted}"], (await App.Cli.OkAsync("logs", "--previous", restarted)).Out.Split('\n', StringSplitOptions.RemoveEmptyEntries));

        await App.Cli.OkAsync("down");
        Assert.Empty(Cgroups());
        Assert.InRange(Directory.GetDirectories(Replicas).Length, 1, 5);
    }

    /// <summary>Issue #14: <c>berth down</c> sweeps the app's cgroup folder as the kubelet's cgroup GC does. A control plane
    /// killed with SIGKILL leaves empty groups below berth/{app} (a removal cut short), and a removed replica's group may still
    /// hold an orphan (a child that outlived its supervisor); down removes them all and kills the orphan, and leaves alone a
    /// group of another (same-named) app's that holds a live process, and the process.</summary>
    [CgroupFact]
    public async Task Down_LeftoverCgroupsBelowTheAppsFolder_RemovedOrphanKilledAnotherAppsBusyGroupKept()
    {
        await App.Cli.UpDetachedAsync(ready: 5);
        var before = (await App.Cli.PsAsync()).Select(r => r.GetProperty("id").GetString()!).ToList();
        await App.Cli.OkAsync("scale", "w=4");
        await Poll.UntilAsync(async () => (await App.Cli.PsAsync()).Count == 4, TimeSpan.FromSeconds(60), "one replica removed by 'scale w=4'");
        var removed = before.Except((await App.Cli.PsAsync()).Select(r => r.GetProperty("id").GetString()!)).Single();
        var memory = Path.Combine("/sys/fs/cgroup/memory/berth", App.Name);
        await Poll.UntilAsync(() => !Directory.Exists(Path.Combine(memory, removed)), TimeSpan.FromSeconds(30), $"the removed replica {removed}'s cgroup gone");

        await App.Cli.KillControlPlaneAsync();
        var apps = Cgroups().Where(c => Path.GetFileName(c) == App.Name).ToList();
        Assert.Contains(memory, apps);
        foreach (var app in apps)
        {
            Directory.CreateDirectory(Path.Combine(app, "leftover-1", "deeper"));
        }

        using var orphan = Process.Start(new ProcessStartInfo("sleep", ["600"]) { UseShellExecute = false })!;
        using var twin = Process.Start(new ProcessStartInfo("sleep", ["600"]) { UseShellExecute = false })!;
        var twinGroup = Path.Combine(memory, "twin-zzzzz");
        try
        {
            Directory.CreateDirectory(Path.Combine(memory, removed));
            File.AppendAllText(Path.Combine(memory, removed, "cgroup.procs"), $"{orphan.Id}\n");
            Directory.CreateDirectory(twinGroup);
            File.AppendAllText(Path.Combine(twinGroup, "cgroup.procs"), $"{twin.Id}\n");

            var down = await App.Cli.RunAsync("down");

            Assert.True(down.Code == 0, down.ToString());
            Assert.True(orphan.WaitForExit(TimeSpan.FromSeconds(30)), $"the orphan in the removed replica {removed}'s group killed by down");
            Assert.False(twin.HasExited, "another app's process is left alone");
            Assert.Equal([memory, twinGroup], Cgroups().Order());
        }
        finally
        {
            twin.Kill();
            await twin.WaitForExitAsync();
            await Poll.UntilAsync(() => TryRemove(twinGroup) && TryRemove(memory), TimeSpan.FromSeconds(10), "the twin's group removed after the test");
        }

        Assert.Empty(Cgroups());
    }

    private static bool TryRemove(string cgroup)
    {
        try
        {
            if (Directory.Exists(cgroup))
            {
                Directory.Delete(cgroup);
            }

            return true;
        }
        catch (IOException)
        {
            return false;
        }
    }
}
