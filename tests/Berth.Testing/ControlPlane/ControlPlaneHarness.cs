using System.Diagnostics;
using System.Text;
using Berth.Core.Routing;
using Berth.Orchestration;
using Berth.Orchestration.Controllers;
using Berth.Orchestration.State;
using Berth.Runtime;
using Microsoft.Extensions.Time.Testing;

namespace Berth.Testing.ControlPlanes;

/// <summary>A real <see cref="ControlPlane"/> over a real SQLite store in a temporary folder, with an in-memory driver, a
/// recording route sink, a scripted prober and a fake clock: the one harness for tests of the controller logic. A wait
/// that times out says what it waited for and dumps the replicas, the events and the log.</summary>
public sealed class ControlPlaneHarness : IAsyncDisposable
{
    /// <summary>How long a wait polls before it fails: generous, the machine may be loaded.</summary>
    public static readonly TimeSpan Wait = TimeSpan.FromSeconds(20);

    /// <summary>The fake clock starts here.</summary>
    public static readonly DateTimeOffset Epoch = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    private readonly IReadOnlyList<IWorkloadDriver> _drivers;
    private readonly IRouteSink _sink;
    private readonly IProbeExecutor _probeExecutor;
    private readonly TimeProvider _clock;
    private readonly Func<OrchestratorOptions, OrchestratorOptions> _options;

    /// <param name="prefix">The temporary folder's name prefix (shows which test left it, if one does).</param>
    /// <param name="drivers">Drivers to use instead of <see cref="Driver"/>.</param>
    /// <param name="routes">A route sink to use instead of <see cref="Routes"/> (e.g. a real mesh).</param>
    /// <param name="prober">A probe executor to use instead of <see cref="Prober"/> (e.g. the real one).</param>
    /// <param name="options">Changes to the control plane's options (e.g. the start concurrency).</param>
    /// <param name="realClock">Run the plane and <see cref="Driver"/> on the system clock instead of <see cref="Time"/>: for tests that
    /// reach the plane through real servers and wait in real time (the API tests), not for tests of timing logic.</param>
    public ControlPlaneHarness(string prefix = "berth-cp-", IEnumerable<IWorkloadDriver>? drivers = null, IRouteSink? routes = null, IProbeExecutor? prober = null,
        Func<OrchestratorOptions, OrchestratorOptions>? options = null, bool realClock = false)
    {
        _options = options ?? (o => o);
        Directory = System.IO.Directory.CreateTempSubdirectory(prefix).FullName;
        _clock = realClock ? TimeProvider.System : Time;
        Driver = new FakeDriver(_clock);
        Routes = new RecordingRouteSink(Driver.Calls);
        _drivers = drivers?.ToList() ?? [Driver];
        _sink = routes ?? Routes;
        _probeExecutor = prober ?? Prober;
        Store = StateStore.Open(Directory);
        Plane = NewPlane();
    }

    public string Directory { get; }

    public FakeTimeProvider Time { get; } = new(Epoch);

    public FakeDriver Driver { get; }

    /// <summary>Records every route update into <see cref="FakeDriver.Calls"/> too, so tests can check the order of routes and stops.</summary>
    public RecordingRouteSink Routes { get; }

    public ScriptedProber Prober { get; } = new();

    public CapturingLogger<ControlPlane> Log { get; } = new();

    public StateStore Store { get; }

    public ControlPlane Plane { get; private set; }

    public OrchestratorOptions Options => _options(new() { StateDirectory = Directory });

    public async Task<ControlPlaneHarness> StartAsync()
    {
        await Plane.StartAsync(CancellationToken.None);
        return this;
    }

    /// <summary>Disposes the control plane (replicas keep running) and starts a new one on the same store, as after a crash.</summary>
    public async Task RestartPlaneAsync(Action? whileDown = null)
    {
        await Plane.DisposeAsync();
        whileDown?.Invoke();
        Plane = NewPlane();
        await Plane.StartAsync(CancellationToken.None);
    }

    public IEnumerable<ReplicaRecord> Of(string service) => Plane.Replicas.Where(r => r.Service == service);

    /// <summary>Polls <paramref name="condition"/> until it holds or <see cref="Wait"/> passes; <paramref name="tick"/>
    /// advances the fake clock 250 ms per poll (for waits that need time to pass, e.g. a progress deadline).</summary>
    public async Task UntilAsync(Func<bool> condition, string what, bool tick = false)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            if (tick)
            {
                Time.Advance(TimeSpan.FromMilliseconds(250));
            }

            if (condition())
            {
                return;
            }

            if (clock.Elapsed > Wait)
            {
                throw new TimeoutException($"not within {Wait.TotalSeconds:0}s: {what}\n{Dump()}");
            }

            await Task.Delay(TimeSpan.FromMilliseconds(50)); // polling real work on other threads, not timing logic
        }
    }

    /// <summary>Waits for exactly <paramref name="n"/> replicas of <paramref name="service"/>, all Ready (and of
    /// <paramref name="revision"/>, if given) and, when <paramref name="routed"/>, all in routes.</summary>
    public Task AllReadyAsync(string service, int n, long? revision = null, bool routed = true, bool tick = false) =>
        UntilAsync(() => Of(service).Count(r => r.Phase == ReplicaPhase.Ready && (revision is null || r.Revision == revision)) == n && Of(service).Count() == n
            && (!routed || Routes.Upstreams(service).Count == n),
            $"{n} Ready {service} replicas{(revision is null ? "" : $" of revision {revision}")}{(routed ? " in routes" : "")}", tick);

    /// <summary>Advances the clock by <paramref name="period"/> <paramref name="rounds"/> times, each time waiting until at least
    /// <paramref name="probesPerRound"/> more probes have run (one for each replica the probe is due on).</summary>
    public async Task ProbeRoundsAsync(int rounds, TimeSpan period, int probesPerRound, string what)
    {
        for (var i = 1; i <= rounds; i++)
        {
            var runs = Prober.Runs;
            Time.Advance(period);
            await UntilAsync(() => Prober.Runs >= runs + probesPerRound, $"{what} (round {i} of {rounds})");
        }
    }

    /// <summary>Two whole reconcile passes, so a test can assert that nothing happened without sleeping.</summary>
    public Task SettleAsync() => Plane.SettleAsync(CancellationToken.None);

    /// <summary>The replicas, the events, the driver calls and the log: what a failing wait prints.</summary>
    public string Dump()
    {
        var text = new StringBuilder();
        text.AppendLine($"clock: {Time.GetUtcNow():O}");
        text.AppendLine("replicas:");
        foreach (var r in Plane.Replicas)
        {
            text.AppendLine($"  {r.Id} rev {r.Revision} {r.Phase}{(r.Reason is null ? "" : $" ({r.Reason})")}{(r.Ports.Count == 0 ? "" : $" ports {string.Join(",", r.Ports.Values)}")}");
        }

        text.AppendLine("events:");
        foreach (var e in Store.ListEvents())
        {
            text.AppendLine($"  {e.Type} {e.Service}/{e.Replica}: {e.Message}");
        }

        text.AppendLine($"driver calls: {string.Join(" | ", Driver.Calls)}");
        text.AppendLine("log:");
        foreach (var line in Log.Lines)
        {
            text.AppendLine($"  {line}");
        }

        return text.ToString();
    }

    public async ValueTask DisposeAsync()
    {
        await Plane.DisposeAsync();
        Store.Dispose();
        System.IO.Directory.Delete(Directory, recursive: true);
    }

    private ControlPlane NewPlane() => new(Options, Store, _drivers, _sink, _probeExecutor, _clock, Log, random: new Random(7));
}
