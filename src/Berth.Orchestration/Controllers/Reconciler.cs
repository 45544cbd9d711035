using Berth.Core.Model;
using Berth.Orchestration.State;

namespace Berth.Orchestration.Controllers;

/// <summary>How a service's replica count converges in one pass: how many records to create, which to stop.</summary>
internal sealed record CountPlan(int Create, IReadOnlyList<ReplicaRecord> Terminate);

/// <summary>The rest of a pass once counts converged: Pending replicas to place (in order), back-offs that are over,
/// probes that are due, and when the next pass is needed at the latest.</summary>
internal sealed record PassPlan(
    IReadOnlyList<string> Schedule,
    IReadOnlyList<string> Restart,
    IReadOnlyList<(string Replica, ProbeTracker Probe)> Probe,
    DateTimeOffset NextWake);

/// <summary>The reconciler's decisions as pure functions of the state: no I/O, no clock, no store. The pass in
/// <see cref="ControlPlane"/> asks these what to do and has the lifecycle parts do it, so tests call them directly.</summary>
internal static class Reconciler
{
    /// <summary>Replicas whose service left the app.</summary>
    public static IReadOnlyList<ReplicaRecord> Orphans(Application app, IEnumerable<ReplicaRecord> replicas) =>
        [.. replicas.Where(r => app.FindService(r.Service) is null)];

    /// <summary>Whether a replica counts toward its service's count. One stopping to start again (restart on request,
    /// liveness failure) still counts: replacing it as well would leave one too many once it is back.</summary>
    public static bool Counts(ReplicaRecord r, StopIntent intent) => intent switch
    {
        StopIntent.Restart or StopIntent.Unhealthy => true,
        StopIntent.None => r.Phase != ReplicaPhase.Terminating,
        StopIntent.Remove => false,
    };

    /// <summary>Replicas wanted now: 0 while the service is stopped.</summary>
    public static int Want(RevisionRecord current, Service service) => current.Stopped.Contains(service.Name) ? 0 : service.Replicas;

    /// <summary>Creates new replicas up to the rollout's target, scales down the least useful first (<see cref="VictimOrder"/>,
    /// then the newest), and removes the old ones the rollout lets go.</summary>
    public static CountPlan Converge(int want, IReadOnlyList<ReplicaRecord> fresh, RolloutStep step)
    {
        var create = Math.Max(0, step.NewTarget - fresh.Count);
        var excess = Math.Max(0, fresh.Count + create - want);
        var victims = fresh.OrderBy(VictimOrder.Rank).ThenByDescending(r => r.CreatedAt).Take(excess);
        return new CountPlan(create, [.. victims, .. step.RemoveOld]);
    }

    /// <summary>Everything else one pass does, decided from the records and the in-memory runtime at <paramref name="now"/>.</summary>
    public static PassPlan Plan(IReadOnlyCollection<ReplicaRecord> replicas, IReadOnlyDictionary<string, ReplicaRuntime> runtime, DateTimeOffset now, DateTimeOffset wake)
    {
        var schedule = replicas.Where(r => r.Phase == ReplicaPhase.Pending)
            .OrderBy(r => r.CreatedAt).ThenBy(r => r.Id, StringComparer.Ordinal)
            .Select(r => r.Id).ToList();

        var restart = new List<string>();
        foreach (var r in replicas.Where(r => r.Phase == ReplicaPhase.BackOff))
        {
            if (runtime[r.Id] is { Busy: true } or { Intent: not StopIntent.None })
            {
                continue;
            }

            if (r.NextRetryAt is { } at && at > now)
            {
                wake = Min(wake, at);
                continue;
            }

            restart.Add(r.Id);
        }

        var probe = new List<(string, ProbeTracker)>();
        foreach (var r in replicas.Where(r => r.Phase is ReplicaPhase.Running or ReplicaPhase.Ready && r.Handle is not null))
        {
            var rt = runtime[r.Id];
            if (rt.Busy || rt.Intent != StopIntent.None)
            {
                continue;
            }

            foreach (var p in rt.ActiveProbes)
            {
                if (p.IsDue(now))
                {
                    probe.Add((r.Id, p));
                }
                else if (!p.InFlight)
                {
                    wake = Min(wake, p.NextDue);
                }
            }
        }

        return new PassPlan(schedule, restart, probe, wake);
    }

    public static DateTimeOffset Min(DateTimeOffset a, DateTimeOffset b) => a < b ? a : b;
}

/// <summary>Which replicas go first when there are too many: not placed, backing off, finished, starting, not ready,
/// then Ready ones. One ranking for scale-down and for a rollout's removal of old replicas.</summary>
internal static class VictimOrder
{
    public static int Rank(ReplicaRecord r) => r.Phase switch
    {
        ReplicaPhase.Pending => 0,
        ReplicaPhase.BackOff => 1,
        ReplicaPhase.Failed or ReplicaPhase.Completed or ReplicaPhase.Stopped => 2,
        ReplicaPhase.Starting => 3,
        ReplicaPhase.Running => 4,
        ReplicaPhase.Ready or ReplicaPhase.Terminating => 5,
    };
}
