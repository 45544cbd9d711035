using Berth.Orchestration.State;

namespace Berth.Orchestration.Controllers;

/// <summary>One reconcile pass, run by the loop under its lock: asks the <see cref="Reconciler"/> what to do and has the
/// parts do it, in an order that keeps traffic safe (routes are published before any stop is launched).</summary>
internal sealed class ReconcilePass(PlaneState state, ReplicaLifecycle lifecycle, ReplicaPlacer placer, ProbeCoordinator probes,
    RevisionManager revisions, RolloutController rollouts)
{
    /// <summary>How soon a pass retries writes a store fault left undone: 500 ms.</summary>
    private static readonly TimeSpan StoreRetry = TimeSpan.FromMilliseconds(500);

    /// <summary>One pass: converge replica counts, start what can start, restart what is due, probe what is due, publish
    /// routes, then stop what must stop. Returns when the next pass is needed at the latest.</summary>
    public async Task<DateTimeOffset> RunAsync(CancellationToken ct)
    {
        var now = state.Now;
        var wake = now + state.Options.ResyncPeriod;
        if (!state.RetryUnsaved() | !rollouts.RetryUnsaved())
        {
            // The store still cannot be written (a full disk): try again soon rather than at the resync, so the control
            // plane catches up within a second of space being freed.
            wake = Reconciler.Min(wake, now + StoreRetry);
        }

        if (state.Current is not { } current || state.Down)
        {
            return wake;
        }

        // Listeners first: a stable port another program holds keeps its service Pending (placement reads the conflicts).
        await lifecycle.PublishRoutesAsync(ct);
        var stops = new List<ReplicaRecord>();
        foreach (var r in Reconciler.Orphans(current.Application, state.Replicas.Values))
        {
            lifecycle.BeginTerminate(r, StopIntent.Remove, stops);
        }

        ConvergeCounts(current, now, stops);
        wake = rollouts.TakeWake() is { } rolloutWake ? Reconciler.Min(wake, rolloutWake) : wake;
        if (revisions.InstallRollbacks())
        {
            current = state.Current!;
            ConvergeCounts(current, now, stops);
        }

        var app = current.Application;
        var plan = Reconciler.Plan(state.Replicas.Values, state.Runtime, now, wake);
        foreach (var id in plan.Schedule)
        {
            placer.TrySchedule(app, state.Replicas[id]);
        }

        foreach (var id in plan.Restart)
        {
            lifecycle.RestartFromBackOff(app, state.Replicas[id]);
        }

        foreach (var (id, probe) in plan.Probe)
        {
            lifecycle.LaunchProbe(state.Replicas[id], probe);
        }

        await lifecycle.PublishRoutesAsync(ct);
        lifecycle.LaunchStops(stops);
        return plan.NextWake;
    }

    private void ConvergeCounts(RevisionRecord current, DateTimeOffset now, List<ReplicaRecord> stops)
    {
        foreach (var service in current.Application.Services)
        {
            var template = current.TemplateOf(service.Name);
            var want = Reconciler.Want(current, service);
            var mine = state.Replicas.Values.Where(r => r.Service == service.Name && Reconciler.Counts(r, state.Runtime[r.Id].Intent)).ToList();
            var fresh = mine.Where(r => r.Revision == template).ToList();
            var outdated = mine.Where(r => r.Revision != template).ToList();

            // Replacement is the rollout controller's: surge and unavailable budgets, minReady, pause, rollback.
            var plan = Reconciler.Converge(want, fresh, rollouts.Step(current, service, want, fresh, outdated, now, probes.WhyNotReady));
            for (var i = 0; i < plan.Create; i++)
            {
                var id = state.NewReplicaId(service.Name);
                state.Save(new ReplicaRecord { Id = id, Service = service.Name, Revision = template, CreatedAt = now, Reason = "waiting to be scheduled" });
                state.Runtime[id] = new ReplicaRuntime();
            }

            foreach (var r in plan.Terminate)
            {
                lifecycle.BeginTerminate(r, StopIntent.Remove, stops);
            }
        }
    }
}
