
namespace Berth.Cli.Tests.ControlPlane;

/// <summary>Issue #14 §9 through the real <c>berth</c> program: a churn of 50 replicas leaves a bounded number of replica
/// folders and no empty cgroups, and the logs of the last removed replicas stay readable with <c>berth logs --previous</c>.</summary>
[Collection("real processes")]
public sealed class LeftoversCliTests : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("berth-cli-churn-").FullName;
    private readonly string _app = "churn" + Guid.NewGuid().ToString("N")[..6];
    private readonly BerthCli _cli;

    public LeftoversCliTests()
    {
        _cli = new BerthCli(_dir);
        File.WriteAllText(Path.Combine(_dir, "berth.yaml"), $$"""
            name: {{_app}}
            services:
              w:
                run: [perl, -e, "$$| = 1; print qq(hello from $$ENV{BERTH_REPLICA}\\n); sleep 600"]
                replicas: 5
                resources:
                  limits: {memory: 64Mi}
                stop_grace_period: 1s
            """);
    }

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        await _cli.DownAsync();
        Directory.Delete(_dir, recursive: true);
    }

    private string Replicas => Path.Combine(_cli.State, "replicas");

    /// <summary>This app's cgroup folders in every v1 controller (or the v2 tree) below berth/{app}.</summary>
    private List<string> Cgroups() =>
    [
        .. new[] { "/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpuacct", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/cpuset", "/sys/fs/cgroup" }
            .Select(root => Path.Combine(root, "berth", _app))
            .Where(Directory.Exists)
            .SelectMany(app => Directory.EnumerateDirectories(app).Prepend(app))
            .Distinct(),
    ];

    [CgroupFact]
    public async Task Churn_FiftyReplicas_BoundedFoldersNoEmptyCgroupsPreviousLogsReadable()
    {
        await _cli.UpDetachedAsync(ready: 5);
        var seen = new HashSet<string>((await _cli.PsAsync()).Select(r => r.GetProperty("id").GetString()!));
        while (seen.Count < 50)
        {
            await _cli.OkAsync("scale", "w=0");
            await Poll.UntilAsync(async () => (await _cli.PsAsync()).Count == 0, TimeSpan.FromSeconds(60), "every replica removed");
            await _cli.OkAsync("scale", "w=5");
            await Poll.UntilAsync(async () => await _cli.CountAsync("ready") == 5, TimeSpan.FromSeconds(60), "5 new replicas Ready");
            seen.UnionWith((await _cli.PsAsync()).Select(r => r.GetProperty("id").GetString()!));
        }

        var live = (await _cli.PsAsync()).Select(r => r.GetProperty("id").GetString()!).ToHashSet();
        // Folders: the 5 live replicas and the 5 removed ones whose logs are kept (OrchestratorDefaults.TerminatedReplicasKept).
        await Poll.UntilAsync(() => Directory.GetDirectories(Replicas).Length == 10, TimeSpan.FromSeconds(30),
            $"10 replica folders after a churn of {seen.Count} (5 live, 5 kept); there are {Directory.GetDirectories(Replicas).Length}");
        Assert.Subset(Directory.GetDirectories(Replicas).Select(d => Path.GetFileName(d)).ToHashSet(), live);

        // No empty cgroup: the app's group and one per live replica, each holding its replica.
        await Poll.UntilAsync(() => Cgroups().All(c => Path.GetFileName(c) == _app || live.Contains(Path.GetFileName(c))), TimeSpan.FromSeconds(30),
            $"only live replicas' cgroups under berth/{_app}; found {string.Join(", ", Cgroups())}");
        Assert.All(Cgroups().Where(c => Path.GetFileName(c) != _app), c => Assert.NotEmpty(File.ReadAllText(Path.Combine(c, "cgroup.procs")).Trim()));

        // The replica removed last, through its service and by its id.
        var previous = await _cli.OkAsync("logs", "--previous", "w");
        var line = Assert.Single(previous.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        var id = line[..line.IndexOf(' ', StringComparison.Ordinal)];
        Assert.DoesNotContain(id, live);
        Assert.EndsWith($"| hello from {id}", line, StringComparison.Ordinal);
        Assert.Contains($"hello from {id}", (await _cli.OkAsync("logs", "-p", id)).Out, StringComparison.Ordinal);
        var gone = seen.Except(live).Except(Directory.GetDirectories(Replicas).Select(Path.GetFileName)).First()!;
        var refused = await _cli.RunAsync("logs", "-p", gone);
        Assert.NotEqual(0, refused.Code);
        Assert.Contains($"no replica or service '{gone}', and no removed replica of that id has its logs kept", refused.Err, StringComparison.Ordinal);

        await _cli.OkAsync("down");
        Assert.Empty(Cgroups());
        Assert.InRange(Directory.GetDirectories(Replicas).Length, 1, 5);
    }
}
