using Berth.Core.Contracts;
using Berth.Orchestration.State;

namespace Berth.Orchestration.Controllers;

/// <summary>The rollout side of the façade: status, history, undo, pause and resume (the decisions are the
/// <see cref="RolloutController"/>'s), and the autoscaler's entry points.</summary>
public sealed partial class ControlPlane
{
    /// <summary>Where a service's rollout stands: progressing, complete, rolling-back, rolled-back, failed or paused, with why.
    /// <c>rolled-back</c> only once every wanted replica runs the good template again and is Ready.</summary>
    public RolloutStatus GetRollout(string service)
    {
        var live = LiveRollout(service);
        var template = live.Revision;
        var rec = _rollouts.Get(service);
        if (rec is null || rec.Template != template)
        {
            return live;
        }

        return rec switch
        {
            { State: RolloutState.Failed } => new RolloutStatus(template, RolloutState.Failed, rec.Message),
            { Paused: true } => new RolloutStatus(template, RolloutState.Paused, $"paused: {live.Message}; 'berth rollout resume {service}' continues"),
            { RollbackUnderWay: true } => new RolloutStatus(template, RolloutState.RollingBack, rec.RollingBack
                ? $"rolling back to revision {template}: {rec.Why}; {live.Message}"
                : $"rolling back to revision {rec.RollbackTo}: {rec.Why}"),
            { State: RolloutState.RolledBack } => new RolloutStatus(template, RolloutState.RolledBack, rec.Message),
            _ => live,
        };
    }

    /// <summary>The service's templates in the kept revisions, oldest first (as <c>kubectl rollout history</c>).</summary>
    public IReadOnlyList<RolloutHistoryEntry> GetRolloutHistory(string service)
    {
        var view = View;
        var app = view.Current?.Application ?? throw ControlPlaneMessages.NothingAppliedError();
        if (app.FindService(service) is null)
        {
            throw ControlPlaneMessages.NoServiceError(app, service);
        }

        var current = view.Current.TemplateOf(service);
        var seen = new Dictionary<long, RolloutHistoryEntry>();
        foreach (var r in Store.ListRevisions().OrderBy(r => r.Number))
        {
            if (r.Application.FindService(service) is { } s && r.TemplateOf(service) is var t && !seen.ContainsKey(t))
            {
                var origin = t == r.Number ? r : Store.GetRevision(t) ?? r;
                seen[t] = new RolloutHistoryEntry(t, origin.CreatedAt, origin.Cause, s.Image, s.Command, t == current);
            }
        }

        return [.. seen.Values.OrderBy(e => e.Revision)];
    }

    /// <summary>Rolls a service back to an earlier template (<paramref name="toRevision"/>, else the one before the current)
    /// as a new revision; replicas still running that template are kept.</summary>
    public Task<RevisionRecord> UndoRolloutAsync(string service, long? toRevision, CancellationToken cancellationToken) => _loop.LockedAsync(() =>
    {
        RequireService(service);
        var current = _state.Current!.TemplateOf(service);
        var revisions = Store.ListRevisions();
        var source = toRevision is { } n
            ? revisions.FirstOrDefault(r => r.TemplateOf(service) == n && r.Application.FindService(service) is not null)
                ?? throw new ControlPlaneException(ControlPlaneError.NotFound,
                    $"no revision {n} of '{service}' in the kept history; 'berth rollout history {service}' lists them")
            : revisions.FirstOrDefault(r => r.TemplateOf(service) != current && r.Application.FindService(service) is not null)
                ?? throw new ControlPlaneException(ControlPlaneError.Conflict,
                    $"'{service}' has no earlier revision in the kept history to go back to; 'berth rollout history {service}' lists them");
        var target = source.TemplateOf(service);
        if (target == current)
        {
            throw new ControlPlaneException(ControlPlaneError.Conflict, $"'{service}' already runs revision {target}");
        }

        var spec = source.Application.FindService(service)!;
        return _revisions.Mutate($"undo {service} to revision {target}",
            app => RevisionManager.WithService(app, service, s => RevisionManager.Restore(spec, s)), reuse: (service, target));
    }, cancellationToken);

    /// <summary>Holds a service's rollout where it is (no new replicas of the new template, no old ones removed).</summary>
    public Task PauseRolloutAsync(string service, CancellationToken cancellationToken) => SetPausedAsync(service, true, cancellationToken);

    public Task ResumeRolloutAsync(string service, CancellationToken cancellationToken) => SetPausedAsync(service, false, cancellationToken);

    /// <summary>Sets a service's replica count for the autoscaler (a new revision, cause <c>autoscale NAME=N</c>) and emits
    /// an <c>autoscaled</c> event with the numbers behind it.</summary>
    public Task<RevisionRecord> AutoscaleAsync(string service, int replicas, string why, CancellationToken cancellationToken) => _loop.LockedAsync(() =>
    {
        var revision = _revisions.Mutate($"autoscale {service}={replicas}", app => RevisionManager.WithService(app, service, s => s with { Replicas = replicas }));
        _state.Emit(RolloutEvents.Autoscaled, service, null, why);
        return revision;
    }, cancellationToken);

    /// <summary>A running replica's resource use from its driver (CPU over the driver's sample window).</summary>
    public Task<Runtime.ReplicaStats> GetReplicaStatsAsync(ReplicaRecord replica, CancellationToken cancellationToken) =>
        replica.Handle is { } h
            ? _state.DriverFor(h.Kind).GetStatsAsync(h, cancellationToken)
            : throw new ControlPlaneException(ControlPlaneError.Conflict, $"replica '{replica.Id}' has not started yet, so it has no stats");

    /// <summary>A running replica's processes from its driver (<c>berth top</c>).</summary>
    public Task<IReadOnlyList<Runtime.Process.ProcessRow>> GetReplicaProcessesAsync(ReplicaRecord replica, CancellationToken cancellationToken) =>
        replica.Handle is { } h
            ? _state.DriverFor(h.Kind).TopAsync(h, cancellationToken)
            : throw new ControlPlaneException(ControlPlaneError.Conflict, $"replica '{replica.Id}' has not started yet, so it has no processes");

    private Task SetPausedAsync(string service, bool paused, CancellationToken ct) => _loop.LockedAsync(() =>
    {
        RequireService(service);
        var now = _state.Now;
        var rec = _rollouts.Get(service) ?? new RolloutRecord { Service = service, Template = _state.Current!.TemplateOf(service), StartedAt = now, LastProgressAt = now };
        if (rec.Paused == paused)
        {
            return;
        }

        _rollouts.Update(paused
            ? rec with { Paused = true }
            : rec with
            {
                Paused = false,
                State = rec.State == RolloutState.Failed ? RolloutState.Progressing : rec.State,
                FailureHandled = false,
                Failures = rec.Failures.Clear(),
                LastProgressAt = now,
            });
        _state.Emit(paused ? RolloutEvents.Paused : RolloutEvents.Resumed, service, null,
            paused ? $"rollout of revision {rec.Template} paused on request" : $"rollout of revision {rec.Template} resumed");
        _loop.Kick();
    }, ct);

    /// <summary>Where a service's move to its newest template stands, from the replicas alone (before the rollout controller has a record).</summary>
    private RolloutStatus LiveRollout(string service)
    {
        var view = View;
        var current = view.Current ?? throw new ControlPlaneException(ControlPlaneError.Conflict, ControlPlaneMessages.NothingApplied);
        var spec = current.Application.FindService(service) ?? throw ControlPlaneMessages.NoServiceError(current.Application, service);
        var template = current.TemplateOf(service);
        var mine = view.Replicas.Where(r => r.Service == service).ToList();
        var want = Reconciler.Want(current, spec);
        var ready = mine.Count(r => r.Revision == template && r.Phase == ReplicaPhase.Ready);
        var old = mine.Count(r => r.Revision != template);
        return ready >= want && old == 0
            ? new RolloutStatus(template, RolloutState.Complete, $"{ready}/{want} replicas of revision {template} ready")
            : new RolloutStatus(template, RolloutState.Progressing, $"{ready}/{want} replicas of revision {template} ready, {old} of older revisions left");
    }
}

/// <summary>CPU from the replicas' drivers and requests/s from a source the host provides (the mesh).</summary>
public sealed class DriverAutoscaleMetrics(ControlPlane plane, Func<string, CancellationToken, Task<double?>>? requestsPerSecond = null) : IAutoscaleMetrics
{
    public async Task<double?> CpuPercentAsync(ReplicaRecord replica, CancellationToken cancellationToken)
    {
        try
        {
            return (await plane.GetReplicaStatsAsync(replica, cancellationToken)).CpuPercent;
        }
        catch (Exception e) when (e is ControlPlaneException or InvalidOperationException or IOException or KeyNotFoundException)
        {
            return null; // the replica went away between listing and sampling
        }
    }

    public Task<double?> RequestsPerSecondAsync(string service, CancellationToken cancellationToken) =>
        requestsPerSecond is null ? Task.FromResult<double?>(null) : requestsPerSecond(service, cancellationToken);
}
