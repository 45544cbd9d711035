
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
}
