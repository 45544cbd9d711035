
namespace Berth.Orchestration.Tests.Acceptance;

/// <summary>The issue's acceptance points against real processes (the process driver with its supervisor), real HTTP
/// probes over loopback and a real SQLite file.</summary>
[Collection("real processes")]
public sealed class ProcessAcceptanceTests : IAsyncLifetime
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);
    private readonly string _dir = Directory.CreateTempSubdirectory("berth-accept-").FullName;
    private StateStore _store = null!;
    private ControlPlane _plane = null!;
    private ProbeExecutor _prober = null!;

    public async Task InitializeAsync()
    {
        _store = StateStore.Open(_dir);
        _prober = new ProbeExecutor();
        _plane = NewPlane();
        await _plane.StartAsync(CancellationToken.None);
    }

    public async Task DisposeAsync()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await _plane.DownAsync(cts.Token);
        await _plane.DisposeAsync();
        _prober.Dispose();
        _store.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    private ControlPlane NewPlane() => new(
        new OrchestratorOptions { StateDirectory = _dir }, _store,
        [new ProcessDriver(new ProcessDriverOptions { StateRoot = Path.Combine(_dir, "runtime"), UseCgroups = false })],
        new RoutingTable(), _prober);

    private static Service Web(int replicas, string? sick = null) => new()
    {
        Name = "web",
        Command = TestHttpServer.Command,
        Replicas = replicas,
        Endpoints = [new Endpoint { Name = "http" }],
        Env = sick is null ? System.Collections.Immutable.ImmutableSortedDictionary<string, string>.Empty : System.Collections.Immutable.ImmutableSortedDictionary<string, string>.Empty.Add("SICK", sick),
        Readiness = new Probe { Kind = ProbeKind.Http, Path = "/healthz", Period = TimeSpan.FromMilliseconds(500) },
        StopGracePeriod = TimeSpan.FromSeconds(2),
    };

    private IEnumerable<ReplicaRecord> Of(string service) => _plane.Replicas.Where(r => r.Service == service);

    private Task UntilAsync(Func<bool> condition, string what) => Poll.UntilAsync(() =>
    {
        return condition();
    }, Wait, $"{what}; have {string.Join(", ", _plane.Replicas.Take(8).Select(r => $"{r.Id}:{r.Phase}:{r.Reason}"))}");

    private static async Task<int> GetAsync(int port)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        using var response = await http.GetAsync(new Uri($"http://127.0.0.1:{port}/"));
        return (int)response.StatusCode;
    }

    [Fact]
    public async Task KillReplica_Sigkill_ReplacedAndReadyAgainWithinTwoSeconds()
    {
        await _plane.ApplyAsync(new Application { Name = "acc", Services = [Web(2)] }, "up", CancellationToken.None);
        await UntilAsync(() => Of("web").Count(r => r.Phase == ReplicaPhase.Ready) == 2, "2 Ready web replicas");
        var victim = Of("web").First();
        var lastEvent = _store.ListEvents(0, int.MaxValue).Last().Id;

        Process.GetProcessById(victim.Handle!.Pid!.Value).Kill();
        await UntilAsync(() => _store.ListEvents(lastEvent).Any(e => e.Replica == victim.Id && e.Type == EventTypes.Ready), "the killed replica Ready again");

        var events = _store.ListEvents(lastEvent).Where(e => e.Replica == victim.Id).ToList();
        var exited = events.First(e => e.Type == EventTypes.Exited);
        var ready = events.First(e => e.Type == EventTypes.Ready);
        Assert.Equal("was killed by signal 9", exited.Message[..exited.Message.IndexOf(" after", StringComparison.Ordinal)]);
        Assert.True(ready.Time - exited.Time < TimeSpan.FromSeconds(2), $"Ready {ready.Time - exited.Time} after the kill; events: {string.Join(" | ", events.Select(e => e.Message))}");
        var now = Of("web").Single(r => r.Id == victim.Id);
        Assert.NotEqual(victim.Handle.Pid, now.Handle!.Pid);
        Assert.Equal(200, await GetAsync(now.Ports["http"]));
        Assert.Equal(1, now.RestartCount);
    }

    [Fact]
    public async Task CrashLoop_ExitsAtOnce_BacksOffOneThenTwoSecondsAndShowsIt()
    {
        var crash = new Service { Name = "crash", Command = ["perl", "-e", "print qq(boom\\n); exit 3"] };
        await _plane.ApplyAsync(new Application { Name = "acc", Services = [crash] }, "up", CancellationToken.None);
        await UntilAsync(() => _store.ListEvents().Count(e => e.Type == EventTypes.BackOff) >= 2 && Of("crash").Single().RestartCount >= 3,
            "two back-offs and three restarts");

        var events = _store.ListEvents().Where(e => e.Service == "crash").ToList();
        Assert.Equal(["back-off 1s (failure 2 in a row)", "back-off 2s (failure 3 in a row)"],
            events.Where(e => e.Type == EventTypes.BackOff).Take(2).Select(e => e.Message));
        var exits = events.Where(e => e.Type == EventTypes.Exited).Select(e => e.Time).ToList();
        var restarts = events.Where(e => e.Type == EventTypes.Restarted).Select(e => e.Time).ToList();
        Assert.True(restarts[1] - exits[1] >= TimeSpan.FromSeconds(1), "second restart waits 1s");
        Assert.True(restarts[2] - exits[2] >= TimeSpan.FromSeconds(2), "third restart waits 2s");
        Assert.StartsWith("exited with code 3", events.First(e => e.Type == EventTypes.Exited).Message, StringComparison.Ordinal);

        await UntilAsync(() => Of("crash").Single().Phase == ReplicaPhase.BackOff, "in back-off");
        var r = Of("crash").Single();
        Assert.NotNull(r.NextRetryAt);
        Assert.Equal(3, r.LastExitCode);
        Assert.Contains("back-off", r.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ControlPlaneRestart_ReplicasRunning_AdoptedWithoutRestartAndHistoryKept()
    {
        await _plane.ApplyAsync(new Application { Name = "acc", Services = [Web(3)] }, "up", CancellationToken.None);
        await UntilAsync(() => Of("web").Count(r => r.Phase == ReplicaPhase.Ready) == 3, "3 Ready");
        await _plane.ScaleAsync("web", 2, CancellationToken.None);
        await UntilAsync(() => Of("web").Count() == 2, "scaled to 2");
        var pids = Of("web").ToDictionary(r => r.Id, r => r.Handle!.Pid);
        var events = _store.ListEvents(0, int.MaxValue).Select(e => e.Id).ToList();
        var revisions = _store.ListRevisions().Select(r => r.Number).ToList();

        // Drop the control plane without stopping anything (its process dying), and start a new one on the same store.
        await _plane.DisposeAsync();
        _plane = NewPlane();
        await _plane.StartAsync(CancellationToken.None);
        await UntilAsync(() => Of("web").Count(r => r.Phase == ReplicaPhase.Ready) == 2, "2 adopted replicas Ready");

        var after = _store.ListEvents(0, int.MaxValue);
        var adopted = Of("web").ToDictionary(r => r.Id, r => r.Handle!.Pid);
        // What happened across the restart, for the message when a pid changed (seen once in CI, not reproduced since).
        var story = string.Join("; ", after.Where(e => e.Id > events.LastOrDefault() - 6).Select(e => $"{e.Id} {e.Type} {e.Replica}: {e.Message}"));
        Assert.True(pids.Count == adopted.Count && pids.All(p => adopted.GetValueOrDefault(p.Key) == p.Value),
            $"pids before [{string.Join(", ", pids)}], after [{string.Join(", ", adopted)}]; events: {story}");
        Assert.Equal(revisions, _store.ListRevisions().Select(r => r.Number));
        Assert.Equal(events, after.Take(events.Count).Select(e => e.Id));
        Assert.DoesNotContain(after.Skip(events.Count), e => e.Type is EventTypes.Started or EventTypes.Stopping or EventTypes.Exited);
        Assert.Equal(2, after.Skip(events.Count).Count(e => e.Type == EventTypes.Adopted));
        foreach (var r in Of("web"))
        {
            Assert.Equal(200, await GetAsync(r.Ports["http"]));
        }
    }

    [Fact]
    public async Task Capacity_HundredReplicasOverCapacity_RestPendingThenStartWhenOtherScalesDown()
    {
        var app = new Application
        {
            Name = "acc",
            Nodes = [new Node("n1", CpuQuantity.Parse("2"), ByteSize.FromMebibytes(8192)), new Node("n2", CpuQuantity.Parse("2"), ByteSize.FromMebibytes(8192))],
            Services =
            [
                new Service { Name = "batch", Command = ["perl", "-e", "sleep"], Replicas = 2, Resources = new Resources { CpuRequest = CpuQuantity.Parse("1") }, StopGracePeriod = TimeSpan.FromSeconds(2) },
                new Service { Name = "tiny", Command = ["perl", "-e", "sleep"], Replicas = 100, Resources = new Resources { CpuRequest = CpuQuantity.Parse("30m") }, StopGracePeriod = TimeSpan.FromSeconds(2) },
            ],
        };
        await _plane.ApplyAsync(app, "up", CancellationToken.None);
        // 4 CPUs: batch takes 2, so 66 tiny replicas (30m each) fit in the other 2 and 34 wait.
        await UntilAsync(() => Of("batch").Count(r => r.Phase == ReplicaPhase.Ready) == 2 && Of("tiny").Count(r => r.Phase == ReplicaPhase.Ready) == 66
            && Of("tiny").Count(r => r.Phase == ReplicaPhase.Pending) == 34, "2 batch + 66 tiny running, 34 Pending");
        var pending = Of("tiny").First(r => r.Phase == ReplicaPhase.Pending);
        Assert.StartsWith("0/2 nodes fit: 2 insufficient cpu (needs 30m, most free ", pending.Reason, StringComparison.Ordinal);
        Assert.All(Of("tiny").Where(r => r.Phase == ReplicaPhase.Ready), r => Assert.True(Directory.Exists($"/proc/{r.Handle!.Pid}"), $"{r.Id} has a live process"));

        await _plane.ScaleAsync("batch", 0, CancellationToken.None);
        await UntilAsync(() => Of("tiny").Count(r => r.Phase == ReplicaPhase.Ready) == 100 && !Of("batch").Any(), "all 100 tiny running once batch is gone");
        Assert.Equal(2, _plane.Nodes.Count);
        // Pending replicas take capacity as it frees, node by node, so the split need not be even; it must fit.
        Assert.Equal(100, _plane.Nodes.Sum(n => n.ReplicasOf("tiny")));
        Assert.All(_plane.Nodes, n => Assert.True(n.AllocatedCpuMilli <= n.CpuMilli, $"{n.Name}: {n.AllocatedCpuMilli}m of {n.CpuMilli}m"));
        Assert.Equal(100, Of("tiny").Select(r => r.Handle!.Pid).Distinct().Count());
    }
}
