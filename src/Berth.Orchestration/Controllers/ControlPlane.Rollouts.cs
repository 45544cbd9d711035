using Berth.Core.Contracts;
using Berth.Core.Model;
using Berth.Orchestration.State;

namespace Berth.Orchestration.Controllers;

/// <summary>The rollout side of the control plane: status, history, undo, pause and resume, and installing the
/// rollbacks the <see cref="RolloutController"/> decides on.</summary>
public sealed partial class ControlPlane
{
    /// <summary>Where a service's rollout stands: progressing, complete, rolled-back, failed or paused, with why.</summary>
    public RolloutStatus GetRollout(string service)
    {
        var live = LiveRollout(service);
        var template = Current!.TemplateOf(service);
        var rec = _rollouts.Get(service);
        if (rec is null || rec.Template != template)
        {
            return live;
        }

        return rec switch
        {
            { State: RolloutState.Failed } => new RolloutStatus(template, RolloutState.Failed, rec.Message),
            { Paused: true } => new RolloutStatus(template, RolloutState.Paused, $"paused: {live.Message}; 'berth rollout resume {service}' continues"),
            { State: RolloutState.RolledBack } => new RolloutStatus(template, RolloutState.RolledBack, rec.Message),
            _ => live,
        };
    }

    /// <summary>The service's templates in the kept revisions, oldest first (as <c>kubectl rollout history</c>).</summary>
    public IReadOnlyList<RolloutHistoryEntry> GetRolloutHistory(string service)
    {
        RequireService(service);
        var current = Current!.TemplateOf(service);
        var seen = new Dictionary<long, RolloutHistoryEntry>();
        foreach (var r in _store.ListRevisions().OrderBy(r => r.Number))
        {
            if (r.Application.FindService(service) is { } s && r.TemplateOf(service) is var t && !seen.ContainsKey(t))
            {
                var origin = t == r.Number ? r : _store.GetRevision(t) ?? r;
                seen[t] = new RolloutHistoryEntry(t, origin.CreatedAt, origin.Cause, s.Image, s.Command, t == current);
            }
        }

        return [.. seen.Values.OrderBy(e => e.Revision)];
    }

    /// <summary>Rolls a service back to an earlier template (<paramref name="toRevision"/>, else the one before the current)
    /// as a new revision; replicas still running that template are kept.</summary>
    public async Task<RevisionRecord> UndoRolloutAsync(string service, long? toRevision, CancellationToken cancellationToken)
    {
        await _lock.WaitAsync(cancellationToken);
        try
        {
            RequireService(service);
            var current = _current!.TemplateOf(service);
            var revisions = _store.ListRevisions();
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
            return MutateLocked($"undo {service} to revision {target}", app => WithService(app, service, s => Restore(spec, s)), reuse: (service, target));
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>Holds a service's rollout where it is (no new replicas of the new template, no old ones removed).</summary>
    public Task PauseRolloutAsync(string service, CancellationToken cancellationToken) => SetPausedAsync(service, true, cancellationToken);

    public Task ResumeRolloutAsync(string service, CancellationToken cancellationToken) => SetPausedAsync(service, false, cancellationToken);

    private async Task SetPausedAsync(string service, bool paused, CancellationToken ct)
    {
        await _lock.WaitAsync(ct);
        try
        {
            RequireService(service);
            var now = _time.GetUtcNow();
            var rec = _rollouts.Get(service) ?? new RolloutRecord { Service = service, Template = _current!.TemplateOf(service), StartedAt = now, LastProgressAt = now };
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
            Emit(paused ? RolloutEvents.Paused : RolloutEvents.Resumed, service, null,
                paused ? $"rollout of revision {rec.Template} paused on request" : $"rollout of revision {rec.Template} resumed");
            Kick();
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>An apply does not undo the autoscaler: a service autoscaled before and after keeps its current count,
    /// brought within the new min/max (the HPA owns the count; applying a manifest with <c>replicas</c> over it is a
    /// well-known Kubernetes pitfall).</summary>
    private static Application KeepAutoscaledCounts(Application? previous, Application next)
    {
        if (previous is null)
        {
            return next;
        }

        return next with
        {
            Services = [.. next.Services.Select(s => s.Autoscale is { } policy && previous.FindService(s.Name) is { Autoscale: not null } old
                ? s with { Replicas = Math.Clamp(old.Replicas, policy.Min, Math.Max(policy.Min, policy.Max)) }
                : s)],
        };
    }

    /// <summary>Rejects rollout settings no rolling update could follow (the loader reports them with positions; this guards the API).</summary>
    private static void ValidateRollouts(Application app)
    {
        var problems = app.Services
            .SelectMany(s => new[] { ("update", s.Update), ("rollback", s.Rollback) }.Where(u => u.Item2 is not null).Select(u => (Service: s.Name, Key: u.Item1, Strategy: u.Item2!)))
            .Where(x => x.Strategy.MaxSurge.IsZero && x.Strategy.MaxUnavailable.IsZero)
            .Select(x => $"services.{x.Service}.{x.Key}: maxSurge and maxUnavailable are both 0, so a rolling update could never make progress; set maxSurge to 1 (start a new replica first) or maxUnavailable to 1")
            .ToList();
        if (problems.Count > 0)
        {
            throw new ControlPlaneException(ControlPlaneError.Invalid, string.Join("; ", problems));
        }
    }

    /// <summary>Installs the rollbacks the rollout controller decided on in this pass, each as a new revision.</summary>
    private bool InstallRollbacks(DateTimeOffset now)
    {
        var any = false;
        foreach (var rb in _rollouts.TakeRollbacks())
        {
            if (_current?.Application.FindService(rb.Service) is null)
            {
                continue;
            }

            MutateLocked($"rollback {rb.Service} to revision {rb.ToTemplate} (automatic)",
                app => WithService(app, rb.Service, s => Restore(rb.Spec, s)), reuse: (rb.Service, rb.ToTemplate));
            any = true;
        }

        _ = now;
        return any;
    }

    /// <summary>An earlier template with today's count, autoscaling and mesh policy (those are not part of a template).</summary>
    private static Service Restore(Service template, Service now) => template with { Replicas = now.Replicas, Autoscale = now.Autoscale, Mesh = now.Mesh };

    private string WhyNotReady(ReplicaRecord r)
    {
        var probe = _runtime.TryGetValue(r.Id, out var rt) ? rt.Probes.FirstOrDefault(p => p.Role == ProbeRole.Readiness && !p.Passing) : null;
        return probe?.LastMessage is { } m ? $"readiness probe failing: {m}" : Describe(r);
    }
}

/// <summary>The autoscaler's entry points into the control plane.</summary>
public sealed partial class ControlPlane
{
    /// <summary>Sets a service's replica count for the autoscaler (a new revision, cause <c>autoscale NAME=N</c>) and emits
    /// an <c>autoscaled</c> event with the numbers behind it.</summary>
    public async Task<RevisionRecord> AutoscaleAsync(string service, int replicas, string why, CancellationToken cancellationToken)
    {
        await _lock.WaitAsync(cancellationToken);
        try
        {
            var revision = MutateLocked($"autoscale {service}={replicas}", app => WithService(app, service, s => s with { Replicas = replicas }));
            Emit(RolloutEvents.Autoscaled, service, null, why);
            return revision;
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>A running replica's resource use from its driver (CPU over the driver's sample window).</summary>
    public Task<Runtime.ReplicaStats> GetReplicaStatsAsync(ReplicaRecord replica, CancellationToken cancellationToken) =>
        replica.Handle is { } h
            ? DriverFor(h.Kind).GetStatsAsync(h, cancellationToken)
            : throw new ControlPlaneException(ControlPlaneError.Conflict, $"replica '{replica.Id}' has not started yet, so it has no stats");
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
