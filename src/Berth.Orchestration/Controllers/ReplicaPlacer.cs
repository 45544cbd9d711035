using System.Collections.Immutable;
using Berth.Core.Model;
using Berth.Orchestration.Scheduling;
using Berth.Orchestration.State;

namespace Berth.Orchestration.Controllers;

/// <summary>Places a Pending replica: its dependencies first (depends_on gates the first start), then a driver that is
/// available, then a node with room (the scheduler) and its ports; then the lifecycle starts it. A replica that cannot be
/// placed stays Pending with the reason, emitted once per change.</summary>
internal sealed class ReplicaPlacer(PlaneState state, ReplicaLifecycle lifecycle, RoutePublisher routes)
{
    public void TrySchedule(Application app, ReplicaRecord r)
    {
        var service = app.FindService(r.Service);
        if (service is null || state.Scheduler is not { } scheduler)
        {
            return;
        }

        var waiting = UnmetDependency(app, service, state.Replicas.Values);
        if (waiting is not null)
        {
            SetPendingReason(r, waiting, EventTypes.Waiting);
            return;
        }

        if (routes.ConflictOf(service.Name) is { } taken)
        {
            // Kubernetes refuses a Service whose nodePort is allocated; a replica nobody can reach through its stable port is no use either.
            SetPendingReason(r, taken, EventTypes.Pending);
            return;
        }

        var driver = state.Drivers.GetValueOrDefault(service.EffectiveRuntime);
        if (driver is null || !driver.Capabilities.Available)
        {
            SetPendingReason(r, driver is null
                ? $"no {service.EffectiveRuntime.ToString().ToLowerInvariant()} driver in this control plane"
                : $"the {service.EffectiveRuntime.ToString().ToLowerInvariant()} driver is unavailable: {driver.Capabilities.UnavailableReason}", EventTypes.Pending);
            return;
        }

        var inPod = state.InPod(service);
        var placement = scheduler.Place(Scheduler.RequestFor(r.Id, service, inPod));
        if (!placement.Placed)
        {
            SetPendingReason(r, placement.Reason!, EventTypes.Pending);
            return;
        }

        var ports = ImmutableSortedDictionary.CreateBuilder<string, int>(StringComparer.Ordinal);
        foreach (var e in service.Endpoints)
        {
            // In a pod the replica has its own loopback: it listens on the target port, or the stable port when none is
            // given (as a container listens on its published port), and nothing on the host is taken.
            var port = inPod ? e.TargetPort ?? PodPort(r, e.Name, ports.Values) : e.TargetPort ?? (r.Ports.TryGetValue(e.Name, out var p) && !r.Pod ? p : state.Ports.Allocate());
            if (!inPod)
            {
                state.Ports.Reserve(port);
            }

            ports[e.Name] = port;
        }

        ReplicaRecord placed;
        try
        {
            // Written before the driver is asked: a replica the store does not know of would be invisible to ps and to down.
            placed = state.SaveFirst(r with { Phase = ReplicaPhase.Starting, Node = placement.Node, Ports = ports.ToImmutable(), Reason = null, Pod = inPod });
        }
        catch (StateStoreException e)
        {
            state.Release(r with { Ports = ports.ToImmutable(), Pod = inPod });
            SetPendingReason(r, ControlPlaneMessages.NotStartedStoreFault(e), EventTypes.Pending);
            return;
        }

        lifecycle.BeginStart(app, placed);
        var portText = placed.Ports.Count == 0 ? "" : " with " + string.Join(", ", placed.Ports.Select(kv => $"{kv.Key} port {kv.Value}"));
        state.Emit(EventTypes.Scheduled, r.Service, r.Id, $"scheduled on node {placement.Node}{portText}");
    }

    /// <summary>A port in the replica's pod for an endpoint with no target port: the one it had, else any number not used by its other endpoints.</summary>
    private int PodPort(ReplicaRecord r, string endpoint, IEnumerable<int> used)
    {
        if (r.Pod && r.Ports.TryGetValue(endpoint, out var kept))
        {
            return kept;
        }

        var taken = used.ToHashSet();
        int port;
        do
        {
            port = state.Ports.Allocate();
        }
        while (!taken.Add(port));
        return port;
    }

    /// <summary>What the service still waits for (depends_on), or null. Pure.</summary>
    public static string? UnmetDependency(Application app, Service service, IEnumerable<ReplicaRecord> replicas)
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

            var theirs = replicas.Where(r => r.Service == d.Service).ToList();
            var met = d.Condition switch
            {
                DependencyCondition.Started => theirs.Any(r => r.Phase is ReplicaPhase.Running or ReplicaPhase.Ready or ReplicaPhase.Completed),
                DependencyCondition.Healthy => theirs.Any(r => r.Phase == ReplicaPhase.Ready),
                DependencyCondition.Completed => theirs.Any(r => r.Phase == ReplicaPhase.Completed)
                    && !theirs.Any(r => r.Phase is ReplicaPhase.Starting or ReplicaPhase.Running or ReplicaPhase.Ready or ReplicaPhase.BackOff or ReplicaPhase.Pending),
            };
            if (!met)
            {
                var what = d.Condition switch
                {
                    DependencyCondition.Started => "to start",
                    DependencyCondition.Healthy => "to be ready (healthy)",
                    DependencyCondition.Completed => "to complete successfully",
                };
                return $"waiting for '{d.Service}' {what} (depends_on)";
            }
        }

        return null;
    }

    private void SetPendingReason(ReplicaRecord r, string reason, string eventType)
    {
        if (r.Reason == reason)
        {
            return;
        }

        state.Save(r with { Reason = reason });
        state.Emit(eventType, r.Service, r.Id, reason);
    }
}
