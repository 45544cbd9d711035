using System.Collections.Immutable;
using Berth.Core.Contracts;
using Berth.Core.Model;
using Berth.Core.Routing;
using Berth.Orchestration.Scheduling;
using Berth.Orchestration.State;
using Berth.Runtime;
using Berth.Runtime.Logs;
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

/// <summary>Brings one app to its desired state and keeps it there. This is the façade the API calls; the work is done by
/// small parts (docs/architecture.md, Orchestration): <see cref="ReconcileLoop"/> (lock, wake-ups, resync, background
/// work), <see cref="ReconcilePass"/> and <see cref="Reconciler"/> (pure decisions), <see cref="ReplicaLifecycle"/>, <see cref="ReplicaPlacer"/>,
/// <see cref="ProbeCoordinator"/>, <see cref="Adopter"/>, <see cref="RevisionManager"/>, <see cref="StablePortRegistry"/>,
/// <see cref="RoutePublisher"/> and <see cref="ReplicaSpecBuilder"/>. Readers get one immutable <see cref="View"/>.</summary>
public sealed partial class ControlPlane : IAsyncDisposable
{
    private readonly PlaneState _state;

    /// <summary>The control plane's clock (event times, <c>since</c> relative to now).</summary>
    public TimeProvider Time => _state.Time;
    private readonly ReconcileLoop _loop;
    private readonly StablePortRegistry _stablePorts;
    private readonly RoutePublisher _routes;
    private readonly ReplicaLifecycle _lifecycle;
    private readonly TerminatedReplicas _terminated;
    private readonly ReplicaPlacer _placer;
    private readonly ProbeCoordinator _probes;
    private readonly Adopter _adopter;
    private readonly RevisionManager _revisions;
    private readonly RolloutController _rollouts;
    private readonly ReconcilePass _pass;
    private ControlPlaneView _view = ControlPlaneView.Empty;

    public ControlPlane(OrchestratorOptions options, StateStore store, IEnumerable<IWorkloadDriver> drivers, IRouteSink routes,
        IProbeExecutor prober, TimeProvider? time = null, ILogger<ControlPlane>? logger = null, Random? random = null,
        Func<int, bool>? portFreeOnMachine = null, PortAllocator? ports = null)
    {
        var clock = time ?? TimeProvider.System;
        var log = (ILogger?)logger ?? NullLogger<ControlPlane>.Instance;
        var allocator = ports ?? new PortAllocator();
        Events = new EventBus(store, clock, options.EventRetention);
        _loop = new ReconcileLoop(clock, options.ResyncPeriod, log, PublishView, store.Batch);
        _state = new PlaneState(options, store, drivers.ToDictionary(d => d.Kind), clock, random ?? Random.Shared, log, Events, _loop, allocator);
        _stablePorts = new StablePortRegistry(store, allocator);
        _routes = new RoutePublisher(routes, _stablePorts, options.Host, log, options.ReplicaEnvironment);
        _probes = new ProbeCoordinator(_state, prober);
        _terminated = new TerminatedReplicas(_state);
        _lifecycle = new ReplicaLifecycle(_state, _probes, _routes, _stablePorts, new SemaphoreSlim(Math.Max(1, options.StartConcurrency)), _terminated);
        _routes.OnConflict = c => _state.Emit(EventTypes.PortConflict, c.Service, null, c.Message);
        _placer = new ReplicaPlacer(_state, _lifecycle, _routes);
        _adopter = new Adopter(_state, _lifecycle, _probes);
        _rollouts = new RolloutController(store, _state.Emit);
        _revisions = new RevisionManager(_state, _stablePorts, _rollouts, portFreeOnMachine ?? PortAllocator.IsFreeOnMachine);
        _pass = new ReconcilePass(_state, _lifecycle, _placer, _probes, _revisions, _rollouts);
    }

    public EventBus Events { get; }

    public StateStore Store => _state.Store;

    /// <summary>The control plane as of the last pass or change: revision, replicas, stable ports and nodes, all consistent.</summary>
    public ControlPlaneView View => Volatile.Read(ref _view);

    /// <summary>Endpoints whose stable port another program holds; their services stay Pending until it is free.</summary>
    public IReadOnlyCollection<PortConflict> PortConflicts => _routes.Conflicts.Values.ToList();

    /// <summary>True once every endpoint of the current revision has had its stable port listened on or refused.</summary>
    public bool ListenersSettled => Current is { } current && _routes.Settled(current.Application);

    /// <summary>The desired state now in force, or null before the first apply.</summary>
    public RevisionRecord? Current => View.Current;

    /// <summary>A consistent snapshot of all replica records.</summary>
    public ImmutableArray<ReplicaRecord> Replicas => View.Replicas;

    /// <summary>The stable (mesh) port of each service endpoint.</summary>
    public IReadOnlyDictionary<(string Service, string Endpoint), int> StablePorts => View.StablePorts;

    /// <summary>The workload drivers and what each can enforce here, for the API.</summary>
    public IReadOnlyCollection<IWorkloadDriver> Drivers => [.. _state.Drivers.Values];

    /// <summary>Services of the current revision whose limits their driver cannot enforce here (they still run).</summary>
    public IReadOnlyList<LimitsWarning> LimitWarnings => Current is { } current
        ? [.. LimitsCheck.Check(current.Application, _state.Drivers.Values), .. PodsCheck.Check(current.Application, _state.Options)]
        : [];

    /// <summary>The node capacities and allocations, for the API.</summary>
    public IReadOnlyList<NodeState> Nodes => View.Nodes;

    /// <summary>Loads the persisted state, adopts running replicas (without restarting them) and starts the control loop.</summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await _loop.LockedAsync(async () =>
        {
            if (_state.Store.CurrentRevision() is { } current)
            {
                _revisions.Install(current);
            }

            _rollouts.Load(_state.Now);
            foreach (var r in _state.Store.ListReplicas())
            {
                _state.Replicas[r.Id] = r;
                _state.Runtime[r.Id] = new ReplicaRuntime();
            }

            await _adopter.AdoptAsync(cancellationToken);

            // After 'berth down' nothing runs until the next apply: 'berth up' then starts the spec it brings, not the
            // revision the app was taken down on (which it would start first and then roll away from).
            _heldUntilApply = File.Exists(DownMarker) && _state.Replicas.Count == 0;
            _state.Down = _heldUntilApply;
        }, cancellationToken);
        _loop.Start(_pass.RunAsync);
    }

    /// <summary>Written by <see cref="DownAsync"/> once every replica is gone; removed by the next apply.</summary>
    private string DownMarker => Path.Combine(_state.Options.StateDirectory, "down");

    /// <summary>Started on a state taken down (<see cref="DownMarker"/>) and not yet applied to; guarded by the loop's lock.
    /// Only this hold is lifted by an apply: one that comes while this control plane itself goes down starts nothing.</summary>
    private bool _heldUntilApply;

    /// <summary>Makes <paramref name="app"/> the desired state (a new revision when a template changed). Services whose template is
    /// unchanged keep their replicas. Renaming the app or removing every service needs <paramref name="prune"/>.</summary>
    public async Task<RevisionRecord> ApplyAsync(Application app, string cause, CancellationToken cancellationToken, bool prune = false)
    {
        app = RevisionManager.Validate(app);
        var revision = await MutateAsync(cause, prev =>
        {
            RevisionManager.RequirePrune(prev, app, prune);
            return RevisionManager.KeepAutoscaledCounts(prev, app);
        }, cancellationToken, stopped: prev => prev.Intersect(app.Services.Select(s => s.Name)));
        if (Volatile.Read(ref _heldUntilApply))
        {
            await _loop.LockedAsync(() =>
            {
                if (_heldUntilApply)
                {
                    (_heldUntilApply, _state.Down) = (false, false);
                    _loop.Kick();
                    try
                    {
                        File.Delete(DownMarker);
                    }
                    catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                    {
                        // Kept: the next control plane on this state also waits for an apply, which 'berth up' brings.
                        _state.Logger.LogWarning("could not remove {Marker} ({Problem})", DownMarker, e.Message);
                    }
                }
            }, cancellationToken);
        }

        return revision;
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

        // The event goes in the same locked section (and transaction) as the change it reports.
        return await _loop.LockedAsync(() =>
        {
            var revision = _revisions.Mutate($"scale {service}={replicas}", app => RevisionManager.WithService(app, service, s => s with { Replicas = replicas }));
            _state.Emit(EventTypes.Scaled, service, null, $"scaled to {replicas} (revision {revision.Number})");
            return revision;
        }, cancellationToken);
    }

    /// <summary>Changes a service's template (image, command, env); its replicas are replaced, new ones first.</summary>
    public Task<RevisionRecord> PatchServiceAsync(string service, ServicePatch patch, CancellationToken cancellationToken) =>
        MutateAsync($"patch {service}", app => RevisionManager.WithService(app, service, s => s with
        {
            Image = patch.Image is null ? s.Image
                : s.EffectiveRuntime == RuntimeKind.Process ? throw ControlPlaneMessages.ImageOnProcessServiceError(s)
                : patch.Image,
            Command = patch.Command ?? s.Command,
            Env = patch.Env is null ? s.Env : s.Env.SetItems(patch.Env),
        }), cancellationToken);

    /// <summary>Stops all replicas of a service, keeping its desired count for <see cref="StartServiceAsync"/>.</summary>
    public Task<RevisionRecord> StopServiceAsync(string service, CancellationToken cancellationToken) =>
        MutateAsync($"stop {service}", app => RevisionManager.WithService(app, service, s => s), cancellationToken, stopped: set => set.Add(service));

    public Task<RevisionRecord> StartServiceAsync(string service, CancellationToken cancellationToken) =>
        MutateAsync($"start {service}", app => RevisionManager.WithService(app, service, s => s), cancellationToken, stopped: set => set.Remove(service));

    /// <summary>Restarts every running replica of a service, one stop-start each (same id, same port).</summary>
    public Task<int> RestartServiceAsync(string service, CancellationToken cancellationToken) => _loop.LockedAsync(() =>
    {
        RequireService(service);
        var targets = _state.Replicas.Values.Where(r => r.Service == service && !r.IsFinished && r.Phase != ReplicaPhase.Terminating).ToList();
        foreach (var r in targets)
        {
            _lifecycle.RequestRestart(r);
        }

        _loop.Kick();
        return targets.Count;
    }, cancellationToken);

    public Task RestartReplicaAsync(string replicaId, CancellationToken cancellationToken) => _loop.LockedAsync(() =>
    {
        _lifecycle.RequestRestart(FindReplica(replicaId));
        _loop.Kick();
    }, cancellationToken);

    /// <summary>Stops one replica; the controller replaces it (as deleting a pod) unless the service is scaled down too.</summary>
    public Task StopReplicaAsync(string replicaId, CancellationToken cancellationToken) => _loop.LockedAsync(async () =>
    {
        var stops = new List<ReplicaRecord>();
        _lifecycle.BeginTerminate(FindReplica(replicaId), StopIntent.Remove, stops);
        await _lifecycle.PublishRoutesAsync(cancellationToken);
        _lifecycle.LaunchStops(stops);
    }, cancellationToken);

    /// <summary>Stops every replica gracefully (out of routing first) and waits for them; the control plane then does nothing more.</summary>
    public async Task DownAsync(CancellationToken cancellationToken)
    {
        foreach (var id in OneOffs)
        {
            await RemoveOneOffAsync(id, remove: true, cancellationToken);
        }

        await _loop.LockedAsync(async () =>
        {
            (_state.Down, _heldUntilApply) = (true, false);
            var stops = new List<ReplicaRecord>();
            foreach (var r in _state.Replicas.Values.ToList())
            {
                _lifecycle.BeginTerminate(r, StopIntent.Remove, stops);
            }

            await _lifecycle.PublishRoutesAsync(cancellationToken);
            _lifecycle.LaunchStops(stops);
        }, cancellationToken);

        await _loop.PollAsync(() => _state.Replicas.Count == 0, cancellationToken);

        // Let the drivers finish removing what is left (containers, replica cgroups) before the caller tears down nodes.
        await _loop.DrainAsync(TimeSpan.FromSeconds(30), cancellationToken);
        await _routes.RemoveAllAsync(cancellationToken);
        try
        {
            await File.WriteAllTextAsync(DownMarker, $"{_state.Now:O}\n", cancellationToken);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A read-only or full state folder: the next 'up' starts the kept revision first, then applies its spec.
            _state.Logger.LogWarning("could not write {Marker} ({Problem}); the next up starts the kept revision before its own", DownMarker, e.Message);
        }
    }

    /// <summary>Log lines of one replica from its driver.</summary>
    public IAsyncEnumerable<LogEntry> GetLogsAsync(string replicaId, LogOptions options, CancellationToken cancellationToken)
    {
        var r = View.Replicas.FirstOrDefault(x => x.Id == replicaId) ?? throw ControlPlaneMessages.NoReplicaError(replicaId);
        if (r.Handle is null)
        {
            throw new ControlPlaneException(ControlPlaneError.Conflict, $"replica '{replicaId}' has not started yet ({Text.Describe(r)}), so it has no logs");
        }

        return _state.DriverFor(r.Handle.Kind).GetLogsAsync(r.Handle, options, cancellationToken);
    }

    /// <summary>Logs of what ran before, as <c>kubectl logs --previous</c> (issue #14 §9): for a live replica, its runs before
    /// the current one (a restart appends to the same files); for a removed one, its kept logs; for a service, the replica
    /// of it removed last. Answers the replica the lines are from.</summary>
    public (string Replica, IAsyncEnumerable<LogEntry> Lines) GetPreviousLogs(string name, LogOptions options, CancellationToken cancellationToken)
    {
        options = options with { Follow = false };
        if (View.Replicas.FirstOrDefault(x => x.Id == name) is { } live)
        {
            if (live.Handle is null || live.RestartCount == 0 || live.StartedAt is not { } started)
            {
                throw new ControlPlaneException(ControlPlaneError.NotFound,
                    $"replica '{name}' has not restarted, so it has no previous run; 'berth logs {name}' shows this one");
            }

            return (name, Previous(_state.DriverFor(live.Handle.Kind), live.Handle, started, options, cancellationToken));
        }

        var kept = _terminated.List();
        var match = kept.FirstOrDefault(k => k.Id == name) ?? kept.FirstOrDefault(k => k.Service == name);
        if (match is null)
        {
            var isService = _state.Current?.Application.FindService(name) is not null;
            throw new ControlPlaneException(ControlPlaneError.NotFound, isService
                ? $"no removed replica of service '{name}' has its logs kept; the last {_state.Options.TerminatedReplicasKept} removed replicas of each service are kept"
                : $"no replica or service '{name}', and no removed replica of that id has its logs kept; 'berth ps' lists replicas");
        }

        return (match.Id, LogArchive.ReadAsync(match.Directory, options, cancellationToken));
    }

    /// <summary>The lines stamped before the current run began. The driver's start time is the boundary (the supervisor
    /// stamps a line when it reads it, after it recorded the start); the record's is later, as it is taken once the
    /// driver has answered, by which time the new run may have printed.</summary>
    private static async IAsyncEnumerable<LogEntry> Previous(IWorkloadDriver driver, ReplicaHandle handle, DateTimeOffset recorded, LogOptions options,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var startedAt = (await driver.InspectAsync(handle, cancellationToken)).StartedAt ?? recorded;
        var tail = options.Tail;
        var before = new List<LogEntry>();
        await foreach (var e in driver.GetLogsAsync(handle, options with { Tail = null }, cancellationToken).WithCancellation(cancellationToken))
        {
            if (e.Timestamp < startedAt)
            {
                before.Add(e);
            }
        }

        foreach (var e in tail is { } n ? before.Skip(Math.Max(0, before.Count - n)) : before)
        {
            yield return e;
        }
    }

    /// <summary>Stops the control loop and background work without touching replicas: they keep running for the next control plane to adopt.</summary>
    public async ValueTask DisposeAsync()
    {
        await _loop.DisposeAsync();
        await Events.DisposeAsync();
    }

    /// <summary>Wakes the loop and completes once two whole passes have run (see <see cref="ReconcileLoop.SettleAsync"/>).</summary>
    internal Task SettleAsync(CancellationToken cancellationToken) => _loop.SettleAsync(cancellationToken);

    private Task<RevisionRecord> MutateAsync(string cause, Func<Application, Application> change, CancellationToken ct,
        Func<ImmutableSortedSet<string>, IEnumerable<string>>? stopped = null) =>
        _loop.LockedAsync(async () =>
        {
            var revision = _revisions.Mutate(cause, change, stopped);
            // Listen on new stable ports now, so the caller (berth up) learns at once when one is taken.
            await _lifecycle.PublishRoutesAsync(ct);
            return revision;
        }, ct);

    private void RequireService(string service)
    {
        var app = _state.Current?.Application ?? throw ControlPlaneMessages.NothingAppliedError();
        if (app.FindService(service) is null)
        {
            throw ControlPlaneMessages.NoServiceError(app, service);
        }
    }

    private ReplicaRecord FindReplica(string replicaId) =>
        _state.Replicas.TryGetValue(replicaId, out var r) ? r : throw ControlPlaneMessages.NoReplicaError(replicaId);

    /// <summary>Publishes the view; called by the loop at the end of every locked section.</summary>
    private void PublishView() => Volatile.Write(ref _view, new ControlPlaneView(
        _state.Current,
        [.. _state.Replicas.Values.OrderBy(r => r.Service, StringComparer.Ordinal).ThenBy(r => r.CreatedAt).ThenBy(r => r.Id, StringComparer.Ordinal)],
        _stablePorts.Ports,
        [.. _state.Scheduler?.Nodes.Select(n => n.Snapshot()) ?? []]));
}
