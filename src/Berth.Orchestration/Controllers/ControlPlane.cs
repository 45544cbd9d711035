using System.Collections.Concurrent;
using System.Collections.Immutable;
using System.Globalization;
using System.Text.Json;
using System.Threading.Channels;
using Berth.Core.Contracts;
using Berth.Core.Model;
using Berth.Core.Routing;
using Berth.Orchestration.Scheduling;
using Berth.Orchestration.State;
using Berth.Runtime;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Berth.Orchestration.Controllers;

/// <summary>A change to a service's template (what the pipelines' deploy step sends): a new image, command or env.</summary>
public sealed record ServicePatch
{
    public string? Image { get; init; }

    public ImmutableArray<string>? Command { get; init; }

    /// <summary>Variables to set (merged over the current env).</summary>
    public ImmutableSortedDictionary<string, string>? Env { get; init; }
}

/// <summary>Brings one app to its desired state and keeps it there: replica controller (scale, replace), scheduler, restarts
/// with back-off, probes, dependency gating and route publication. Event-driven with a periodic resync; every step is
/// idempotent and works from persisted records, so a restarted control plane adopts what is running.</summary>
public sealed partial class ControlPlane : IAsyncDisposable
{
    private readonly OrchestratorOptions _options;
    private readonly StateStore _store;
    private readonly IReadOnlyDictionary<RuntimeKind, IWorkloadDriver> _drivers;
    private readonly IRouteSink _routes;
    private readonly IProbeExecutor _prober;
    private readonly TimeProvider _time;
    private readonly Random _random;
    private readonly Func<int, bool> _portFreeOnMachine;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _lock = new(1, 1);
    private readonly SemaphoreSlim _startGate;
    private readonly Channel<bool> _kick = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });
    private TaskCompletionSource _passDone = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly CancellationTokenSource _life = new();
    private readonly ConcurrentDictionary<Task, bool> _work = new();
    private readonly Dictionary<string, ReplicaRecord> _replicas = new(StringComparer.Ordinal);
    private readonly Dictionary<string, ReplicaRuntime> _runtime = new(StringComparer.Ordinal);
    private readonly Dictionary<(string Service, string Endpoint), int> _stablePorts = [];
    private readonly Dictionary<(string Service, string Endpoint), ImmutableArray<Upstream>> _published = [];
    private readonly PortAllocator _ports;
    private readonly Dictionary<string, string> _limitsWarned = new(StringComparer.Ordinal);
    private readonly RolloutController _rollouts;
    private RevisionRecord? _current;
    private Scheduler? _scheduler;
    private string? _schedulerShape;
    private bool _down;
    private Task? _loop;
    private ImmutableArray<ReplicaRecord> _snapshot = [];

    public ControlPlane(OrchestratorOptions options, StateStore store, IEnumerable<IWorkloadDriver> drivers, IRouteSink routes,
        IProbeExecutor prober, TimeProvider? time = null, ILogger<ControlPlane>? logger = null, Random? random = null,
        Func<int, bool>? portFreeOnMachine = null, PortAllocator? ports = null)
    {
        _options = options;
        _store = store;
        _drivers = drivers.ToDictionary(d => d.Kind);
        _routes = routes;
        _prober = prober;
        _time = time ?? TimeProvider.System;
        _logger = logger ?? NullLogger<ControlPlane>.Instance;
        _random = random ?? Random.Shared;
        _portFreeOnMachine = portFreeOnMachine ?? PortAllocator.IsFreeOnMachine;
        _ports = ports ?? new PortAllocator();
        _startGate = new SemaphoreSlim(Math.Max(1, options.StartConcurrency));
        Events = new EventBus(store, _time, options.EventRetention);
        _rollouts = new RolloutController(store, Emit);
    }

    public EventBus Events { get; }

    public StateStore Store => _store;

    /// <summary>The desired state now in force, or null before the first apply.</summary>
    public RevisionRecord? Current => Volatile.Read(ref _current);

    /// <summary>A consistent snapshot of all replica records.</summary>
    public ImmutableArray<ReplicaRecord> Replicas => _snapshot;

    /// <summary>The stable (mesh) port of each service endpoint.</summary>
    public IReadOnlyDictionary<(string Service, string Endpoint), int> StablePorts
    {
        get
        {
            lock (_stablePorts)
            {
                return new Dictionary<(string, string), int>(_stablePorts);
            }
        }
    }

    /// <summary>The workload drivers and what each can enforce here, for the API.</summary>
    public IReadOnlyCollection<IWorkloadDriver> Drivers => [.. _drivers.Values];

    /// <summary>Services of the current revision whose limits their driver cannot enforce here (they still run).</summary>
    public IReadOnlyList<LimitsWarning> LimitWarnings => Current is { } current ? LimitsCheck.Check(current.Application, _drivers.Values) : [];

    /// <summary>The node capacities and allocations, for the API.</summary>
    public IReadOnlyList<NodeState> Nodes => _scheduler?.Nodes ?? [];

    /// <summary>Loads the persisted state, adopts running replicas (without restarting them) and starts the control loop.</summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await _lock.WaitAsync(cancellationToken);
        try
        {
            var current = _store.CurrentRevision();
            if (current is not null)
            {
                Install(current);
            }

            _rollouts.Load();
            foreach (var r in _store.ListReplicas())
            {
                _replicas[r.Id] = r;
                _runtime[r.Id] = new ReplicaRuntime();
            }

            await AdoptAsync(cancellationToken);
            Snapshot();
        }
        finally
        {
            _lock.Release();
        }

        _loop = Task.Run(() => LoopAsync(_life.Token), CancellationToken.None);
    }

    /// <summary>Makes <paramref name="app"/> the desired state (a new revision). Services whose template is unchanged keep their replicas.</summary>
    public async Task<RevisionRecord> ApplyAsync(Application app, string cause, CancellationToken cancellationToken)
    {
        if (app.Services.IsDefault || app.Services.Any(s => s is null || string.IsNullOrEmpty(s.Name)))
        {
            throw new ControlPlaneException(ControlPlaneError.Invalid, "the app needs a list of services, each with a name");
        }

        if (app.Nodes.IsDefault)
        {
            app = app with { Nodes = [] };
        }

        if (app.Services.FirstOrDefault(s => s.Replicas is < 0 or > OrchestratorDefaults.MaxReplicasPerService) is { } bad)
        {
            throw new ControlPlaneException(ControlPlaneError.Invalid,
                $"services.{bad.Name}.replicas must be between 0 and {OrchestratorDefaults.MaxReplicasPerService}, got {bad.Replicas}");
        }

        var dupes = app.Services.GroupBy(s => s.Name).Where(g => g.Count() > 1).Select(g => g.Key).ToList();
        if (dupes.Count > 0)
        {
            throw new ControlPlaneException(ControlPlaneError.Invalid, $"service names must be unique; repeated: {string.Join(", ", dupes)}");
        }

        ValidateRollouts(app);

        return await MutateAsync(cause, prev => KeepAutoscaledCounts(prev, app), cancellationToken, stopped: prev => prev.Intersect(app.Services.Select(s => s.Name)));
    }

    /// <summary>Sets a service's replica count (a new revision); takes effect at once.</summary>
    public async Task<RevisionRecord> ScaleAsync(string service, int replicas, CancellationToken cancellationToken)
    {
        if (replicas < 0)
        {
            throw new ControlPlaneException(ControlPlaneError.Invalid, $"replicas must be 0 or more, got {replicas}");
        }

        if (replicas > OrchestratorDefaults.MaxReplicasPerService)
        {
            throw new ControlPlaneException(ControlPlaneError.Invalid,
                $"replicas must be at most {OrchestratorDefaults.MaxReplicasPerService} on one machine, got {replicas}; run more on Kubernetes (berth k8s generate)");
        }

        var revision = await MutateAsync($"scale {service}={replicas}", app => WithService(app, service, s => s with { Replicas = replicas }), cancellationToken);
        Emit(EventTypes.Scaled, service, null, $"scaled to {replicas} (revision {revision.Number})");
        return revision;
    }

    /// <summary>Changes a service's template (image, command, env); its replicas are replaced, new ones first.</summary>
    public Task<RevisionRecord> PatchServiceAsync(string service, ServicePatch patch, CancellationToken cancellationToken) =>
        MutateAsync($"patch {service}", app => WithService(app, service, s => s with
        {
            Image = patch.Image ?? s.Image,
            Command = patch.Command ?? s.Command,
            Env = patch.Env is null ? s.Env : s.Env.SetItems(patch.Env),
        }), cancellationToken);

    /// <summary>Stops all replicas of a service, keeping its desired count for <see cref="StartServiceAsync"/>.</summary>
    public Task<RevisionRecord> StopServiceAsync(string service, CancellationToken cancellationToken) =>
        MutateAsync($"stop {service}", app => WithService(app, service, s => s), cancellationToken, stopped: set => set.Add(service));

    public Task<RevisionRecord> StartServiceAsync(string service, CancellationToken cancellationToken) =>
        MutateAsync($"start {service}", app => WithService(app, service, s => s), cancellationToken, stopped: set => set.Remove(service));

    /// <summary>Restarts every running replica of a service, one stop-start each (same id, same port).</summary>
    public async Task<int> RestartServiceAsync(string service, CancellationToken cancellationToken)
    {
        await _lock.WaitAsync(cancellationToken);
        try
        {
            RequireService(service);
            var targets = _replicas.Values.Where(r => r.Service == service && !r.IsFinished && r.Phase != ReplicaPhase.Terminating).ToList();
            foreach (var r in targets)
            {
                RequestRestart(r);
            }

            Snapshot();
            Kick();
            return targets.Count;
        }
        finally
        {
            _lock.Release();
        }
    }

    public async Task RestartReplicaAsync(string replicaId, CancellationToken cancellationToken)
    {
        await _lock.WaitAsync(cancellationToken);
        try
        {
            if (!_replicas.TryGetValue(replicaId, out var r))
            {
                throw new ControlPlaneException(ControlPlaneError.NotFound, $"no replica '{replicaId}'; 'berth ps' lists them");
            }

            RequestRestart(r);
            Snapshot();
            Kick();
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>Stops one replica; the controller replaces it (as deleting a pod) unless the service is scaled down too.</summary>
    public async Task StopReplicaAsync(string replicaId, CancellationToken cancellationToken)
    {
        await _lock.WaitAsync(cancellationToken);
        try
        {
            if (!_replicas.TryGetValue(replicaId, out var r))
            {
                throw new ControlPlaneException(ControlPlaneError.NotFound, $"no replica '{replicaId}'; 'berth ps' lists them");
            }

            var stops = new List<ReplicaRecord>();
            BeginTerminate(r, StopIntent.Remove, stops);
            await PublishRoutesAsync(cancellationToken);
            LaunchStops(stops);
            Snapshot();
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>Where a service's move to its newest template stands, from the replicas alone (before the rollout controller has a record).</summary>
    private RolloutStatus LiveRollout(string service)
    {
        var current = Current ?? throw new ControlPlaneException(ControlPlaneError.Conflict, "nothing is applied yet; run 'berth up' first");
        var spec = current.Application.FindService(service)
            ?? throw new ControlPlaneException(ControlPlaneError.NotFound, $"no service '{service}' in app '{current.Application.Name}'; known: {string.Join(", ", current.Application.Services.Select(s => s.Name))}");
        var template = current.TemplateOf(service);
        var mine = _snapshot.Where(r => r.Service == service).ToList();
        var want = current.Stopped.Contains(service) ? 0 : spec.Replicas;
        var ready = mine.Count(r => r.Revision == template && r.Phase == ReplicaPhase.Ready);
        var old = mine.Count(r => r.Revision != template);
        return ready >= want && old == 0
            ? new RolloutStatus(template, RolloutState.Complete, $"{ready}/{want} replicas of revision {template} ready")
            : new RolloutStatus(template, RolloutState.Progressing, $"{ready}/{want} replicas of revision {template} ready, {old} of older revisions left");
    }

    /// <summary>Stops every replica gracefully (out of routing first) and waits for them; the control plane then does nothing more.</summary>
    public async Task DownAsync(CancellationToken cancellationToken)
    {
        await _lock.WaitAsync(cancellationToken);
        try
        {
            _down = true;
            var stops = new List<ReplicaRecord>();
            foreach (var r in _replicas.Values.ToList())
            {
                BeginTerminate(r, StopIntent.Remove, stops);
            }

            await PublishRoutesAsync(cancellationToken);
            LaunchStops(stops);
            Snapshot();
        }
        finally
        {
            _lock.Release();
        }

        await Poll(() => _replicas.Count == 0, cancellationToken);

        // Let the drivers finish removing what is left (containers, replica cgroups) before the caller tears down nodes.
        try
        {
            await Task.WhenAll(_work.Keys).WaitAsync(TimeSpan.FromSeconds(30), cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
        catch (TimeoutException)
        {
        }
        foreach (var key in _published.Keys.ToList())
        {
            await _routes.RemoveAsync(key.Service, key.Endpoint, cancellationToken);
        }

        _published.Clear();
    }

    /// <summary>Log lines of one replica from its driver.</summary>
    public IAsyncEnumerable<LogEntry> GetLogsAsync(string replicaId, LogOptions options, CancellationToken cancellationToken)
    {
        var r = _snapshot.FirstOrDefault(x => x.Id == replicaId)
            ?? throw new ControlPlaneException(ControlPlaneError.NotFound, $"no replica '{replicaId}'; 'berth ps' lists them");
        if (r.Handle is null)
        {
            throw new ControlPlaneException(ControlPlaneError.Conflict, $"replica '{replicaId}' has not started yet ({Describe(r)}), so it has no logs");
        }

        return DriverFor(r.Handle.Kind).GetLogsAsync(r.Handle, options, cancellationToken);
    }

    /// <summary>Stops the control loop and background work without touching replicas: they keep running for the next control plane to adopt.</summary>
    public async ValueTask DisposeAsync()
    {
        await _life.CancelAsync();
        if (_loop is not null)
        {
            await _loop.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }

        await Task.WhenAll(_work.Keys).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        await Events.DisposeAsync();
        _life.Dispose();
    }

    // ---- the loop --------------------------------------------------------------------------------------------

    private async Task LoopAsync(CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            var wake = _time.GetUtcNow() + _options.ResyncPeriod;
            try
            {
                await _lock.WaitAsync(ct);
                try
                {
                    wake = await ReconcileAsync(ct);
                    Snapshot();
                }
                finally
                {
                    _lock.Release();
                    Interlocked.Exchange(ref _passDone, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
                }
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
#pragma warning disable CA1031 // the loop must outlive one bad pass; the next resync retries
            catch (Exception e)
#pragma warning restore CA1031
            {
                Log.ReconcileFailed(_logger, e);
            }

            var delay = wake - _time.GetUtcNow();
            if (delay > TimeSpan.Zero)
            {
                using var timer = CancellationTokenSource.CreateLinkedTokenSource(ct);
                var sleep = Task.Delay(delay, _time, timer.Token);
                var kicked = _kick.Reader.WaitToReadAsync(timer.Token).AsTask();
                await ((Task)Task.WhenAny(sleep, kicked)).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                await timer.CancelAsync();
                await Task.WhenAll(sleep, kicked).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            }

            _kick.Reader.TryRead(out _);
        }
    }

    private void Kick() => _kick.Writer.TryWrite(true);

    /// <summary>Wakes the loop and completes once two whole passes have run since the call (the first may have been under
    /// way already), so a test can assert that nothing happened without sleeping.</summary>
    internal async Task SettleAsync(CancellationToken cancellationToken)
    {
        for (var i = 0; i < 2; i++)
        {
            var done = Volatile.Read(ref _passDone).Task;
            Kick();
            await done.WaitAsync(TimeSpan.FromSeconds(30), cancellationToken);
        }
    }

    /// <summary>One pass: converge replica counts, start what can start, restart what is due, probe what is due, publish routes.
    /// Returns when the next pass is needed at the latest.</summary>
    private async Task<DateTimeOffset> ReconcileAsync(CancellationToken ct)
    {
        var now = _time.GetUtcNow();
        var wake = now + _options.ResyncPeriod;
        var current = _current;
        if (current is null || _down)
        {
            return wake;
        }

        var app = current.Application;
        var stops = new List<ReplicaRecord>();

        foreach (var r in _replicas.Values.Where(r => app.FindService(r.Service) is null).ToList())
        {
            BeginTerminate(r, StopIntent.Remove, stops);
        }

        foreach (var service in app.Services)
        {
            ConvergeCount(current, service, now, stops);
        }

        wake = _rollouts.TakeWake() is { } rolloutWake ? Min(wake, rolloutWake) : wake;
        if (InstallRollbacks(now))
        {
            current = _current!;
            app = current.Application;
            foreach (var service in app.Services)
            {
                ConvergeCount(current, service, now, stops);
            }
        }

        foreach (var r in _replicas.Values.Where(r => r.Phase == ReplicaPhase.Pending).OrderBy(r => r.CreatedAt).ThenBy(r => r.Id, StringComparer.Ordinal).ToList())
        {
            TrySchedule(app, r);
        }

        foreach (var r in _replicas.Values.Where(r => r.Phase == ReplicaPhase.BackOff).ToList())
        {
            var rt = _runtime[r.Id];
            if (rt.Busy || rt.Intent != StopIntent.None)
            {
                continue;
            }

            if (r.NextRetryAt is { } at && at > now)
            {
                wake = Min(wake, at);
                continue;
            }

            var restarted = Save(r with { Phase = ReplicaPhase.Starting, RestartCount = r.RestartCount + 1, NextRetryAt = null, Reason = null });
            Emit(EventTypes.Restarted, r.Service, r.Id, $"restarting (restart {restarted.RestartCount})");
            BeginStart(app, restarted);
        }

        foreach (var r in _replicas.Values.Where(r => r.Phase is ReplicaPhase.Running or ReplicaPhase.Ready && r.Handle is not null))
        {
            var rt = _runtime[r.Id];
            if (rt.Busy || rt.Intent != StopIntent.None)
            {
                continue;
            }

            foreach (var probe in ActiveProbes(rt))
            {
                if (probe.IsDue(now))
                {
                    LaunchProbe(r, probe);
                }
                else if (!probe.InFlight)
                {
                    wake = Min(wake, probe.NextDue);
                }
            }
        }

        await PublishRoutesAsync(ct);
        LaunchStops(stops);
        return wake;
    }

    private void ConvergeCount(RevisionRecord current, Service service, DateTimeOffset now, List<ReplicaRecord> stops)
    {
        var template = current.TemplateOf(service.Name);
        var want = current.Stopped.Contains(service.Name) ? 0 : service.Replicas;
        // A replica stopping to start again (restart on request, liveness failure) still counts: replacing it as well
        // would leave one too many once it is back.
        var mine = _replicas.Values
            .Where(r => r.Service == service.Name && _runtime[r.Id].Intent switch
            {
                StopIntent.Restart or StopIntent.Unhealthy => true,
                StopIntent.None => r.Phase != ReplicaPhase.Terminating,
                _ => false,
            })
            .ToList();
        var fresh = mine.Where(r => r.Revision == template).ToList();
        var outdated = mine.Where(r => r.Revision != template).ToList();

        var step = _rollouts.Step(current, service, want, fresh, outdated, now, WhyNotReady);
        for (var i = fresh.Count; i < step.NewTarget; i++)
        {
            var id = NewReplicaId(service.Name);
            var r = Save(new ReplicaRecord { Id = id, Service = service.Name, Revision = template, CreatedAt = now, Reason = "waiting to be scheduled" });
            _runtime[id] = new ReplicaRuntime();
            fresh.Add(r);
        }

        // Scale down the least useful first: not placed, backing off, finished, not ready, then the newest Ready.
        foreach (var victim in fresh.OrderBy(VictimRank).ThenByDescending(r => r.CreatedAt).Take(Math.Max(0, fresh.Count - want)))
        {
            BeginTerminate(victim, StopIntent.Remove, stops);
        }

        // Replacement is the rollout controller's: surge and unavailable budgets, minReady, pause, rollback.
        foreach (var r in step.RemoveOld)
        {
            BeginTerminate(r, StopIntent.Remove, stops);
        }
    }

    private static int VictimRank(ReplicaRecord r) => r.Phase switch
    {
        ReplicaPhase.Pending => 0,
        ReplicaPhase.BackOff => 1,
        ReplicaPhase.Failed or ReplicaPhase.Completed or ReplicaPhase.Stopped => 2,
        ReplicaPhase.Starting => 3,
        ReplicaPhase.Running => 4,
        _ => 5,
    };

    private void TrySchedule(Application app, ReplicaRecord r)
    {
        var service = app.FindService(r.Service);
        if (service is null || _scheduler is null)
        {
            return;
        }

        var waiting = UnmetDependency(app, service);
        if (waiting is not null)
        {
            SetPendingReason(r, waiting, EventTypes.Waiting);
            return;
        }

        var driver = _drivers.GetValueOrDefault(service.EffectiveRuntime);
        if (driver is null || !driver.Capabilities.Available)
        {
            SetPendingReason(r, driver is null
                ? $"no {service.EffectiveRuntime.ToString().ToLowerInvariant()} driver in this control plane"
                : $"the {service.EffectiveRuntime.ToString().ToLowerInvariant()} driver is unavailable: {driver.Capabilities.UnavailableReason}", EventTypes.Pending);
            return;
        }

        var placement = _scheduler.Place(Scheduler.RequestFor(r.Id, service));
        if (!placement.Placed)
        {
            SetPendingReason(r, placement.Reason!, EventTypes.Pending);
            return;
        }

        var ports = ImmutableSortedDictionary.CreateBuilder<string, int>(StringComparer.Ordinal);
        foreach (var e in service.Endpoints)
        {
            var port = e.TargetPort ?? (r.Ports.TryGetValue(e.Name, out var p) ? p : _ports.Allocate());
            _ports.Reserve(port);
            ports[e.Name] = port;
        }

        var placed = Save(r with { Phase = ReplicaPhase.Starting, Node = placement.Node, Ports = ports.ToImmutable(), Reason = null });
        var portText = placed.Ports.Count == 0 ? "" : " with " + string.Join(", ", placed.Ports.Select(kv => $"{kv.Key} port {kv.Value}"));
        Emit(EventTypes.Scheduled, r.Service, r.Id, $"scheduled on node {placement.Node}{portText}");
        BeginStart(app, placed);
    }

    private void SetPendingReason(ReplicaRecord r, string reason, string eventType)
    {
        if (r.Reason == reason)
        {
            return;
        }

        Save(r with { Reason = reason });
        Emit(eventType, r.Service, r.Id, reason);
    }

    private string? UnmetDependency(Application app, Service service)
    {
        foreach (var d in service.DependsOn)
        {
            if (app.FindService(d.Service) is null)
            {
                if (d.Required)
                {
                    return $"depends on '{d.Service}', which is not in the app; add it or mark the dependency required: false";
                }

                continue;
            }

            var theirs = _replicas.Values.Where(r => r.Service == d.Service).ToList();
            var met = d.Condition switch
            {
                DependencyCondition.Started => theirs.Any(r => r.Phase is ReplicaPhase.Running or ReplicaPhase.Ready or ReplicaPhase.Completed),
                DependencyCondition.Healthy => theirs.Any(r => r.Phase == ReplicaPhase.Ready),
                _ => theirs.Any(r => r.Phase == ReplicaPhase.Completed)
                    && !theirs.Any(r => r.Phase is ReplicaPhase.Starting or ReplicaPhase.Running or ReplicaPhase.Ready or ReplicaPhase.BackOff or ReplicaPhase.Pending),
            };
            if (!met)
            {
                var what = d.Condition switch
                {
                    DependencyCondition.Started => "to start",
                    DependencyCondition.Healthy => "to be ready (healthy)",
                    _ => "to complete successfully",
                };
                return $"waiting for '{d.Service}' {what} (depends_on)";
            }
        }

        return null;
    }

    // ---- start, watch, exit -------------------------------------------------------------------------------------

    private void BeginStart(Application app, ReplicaRecord r)
    {
        var service = app.FindService(r.Service)!;
        var rt = _runtime[r.Id];
        rt.Busy = true;
        var spec = BuildSpec(app, service, r);
        var driver = _drivers[service.EffectiveRuntime];
        var previous = r.Handle;
        Track(async () =>
        {
            ReplicaHandle? handle = null;
            string? error = null;
            await _startGate.WaitAsync(_life.Token);
            try
            {
                if (previous is not null)
                {
                    await IgnoreErrors(() => driver.RemoveAsync(previous, _life.Token), "remove", r.Id);
                }

                handle = await driver.StartAsync(spec, _life.Token);
            }
            catch (Exception e) when (e is not OperationCanceledException || !_life.IsCancellationRequested)
            {
                error = e.Message;
            }
            finally
            {
                _startGate.Release();
            }

            await UnderLockAsync(ct => OnStartedAsync(r.Id, handle, error, ct));
        });
    }

    private async Task OnStartedAsync(string id, ReplicaHandle? handle, string? error, CancellationToken ct)
    {
        if (!_replicas.TryGetValue(id, out var r))
        {
            return;
        }

        var rt = _runtime[id];
        rt.Busy = false;
        var now = _time.GetUtcNow();
        if (handle is null)
        {
            Emit(EventTypes.Failed, r.Service, id, $"could not start: {error}");
            if (rt.Intent == StopIntent.Remove)
            {
                Release(r);
                Delete(r);
                return;
            }

            r = Save(r with { StartedAt = now });
            HandleExit(r, new ReplicaStatus { State = ReplicaState.Unknown, Error = error }, now, forceFailure: true);
            return;
        }

        r = Save(r with { Phase = ReplicaPhase.Running, Handle = handle, StartedAt = now, ReadyAt = null, Reason = null });
        Emit(EventTypes.Started, r.Service, id, handle.Pid is { } pid ? $"started (pid {pid})" : "started");
        InstallProbes(r, rt, now, adopted: false);
        Watch(r, rt);
        if (rt.Intent != StopIntent.None)
        {
            var stops = new List<ReplicaRecord> { r };
            Save(r with { Phase = ReplicaPhase.Terminating });
            LaunchStops(stops);
            return;
        }

        UpdateReadiness(r, rt, now);
        await PublishRoutesAsync(ct);
    }

    private void Watch(ReplicaRecord r, ReplicaRuntime rt)
    {
        rt.Watch?.Cancel();
        rt.Watch?.Dispose();
        var cts = CancellationTokenSource.CreateLinkedTokenSource(_life.Token);
        rt.Watch = cts;
        var handle = r.Handle!;
        rt.WatchedHandle = handle;
        var driver = DriverFor(handle.Kind);
        Track(async () =>
        {
            ReplicaStatus status;
            try
            {
                status = await driver.WaitForExitAsync(handle, cts.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (Exception e)
            {
                status = new ReplicaStatus { State = ReplicaState.Unknown, Error = e.Message };
            }

            await UnderLockAsync(ct =>
            {
                if (_replicas.TryGetValue(r.Id, out var now) && _runtime[r.Id] is { Intent: StopIntent.None } rt2 && ReferenceEquals(rt2.WatchedHandle, handle)
                    && now.Phase is ReplicaPhase.Running or ReplicaPhase.Ready)
                {
                    HandleExit(now, status, _time.GetUtcNow(), forceFailure: false);
                }

                return PublishRoutesAsync(ct);
            });
        });
    }

    /// <summary>Applies the restart policy to an exit: back off and restart, or finish as Completed/Failed.</summary>
    private void HandleExit(ReplicaRecord r, ReplicaStatus status, DateTimeOffset now, bool forceFailure)
    {
        var rt = _runtime[r.Id];
        rt.Probes.Clear();
        rt.Watch?.Cancel();
        rt.WatchedHandle = null;
        var failed = forceFailure || rt.KilledUnhealthy || status.OomKilled || status.ExitCode is not 0 || status.Signal is not null;
        rt.KilledUnhealthy = false;
        var how = status.OomKilled ? "was OOM-killed"
            : status.Signal is { } sig ? $"was killed by signal {sig}"
            : status.ExitCode is { } code ? $"exited with code {code}"
            : $"is gone ({status.Error ?? "no exit status"})";
        Emit(status.OomKilled ? EventTypes.OomKilled : EventTypes.Exited, r.Service, r.Id, $"{how} after {Human(now - (r.StartedAt ?? now))}");

        var service = _current?.Application.FindService(r.Service);
        if (service is null)
        {
            Release(r);
            Delete(r);
            return;
        }

        var policy = service.Restart;
        var streak = RestartBackoff.StreakAfterRun(policy, r.ConsecutiveFailures, now - (r.StartedAt ?? now));
        if (RestartBackoff.ShouldRestart(policy.Mode, failed) && (policy.MaxAttempts is not { } max || streak < max))
        {
            var delay = RestartBackoff.Delay(policy, streak);
            Save(r with
            {
                Phase = ReplicaPhase.BackOff,
                NextRetryAt = now + delay,
                ConsecutiveFailures = streak + 1,
                LastExitCode = status.ExitCode,
                ReadyAt = null,
                Reason = delay > TimeSpan.Zero ? $"{how}; back-off {Durations.Format(delay)} before the next restart" : $"{how}; restarting",
            });
            if (delay > TimeSpan.Zero)
            {
                Emit(EventTypes.BackOff, r.Service, r.Id, $"back-off {Durations.Format(delay)} (failure {streak + 1} in a row)");
            }

            Kick();
            return;
        }

        Release(r);
        var final = failed ? ReplicaPhase.Failed : ReplicaPhase.Completed;
        Save(r with
        {
            Phase = final,
            LastExitCode = status.ExitCode,
            ReadyAt = null,
            Reason = policy.MaxAttempts is { } m && streak >= m ? $"{how}; gave up after {m} restarts in a row" : $"{how}; restart: {Kebab(policy.Mode)}",
        });
        Kick();
    }

    // ---- stop ---------------------------------------------------------------------------------------------------

    private void RequestRestart(ReplicaRecord r)
    {
        if (r.Phase == ReplicaPhase.BackOff)
        {
            Save(r with { NextRetryAt = _time.GetUtcNow() });
            return;
        }

        if (r.Phase is ReplicaPhase.Running or ReplicaPhase.Ready or ReplicaPhase.Starting)
        {
            var stops = new List<ReplicaRecord>();
            BeginTerminate(r, StopIntent.Restart, stops);
            LaunchStops(stops);
        }
    }

    /// <summary>Marks a replica for stopping. It leaves routing at once (it is no longer Ready); the driver stop is
    /// launched by <see cref="LaunchStops"/> after routes are published, so traffic moves before the process goes.</summary>
    private void BeginTerminate(ReplicaRecord r, StopIntent intent, List<ReplicaRecord> stops)
    {
        var rt = _runtime[r.Id];
        if (rt.Intent != StopIntent.None && intent != StopIntent.Remove)
        {
            return;
        }

        rt.Intent = intent;
        if (r.Handle is null || r.Phase is ReplicaPhase.Pending or ReplicaPhase.BackOff or ReplicaPhase.Completed or ReplicaPhase.Failed or ReplicaPhase.Stopped)
        {
            if (rt.Busy)
            {
                return; // starting: OnStarted sees the intent and stops it
            }

            if (intent == StopIntent.Remove)
            {
                Release(r);
                if (r.Handle is not null)
                {
                    var h = r.Handle;
                    Track(() => IgnoreErrors(() => DriverFor(h.Kind).RemoveAsync(h, _life.Token), "remove", r.Id));
                }

                Delete(r);
                Emit(EventTypes.Stopped, r.Service, r.Id, "removed");
            }
            else
            {
                rt.Intent = StopIntent.None;
            }

            return;
        }

        if (r.Phase == ReplicaPhase.Terminating)
        {
            return;
        }

        var terminating = Save(r with { Phase = ReplicaPhase.Terminating, Reason = intent switch
        {
            StopIntent.Restart => "restarting on request",
            StopIntent.Unhealthy => r.Reason,
            _ => "stopping",
        } });
        if (!rt.Busy)
        {
            stops.Add(terminating);
        }
    }

    private void LaunchStops(List<ReplicaRecord> stops)
    {
        foreach (var r in stops)
        {
            var rt = _runtime[r.Id];
            var handle = r.Handle!;
            var grace = _current?.Application.FindService(r.Service)?.StopGracePeriod ?? ServiceDefaults.StopGracePeriod;
            rt.Busy = true;
            rt.Watch?.Cancel();
            rt.WatchedHandle = null;
            Emit(EventTypes.Stopping, r.Service, r.Id, $"stopping (grace {Durations.Format(grace)})");
            var driver = DriverFor(handle.Kind);
            Track(async () =>
            {
                ReplicaStatus status;
                try
                {
                    status = await driver.StopAsync(handle, grace, _life.Token);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    Log.DriverFailed(_logger, "stop", r.Id, e);
                    status = new ReplicaStatus { State = ReplicaState.Unknown, Error = e.Message };
                }

                await UnderLockAsync(ct => OnStoppedAsync(r.Id, status, ct));
            });
        }

        stops.Clear();
    }

    private async Task OnStoppedAsync(string id, ReplicaStatus status, CancellationToken ct)
    {
        if (!_replicas.TryGetValue(id, out var r))
        {
            return;
        }

        var rt = _runtime[id];
        rt.Busy = false;
        var intent = rt.Intent;
        rt.Intent = StopIntent.None;
        var handle = r.Handle;
        var driver = handle is null ? null : DriverFor(handle.Kind);
        var now = _time.GetUtcNow();
        switch (intent)
        {
            case StopIntent.Restart:
                Emit(EventTypes.Stopped, r.Service, id, "stopped for restart");
                var restarted = Save(r with { Phase = ReplicaPhase.Starting, RestartCount = r.RestartCount + 1, Reason = null });
                Emit(EventTypes.Restarted, r.Service, id, $"restarting on request (restart {restarted.RestartCount})");
                BeginStart(_current!.Application, restarted);
                break;
            case StopIntent.Unhealthy:
                rt.KilledUnhealthy = true;
                HandleExit(r, status, now, forceFailure: true);
                break;
            default:
                Release(r);
                Delete(r);
                Emit(EventTypes.Stopped, r.Service, id, status.ExitCode is { } code ? $"stopped (exit code {code})" : "stopped");
                if (driver is not null)
                {
                    Track(() => IgnoreErrors(() => driver.RemoveAsync(handle!, _life.Token), "remove", id));
                }

                break;
        }

        await PublishRoutesAsync(ct);
        Kick();
    }

    // ---- probes -------------------------------------------------------------------------------------------------

    private static IEnumerable<ProbeTracker> ActiveProbes(ReplicaRuntime rt) =>
        rt.StartupPassed ? rt.Probes.Where(p => p.Role != ProbeRole.Startup) : rt.Probes.Where(p => p.Role == ProbeRole.Startup);

    private void InstallProbes(ReplicaRecord r, ReplicaRuntime rt, DateTimeOffset startedAt, bool adopted)
    {
        rt.Probes.Clear();
        var service = _current?.Application.FindService(r.Service);
        if (service is null)
        {
            return;
        }

        // An adopted replica keeps what it had proven: a Ready one stays in routing while its probes are re-run.
        var wasReady = adopted && r.Phase == ReplicaPhase.Ready;
        if (service.Startup is { } s)
        {
            rt.Probes.Add(new ProbeTracker(s, ProbeRole.Startup, startedAt, initiallyPassing: adopted));
        }

        if (service.Liveness is { } l)
        {
            rt.Probes.Add(new ProbeTracker(l, ProbeRole.Liveness, startedAt));
        }

        if (service.Readiness is { } rd)
        {
            rt.Probes.Add(new ProbeTracker(rd, ProbeRole.Readiness, startedAt, initiallyPassing: wasReady));
        }
    }

    private void LaunchProbe(ReplicaRecord r, ProbeTracker probe)
    {
        probe.InFlight = true;
        var handle = r.Handle!;
        var target = ProbeTargetFor(r, probe.Probe);
        Track(async () =>
        {
            ProbeOutcome outcome;
            try
            {
                outcome = await _prober.RunAsync(probe.Probe, target, _life.Token);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                outcome = new ProbeOutcome(false, e.Message);
            }

            await UnderLockAsync(ct => OnProbedAsync(r.Id, handle, probe, outcome, ct));
        });
    }

    private ProbeTarget ProbeTargetFor(ReplicaRecord r, Probe probe)
    {
        var service = _current?.Application.FindService(r.Service);
        int? port = probe.Port;
        if (port is null && service is not null && !service.Endpoints.IsDefaultOrEmpty)
        {
            var name = probe.Endpoint ?? service.Endpoints[0].Name;
            port = r.Ports.TryGetValue(name, out var p) ? p : null;
        }

        return new ProbeTarget(_options.Host, port)
        {
            ContainerId = r.Handle?.ContainerId,
            WorkingDirectory = service?.WorkingDir ?? _current?.Application.BaseDirectory,
        };
    }

    private async Task OnProbedAsync(string id, ReplicaHandle handle, ProbeTracker probe, ProbeOutcome outcome, CancellationToken ct)
    {
        if (!_replicas.TryGetValue(id, out var r) || !ReferenceEquals(r.Handle, handle) || !_runtime[id].Probes.Contains(probe))
        {
            return; // the replica moved on (restarted, stopped) while the probe ran
        }

        var rt = _runtime[id];
        var now = _time.GetUtcNow();
        var transition = probe.Record(outcome.Success, outcome.Message, now);
        if (transition == ProbeTransition.Failed && probe.Role is ProbeRole.Liveness or ProbeRole.Startup)
        {
            var what = probe.Role == ProbeRole.Liveness ? "liveness" : "startup";
            Emit(EventTypes.Unhealthy, r.Service, id, $"{what} probe failed {probe.Probe.FailureThreshold} times ({outcome.Message}); restarting");
            var stops = new List<ReplicaRecord>();
            BeginTerminate(r with { Reason = $"{what} probe failed: {outcome.Message}" }, StopIntent.Unhealthy, stops);
            await PublishRoutesAsync(ct);
            LaunchStops(stops);
        }
        else if (transition != ProbeTransition.None)
        {
            UpdateReadiness(r, rt, now, outcome.Message);
            await PublishRoutesAsync(ct);
        }

        Kick();
    }

    private void UpdateReadiness(ReplicaRecord r, ReplicaRuntime rt, DateTimeOffset now, string? why = null)
    {
        var ready = rt.ReadyByProbes;
        if (ready && r.Phase == ReplicaPhase.Running)
        {
            Save(r with { Phase = ReplicaPhase.Ready, ReadyAt = now, Reason = null });
            Emit(EventTypes.Ready, r.Service, r.Id, r.StartedAt is { } s ? $"ready {Human(now - s)} after start" : "ready");
        }
        else if (!ready && r.Phase == ReplicaPhase.Ready)
        {
            Save(r with { Phase = ReplicaPhase.Running, ReadyAt = null, Reason = $"readiness probe failing: {why}" });
            Emit(EventTypes.NotReady, r.Service, r.Id, $"not ready: {why}; removed from routing");
        }
    }

    // ---- adoption -----------------------------------------------------------------------------------------------

    private async Task AdoptAsync(CancellationToken ct)
    {
        var live = new Dictionary<string, ReplicaHandle>(StringComparer.Ordinal);
        var appName = _current?.Application.Name;
        if (appName is not null)
        {
            foreach (var driver in _drivers.Values.Where(d => d.Capabilities.Available))
            {
                try
                {
                    foreach (var h in await driver.ListAsync(appName, ct))
                    {
                        live[h.ReplicaId] = h;
                    }
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    Log.DriverFailed(_logger, "list", appName, e);
                }
            }
        }

        var now = _time.GetUtcNow();
        var stops = new List<ReplicaRecord>();
        foreach (var r in _replicas.Values.ToList())
        {
            var service = _current?.Application.FindService(r.Service);
            if (r.HoldsResources && service is not null && r.Node is not null)
            {
                _scheduler?.Restore(Scheduler.RequestFor(r.Id, service), r.Node);
            }

            foreach (var p in r.Ports.Values)
            {
                _ports.Reserve(p);
            }

            if (r.Phase is not (ReplicaPhase.Starting or ReplicaPhase.Running or ReplicaPhase.Ready or ReplicaPhase.Terminating))
            {
                continue;
            }

            var handle = live.GetValueOrDefault(r.Id) ?? r.Handle;
            ReplicaStatus status;
            try
            {
                status = handle is null
                    ? new ReplicaStatus { State = ReplicaState.Unknown, Error = "no handle was recorded" }
                    : await DriverFor(handle.Kind).InspectAsync(handle, ct);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                status = new ReplicaStatus { State = ReplicaState.Unknown, Error = e.Message };
            }

            if (r.Phase == ReplicaPhase.Terminating)
            {
                _runtime[r.Id].Intent = StopIntent.Remove;
                stops.Add(r with { Handle = handle });
                continue;
            }

            if (status.State == ReplicaState.Running && handle is not null)
            {
                var adopted = Save(r with { Handle = handle, Phase = r.Phase == ReplicaPhase.Starting ? ReplicaPhase.Running : r.Phase, StartedAt = r.StartedAt ?? now });
                Emit(EventTypes.Adopted, r.Service, r.Id, handle.Pid is { } pid ? $"adopted running replica (pid {pid})" : "adopted running replica");
                var rt = _runtime[r.Id];
                InstallProbes(adopted, rt, now, adopted: true);
                Watch(adopted, rt);
                UpdateReadiness(adopted, rt, now);
            }
            else
            {
                var exited = Save(r with { Handle = handle });
                HandleExit(exited, status.State == ReplicaState.Unknown
                    ? status with { Error = $"vanished while the control plane was down ({status.Error})" }
                    : status, now, forceFailure: status.State != ReplicaState.Exited);
            }
        }

        foreach (var (id, h) in live)
        {
            if (!_replicas.ContainsKey(id))
            {
                var driver = DriverFor(h.Kind);
                Emit(EventTypes.Orphan, h.Service, id, "found running with no record; stopping it");
                Track(async () =>
                {
                    await IgnoreErrors(() => driver.StopAsync(h, ServiceDefaults.StopGracePeriod, _life.Token), "stop", id);
                    await IgnoreErrors(() => driver.RemoveAsync(h, _life.Token), "remove", id);
                });
            }
        }

        await PublishRoutesAsync(ct);
        LaunchStops(stops);
    }

    // ---- desired state ------------------------------------------------------------------------------------------

    private async Task<RevisionRecord> MutateAsync(string cause, Func<Application, Application> change, CancellationToken ct,
        Func<ImmutableSortedSet<string>, IEnumerable<string>>? stopped = null)
    {
        await _lock.WaitAsync(ct);
        try
        {
            return MutateLocked(cause, change, stopped);
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>Makes a new revision; the caller holds the lock. <paramref name="reuse"/> gives a service an earlier
    /// template number (a rollback: its replicas of that template are kept, as Kubernetes reuses the old ReplicaSet).</summary>
    private RevisionRecord MutateLocked(string cause, Func<Application, Application> change,
        Func<ImmutableSortedSet<string>, IEnumerable<string>>? stopped = null, (string Service, long Template)? reuse = null)
    {
        {
            var previous = _current;
            Application next;
            if (previous is null)
            {
                next = change(null!);
                if (next is null)
                {
                    throw new ControlPlaneException(ControlPlaneError.Conflict, "nothing is applied yet; run 'berth up' first");
                }
            }
            else
            {
                next = change(previous.Application);
            }

            var now = _time.GetUtcNow();
            var revision = _store.AddRevision(n => new RevisionRecord
            {
                Number = n,
                CreatedAt = now,
                Cause = cause,
                Application = next,
                Templates = next.Services.ToImmutableSortedDictionary(
                    s => s.Name,
                    s => reuse is { } re && re.Service == s.Name ? re.Template
                        : previous?.Application.FindService(s.Name) is { } old && TemplateKey(old) == TemplateKey(s) ? previous.TemplateOf(s.Name) : n,
                    StringComparer.Ordinal),
                Stopped = [.. stopped is null ? previous?.Stopped ?? [] : stopped(previous?.Stopped ?? [])],
            });
            Install(revision);
            Emit(EventTypes.Revision, null, null, $"revision {revision.Number}: {cause}");
            WarnUnenforcedLimits(revision.Application);
            Snapshot();
            Kick();
            return revision;
        }
    }

    /// <summary>One event per service whose limits are not enforced, the first time this control plane sees it (or its wording change).</summary>
    private void WarnUnenforcedLimits(Application app)
    {
        foreach (var w in LimitsCheck.Check(app, _drivers.Values))
        {
            if (_limitsWarned.GetValueOrDefault(w.Service) != w.Message)
            {
                _limitsWarned[w.Service] = w.Message;
                Emit(EventTypes.LimitsNotEnforced, w.Service, null, w.Message);
            }
        }
    }

    private Application WithService(Application app, string service, Func<Service, Service> change)
    {
        if (app is null)
        {
            throw new ControlPlaneException(ControlPlaneError.Conflict, "nothing is applied yet; run 'berth up' first");
        }

        var s = app.FindService(service) ?? throw new ControlPlaneException(ControlPlaneError.NotFound,
            $"no service '{service}' in app '{app.Name}'; known: {string.Join(", ", app.Services.Select(x => x.Name))}");
        return app with { Services = app.Services.Replace(s, change(s)) };
    }

    private void RequireService(string service)
    {
        var app = _current?.Application ?? throw new ControlPlaneException(ControlPlaneError.Conflict, "nothing is applied yet; run 'berth up' first");
        if (app.FindService(service) is null)
        {
            throw new ControlPlaneException(ControlPlaneError.NotFound,
                $"no service '{service}' in app '{app.Name}'; known: {string.Join(", ", app.Services.Select(x => x.Name))}");
        }
    }

    /// <summary>What makes replicas different: everything but the count, autoscaling and mesh policy.</summary>
    internal static string TemplateKey(Service s) =>
        JsonSerializer.Serialize(s with { Replicas = 0, Autoscale = null, Mesh = MeshPolicy.Default }, StateJson.Options);

    private void Install(RevisionRecord revision)
    {
        _current = revision;
        var app = revision.Application;
        var shape = JsonSerializer.Serialize(new { app.Nodes, app.Scheduler }, StateJson.Options);
        if (_scheduler is null || shape != _schedulerShape)
        {
            _scheduler = new Scheduler(Scheduler.NodesFor(app), app.Scheduler, _random, _portFreeOnMachine);
            _schedulerShape = shape;
            foreach (var r in _replicas.Values.Where(r => r.HoldsResources && r.Node is not null))
            {
                if (app.FindService(r.Service) is { } s)
                {
                    _scheduler.Restore(Scheduler.RequestFor(r.Id, s), r.Node!);
                }
            }
        }

        var persisted = _store.ListEndpointPorts();
        lock (_stablePorts)
        {
            foreach (var s in app.Services)
            {
                foreach (var e in s.Endpoints)
                {
                    var key = (s.Name, e.Name);
                    var port = e.Port ?? (persisted.TryGetValue(key, out var p) ? p : _ports.Allocate());
                    _ports.Reserve(port);
                    if (!persisted.TryGetValue(key, out var old) || old != port)
                    {
                        _store.SaveEndpointPort(s.Name, e.Name, port);
                    }

                    _stablePorts[key] = port;
                }
            }
        }
    }

    // ---- routes -------------------------------------------------------------------------------------------------

    private async Task PublishRoutesAsync(CancellationToken ct)
    {
        var app = _current?.Application;
        if (app is null)
        {
            return;
        }

        foreach (var s in app.Services)
        {
            foreach (var e in s.Endpoints)
            {
                var key = (s.Name, e.Name);
                var upstreams = _replicas.Values
                    .Where(r => r.Service == s.Name && r.Phase == ReplicaPhase.Ready && r.Ports.ContainsKey(e.Name))
                    .OrderBy(r => r.Id, StringComparer.Ordinal)
                    .Select(r => new Upstream(r.Id, _options.Host, r.Ports[e.Name], r.Revision))
                    .ToImmutableArray();
                if (_published.TryGetValue(key, out var old) && old.SequenceEqual(upstreams))
                {
                    continue;
                }

                int stable;
                lock (_stablePorts)
                {
                    stable = _stablePorts[key];
                }

                try
                {
                    await _routes.UpdateAsync(new ServiceRoute(s.Name, e with { Port = stable }, s.Mesh, upstreams), ct);
                    _published[key] = upstreams;
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    Log.RouteFailed(_logger, s.Name, e.Name, ex);
                }
            }
        }

        foreach (var key in _published.Keys.Where(k => app.FindService(k.Service)?.Endpoints.Any(e => e.Name == k.Endpoint) != true).ToList())
        {
            await _routes.RemoveAsync(key.Service, key.Endpoint, ct);
            _published.Remove(key);
        }
    }

    // ---- helpers ------------------------------------------------------------------------------------------------

    private ReplicaSpec BuildSpec(Application app, Service service, ReplicaRecord r)
    {
        var env = ImmutableSortedDictionary.CreateBuilder<string, string>(StringComparer.Ordinal);
        lock (_stablePorts)
        {
            foreach (var ((svc, ep), port) in _stablePorts)
            {
                var scheme = app.FindService(svc)?.Endpoints.FirstOrDefault(e => e.Name == ep)?.Protocol == EndpointProtocol.Tcp ? "tcp" : "http";
                env[$"services__{svc}__{ep}__0"] = $"{scheme}://{_options.Host}:{port}";
            }
        }

        if (!service.Endpoints.IsDefaultOrEmpty)
        {
            env["PORT"] = r.Ports[service.Endpoints[0].Name].ToString(CultureInfo.InvariantCulture);
            var urls = service.Endpoints.Where(e => e.Protocol == EndpointProtocol.Http).Select(e => $"http://{_options.Host}:{r.Ports[e.Name]}").ToList();
            if (urls.Count > 0)
            {
                env["ASPNETCORE_URLS"] = string.Join(';', urls);
            }

            foreach (var e in service.Endpoints)
            {
                env[$"BERTH_PORT_{e.Name.ToUpperInvariant().Replace('-', '_')}"] = r.Ports[e.Name].ToString(CultureInfo.InvariantCulture);
            }
        }

        env["BERTH_SERVICE"] = service.Name;
        env["BERTH_REPLICA"] = r.Id;
        env["BERTH_REVISION"] = r.Revision.ToString(CultureInfo.InvariantCulture);
        foreach (var kv in _options.ReplicaEnvironment)
        {
            env[kv.Key] = kv.Value;
        }

        if (_options.ReplicaEnvironment.ContainsKey("OTEL_EXPORTER_OTLP_ENDPOINT"))
        {
            env["OTEL_SERVICE_NAME"] = service.Name;
            env["OTEL_RESOURCE_ATTRIBUTES"] = string.Create(CultureInfo.InvariantCulture, $"service.instance.id={r.Id},berth.app={app.Name},berth.service={service.Name},berth.replica={r.Id},berth.revision={r.Revision}");
        }

        foreach (var kv in service.Env)
        {
            env[kv.Key] = kv.Value;
        }

        var labels = service.Labels.SetItems(new Dictionary<string, string>
        {
            ["berth.app"] = app.Name,
            ["berth.service"] = service.Name,
            ["berth.replica"] = r.Id,
            ["berth.revision"] = r.Revision.ToString(CultureInfo.InvariantCulture),
        });

        return new ReplicaSpec
        {
            App = app.Name,
            Service = service.Name,
            ReplicaId = r.Id,
            Revision = r.Revision,
            Image = service.Image,
            Entrypoint = service.Entrypoint is { } entrypoint ? ArgvExpansion.Expand(entrypoint, env) : null,
            Command = ArgvExpansion.Expand(service.Command, env),
            Shell = service.Shell,
            WorkingDir = service.WorkingDir ?? (service.EffectiveRuntime == RuntimeKind.Process ? app.BaseDirectory : null),
            User = service.User,
            Env = env.ToImmutable(),
            Ports = r.Ports,
            Volumes = service.Volumes,
            CpuLimit = service.Resources.CpuLimit,
            MemoryLimit = service.Resources.MemoryLimit,
            Node = app.Nodes.IsDefaultOrEmpty || r.Node is null ? null : NodeCgroupSpec.PathFor(app.Name, r.Node),
            StateDirectory = Path.Combine(_options.StateDirectory, "replicas", r.Id),
            Labels = labels,
            SecretEnv = [.. service.SecretEnv.Where(service.Env.ContainsKey).Select(k => service.Env[k]).Where(v => v.Length > 0),
                .. service.Files.Where(f => f.Kind == MountedFileKind.Secret && f.Content is { Length: > 0 }).Select(f => f.Content!)],
            Files = service.Files,
            Container = service.Container,
            PullPolicy = service.PullPolicy,
        };
    }

    private IWorkloadDriver DriverFor(RuntimeKind kind) =>
        _drivers.TryGetValue(kind, out var d) ? d : throw new ControlPlaneException(ControlPlaneError.Conflict, $"no {kind} driver in this control plane");

    private string NewReplicaId(string service)
    {
        while (true)
        {
            var id = $"{service}-{_random.Next(0x100000):x5}";
            if (!_replicas.ContainsKey(id))
            {
                return id;
            }
        }
    }

    private ReplicaRecord Save(ReplicaRecord r)
    {
        _replicas[r.Id] = r;
        _store.SaveReplica(r);
        return r;
    }

    private void Delete(ReplicaRecord r)
    {
        _replicas.Remove(r.Id);
        if (_runtime.Remove(r.Id, out var rt))
        {
            rt.Watch?.Cancel();
        }

        _store.DeleteReplica(r.Id);
    }

    private void Release(ReplicaRecord r)
    {
        _scheduler?.Release(r.Id);
        foreach (var p in r.Ports.Values)
        {
            _ports.Release(p);
        }
    }

    private void Emit(string type, string? service, string? replica, string message)
    {
        Events.Emit(type, service, replica, message);
        Log.Event(_logger, type, service, replica, message);
    }

    private void Snapshot() => _snapshot = [.. _replicas.Values.OrderBy(r => r.Service, StringComparer.Ordinal).ThenBy(r => r.CreatedAt).ThenBy(r => r.Id, StringComparer.Ordinal)];

    private void Track(Func<Task> work)
    {
        var task = Task.Run(work, CancellationToken.None);
        _work[task] = true;
        task.ContinueWith(t => _work.TryRemove(t, out _), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    private async Task UnderLockAsync(Func<CancellationToken, Task> action)
    {
        try
        {
            await _lock.WaitAsync(_life.Token);
        }
        catch (OperationCanceledException)
        {
            return;
        }

        try
        {
            await action(_life.Token);
            Snapshot();
            Kick();
        }
#pragma warning disable CA1031 // background completions must not crash the control plane; the resync repairs
        catch (Exception e) when (e is not OperationCanceledException)
#pragma warning restore CA1031
        {
            Log.ReconcileFailed(_logger, e);
        }
        catch (OperationCanceledException e)
        {
            Log.ReconcileFailed(_logger, e);
        }
        finally
        {
            _lock.Release();
        }
    }

    private Task UnderLockAsync(Action action) => UnderLockAsync(_ =>
    {
        action();
        return Task.CompletedTask;
    });

    private async Task IgnoreErrors(Func<Task> action, string operation, string replica)
    {
        try
        {
            await action();
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            Log.DriverFailed(_logger, operation, replica, e);
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task Poll(Func<bool> condition, CancellationToken ct)
    {
        while (true)
        {
            await _lock.WaitAsync(ct);
            bool done;
            try
            {
                done = condition();
            }
            finally
            {
                _lock.Release();
            }

            if (done)
            {
                return;
            }

            await Task.Delay(TimeSpan.FromMilliseconds(20), ct); // waiting on driver stops, not timing logic
        }
    }

    private static string Describe(ReplicaRecord r) => r.Reason is null ? Kebab(r.Phase) : $"{Kebab(r.Phase)}: {r.Reason}";

    private static string Kebab<T>(T value) where T : struct, Enum => JsonNamingPolicy.KebabCaseLower.ConvertName(value.ToString());

    /// <summary>850ms, 1.973s, 2m5s: short and exact enough for events.</summary>
    private static string Human(TimeSpan t) =>
        t < TimeSpan.FromSeconds(1) ? $"{Math.Round(t.TotalMilliseconds).ToString(CultureInfo.InvariantCulture)}ms"
        : t < TimeSpan.FromMinutes(1) ? $"{Math.Round(t.TotalSeconds, 3).ToString("0.###", CultureInfo.InvariantCulture)}s"
        : Durations.Format(TimeSpan.FromSeconds(Math.Round(t.TotalSeconds)));

    private static DateTimeOffset Min(DateTimeOffset a, DateTimeOffset b) => a < b ? a : b;
}
