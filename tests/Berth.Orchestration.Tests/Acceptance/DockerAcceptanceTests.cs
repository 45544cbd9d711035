
namespace Berth.Orchestration.Tests.Acceptance;

/// <summary>The same control plane over a real Docker engine (host network): kill -9, restart back to Ready, adoption.</summary>
[Collection("real processes")]
public sealed class DockerAcceptanceTests : IAsyncLifetime
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(90);
    private readonly string _dir = Directory.CreateTempSubdirectory("berth-accept-docker-").FullName;
    private readonly string _app = "acc" + Guid.NewGuid().ToString("N")[..8];
    private StateStore _store = null!;
    private ControlPlane? _plane;
    private DockerDriver? _driver;
    private ProbeExecutor _prober = null!;

    public async Task InitializeAsync()
    {
        _store = StateStore.Open(_dir);
        _prober = new ProbeExecutor();
        if (Environments.DockerAvailable)
        {
            _driver = await DockerDriver.ConnectAsync(new DockerDriverOptions(), CancellationToken.None);
            await TestImages.EnsureAsync(_driver);
        }
    }

    public async Task DisposeAsync()
    {
        if (_plane is not null)
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(90));
            await _plane.DownAsync(cts.Token);
            await _plane.DisposeAsync();
        }

        _driver?.Dispose();
        _prober.Dispose();
        _store.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    private ControlPlane NewPlane() => new(new OrchestratorOptions { StateDirectory = _dir }, _store, [_driver!], new RoutingTable(), _prober);

    private IEnumerable<ReplicaRecord> Replicas => _plane!.Replicas;

    [DockerFact]
    public async Task KillContainer_Sigkill_RestartedAndReadyThenAdoptedAfterControlPlaneRestart()
    {
        _plane = NewPlane();
        await _plane.StartAsync(CancellationToken.None);
        var service = new Service
        {
            Name = "box", Image = TestImages.Base, Command = ["sleep", "3600"], Replicas = 2,
            Readiness = new Probe { Kind = ProbeKind.Exec, Command = ["true"], Period = TimeSpan.FromMilliseconds(500) },
            StopGracePeriod = TimeSpan.FromSeconds(1),
        };
        await _plane.ApplyAsync(new Application { Name = _app, Services = [service] }, "up", CancellationToken.None);
        await Poll.UntilAsync(() => Replicas.Count(r => r.Phase == ReplicaPhase.Ready) == 2, Wait, "2 Ready containers");

        var victim = Replicas.First();
        var last = _store.ListEvents(0, int.MaxValue).Last().Id;
        // The container's main process, as the host sees it: SIGKILL from outside, as the OOM killer or an operator would.
        var status = await _driver!.InspectAsync(victim.Handle!, CancellationToken.None);
        Assert.NotNull(status.Pid);
        Process.GetProcessById(status.Pid!.Value).Kill();
        await Poll.UntilAsync(() => _store.ListEvents(last).Any(e => e.Replica == victim.Id && e.Type == EventTypes.Ready), Wait, "the killed container's replica Ready again");
        Assert.Contains(_store.ListEvents(last), e => e.Replica == victim.Id && e.Type == EventTypes.Exited);

        var containers = Replicas.ToDictionary(r => r.Id, r => r.Handle!.ContainerId![..12]);
        var events = _store.ListEvents(0, int.MaxValue).Count;
        await _plane.DisposeAsync();
        _plane = NewPlane();
        await _plane.StartAsync(CancellationToken.None);
        await Poll.UntilAsync(() => Replicas.Count(r => r.Phase == ReplicaPhase.Ready) == 2, Wait, "2 adopted containers Ready");
        Assert.Equal(containers, Replicas.ToDictionary(r => r.Id, r => r.Handle!.ContainerId![..12]));
        var newer = _store.ListEvents(0, int.MaxValue).Skip(events).ToList();
        Assert.Equal(2, newer.Count(e => e.Type == EventTypes.Adopted));
        Assert.DoesNotContain(newer, e => e.Type == EventTypes.Started);
    }

    [DockerFact]
    public async Task TwoAppsOfOneName_EachRestartsAndGoesDown_NeitherTouchesTheOthersContainers()
    {
        // Issue #14 §6: the same app name in two folders (two checkouts). Each control plane collects orphans and adopts
        // by label on start; with the name alone, B's restart took A's container for an orphan of its own and stopped it.
        var otherDir = Directory.CreateTempSubdirectory("berth-accept-docker-twin-").FullName;
        using var otherStore = StateStore.Open(otherDir);
        using var mine = await DockerDriver.ConnectAsync(new DockerDriverOptions { AppId = AppIdentity.LoadOrCreate(_dir) }, CancellationToken.None);
        using var theirs = await DockerDriver.ConnectAsync(new DockerDriverOptions { AppId = AppIdentity.LoadOrCreate(otherDir) }, CancellationToken.None);
        Assert.NotEqual(AppIdentity.LoadOrCreate(_dir), AppIdentity.LoadOrCreate(otherDir));
        Assert.Equal(AppIdentity.LoadOrCreate(_dir), AppIdentity.LoadOrCreate(_dir)); // kept, not made again

        var app = new Application
        {
            Name = _app,
            Services =
            [
                new Service
                {
                    Name = "box", Image = TestImages.Base, Command = ["sleep", "3600"],
                    Readiness = new Probe { Kind = ProbeKind.Exec, Command = ["true"], Period = TimeSpan.FromMilliseconds(500) },
                    StopGracePeriod = TimeSpan.FromSeconds(1),
                },
            ],
        };
        ControlPlane Plane(string dir, StateStore store, DockerDriver driver) => new(new OrchestratorOptions { StateDirectory = dir }, store, [driver], new RoutingTable(), _prober);
        static async Task<string> ReadyContainerAsync(ControlPlane plane, string what)
        {
            await Poll.UntilAsync(() => plane.Replicas.Count(r => r.Phase == ReplicaPhase.Ready) == 1, Wait, what);
            return plane.Replicas.Single().Handle!.ContainerId!;
        }

        _plane = Plane(_dir, _store, mine);
        await _plane.StartAsync(CancellationToken.None);
        await _plane.ApplyAsync(app, "up", CancellationToken.None);
        var a = await ReadyContainerAsync(_plane, "app A's container Ready");

        var other = Plane(otherDir, otherStore, theirs);
        try
        {
            await other.StartAsync(CancellationToken.None);
            await other.ApplyAsync(app, "up", CancellationToken.None);
            var b = await ReadyContainerAsync(other, "app B's container Ready");

            // B's control plane restarts: it adopts its own container and leaves A's alone.
            await other.DisposeAsync();
            other = Plane(otherDir, otherStore, theirs);
            await other.StartAsync(CancellationToken.None);
            Assert.Equal(b, await ReadyContainerAsync(other, "app B's container adopted"));
            await other.SettleAsync(CancellationToken.None);
            Assert.Equal(ReplicaState.Running, (await mine.InspectAsync(_plane.Replicas.Single().Handle!, CancellationToken.None)).State);
            Assert.Equal(a, _plane.Replicas.Single().Handle!.ContainerId);
            Assert.Equal([b], (await theirs.ListAsync(_app, CancellationToken.None)).Select(h => h.ContainerId));
            Assert.Equal([a], (await mine.ListAsync(_app, CancellationToken.None)).Select(h => h.ContainerId));

            // B goes down: A's container still runs.
            using var cts = new CancellationTokenSource(Wait);
            await other.DownAsync(cts.Token);
            Assert.Empty(await theirs.ListAsync(_app, CancellationToken.None));
            Assert.Equal(ReplicaState.Running, (await mine.InspectAsync(_plane.Replicas.Single().Handle!, CancellationToken.None)).State);
            Assert.DoesNotContain(_store.ListEvents(0, int.MaxValue), e => e.Type is EventTypes.Exited or EventTypes.Orphan);
        }
        finally
        {
            // Down with this test's drivers while they are open (DisposeAsync's down would use the shared one).
            using var cts = new CancellationTokenSource(Wait);
            await other.DownAsync(cts.Token);
            await other.DisposeAsync();
            await _plane.DownAsync(cts.Token);
            await _plane.DisposeAsync();
            _plane = null;
            Directory.Delete(otherDir, recursive: true);
        }
    }
}
