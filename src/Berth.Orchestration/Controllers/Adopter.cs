using Berth.Orchestration.Scheduling;
using Berth.Orchestration.State;
using Berth.Runtime;

namespace Berth.Orchestration.Controllers;

/// <summary>Takes over what a previous control plane left: asks each driver for the app's live replicas (supervisors and
/// Docker labels outlive the control plane), re-installs probes and the exit watch of each recorded one that still runs
/// (a Ready one stays in routing), handles a vanished one as an exit, finishes stops that were under way, and stops live
/// replicas nothing records.</summary>
internal sealed class Adopter(PlaneState state, ReplicaLifecycle lifecycle, ProbeCoordinator probes)
{
    public async Task AdoptAsync(CancellationToken ct)
    {
        var live = await ListLiveAsync(ct);
        var now = state.Now;
        var stops = new List<ReplicaRecord>();
        foreach (var r in state.Replicas.Values.ToList())
        {
            var service = state.ServiceOf(r);
            if (r.HoldsResources && service is not null && r.Node is not null)
            {
                state.Scheduler?.Restore(Scheduler.RequestFor(r.Id, service, r.Pod), r.Node);
            }

            foreach (var p in r.Pod ? [] : r.Ports.Values)
            {
                state.Ports.Reserve(p);
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
                    : await state.DriverFor(handle.Kind).InspectAsync(handle, ct);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                status = new ReplicaStatus { State = ReplicaState.Unknown, Error = e.Message };
            }

            if (r.Phase == ReplicaPhase.Terminating)
            {
                state.Runtime[r.Id].Intent = StopIntent.Remove;
                stops.Add(r with { Handle = handle });
                continue;
            }

            if (status.State == ReplicaState.Running && handle is not null)
            {
                var adopted = state.Save(r with { Handle = handle, Phase = r.Phase == ReplicaPhase.Starting ? ReplicaPhase.Running : r.Phase, StartedAt = r.StartedAt ?? now });
                state.Emit(EventTypes.Adopted, r.Service, r.Id, handle.Pid is { } pid ? $"adopted running replica (pid {pid})" : "adopted running replica");
                var rt = state.Runtime[r.Id];
                probes.Install(adopted, rt, now, adopted: true);
                lifecycle.Watch(adopted, rt);
                probes.UpdateReadiness(adopted, rt, now);
            }
            else
            {
                var exited = state.Save(r with { Handle = handle });
                var lost = status.State == ReplicaState.Unknown;
                lifecycle.HandleExit(exited, lost
                    ? status with { Error = $"vanished {ControlPlaneMessages.LostWithControlPlane} ({status.Error})" }
                    : status, now, forceFailure: status.State != ReplicaState.Exited, lost ? ExitCause.LostWithControlPlane : null);
            }
        }

        foreach (var (id, h) in live)
        {
            if (!state.Replicas.ContainsKey(id))
            {
                lifecycle.StopOrphan(h);
            }
        }

        await lifecycle.PublishRoutesAsync(ct);
        lifecycle.LaunchStops(stops);
    }

    private async Task<Dictionary<string, ReplicaHandle>> ListLiveAsync(CancellationToken ct)
    {
        var live = new Dictionary<string, ReplicaHandle>(StringComparer.Ordinal);
        if (state.Current?.Application.Name is not { } appName)
        {
            return live;
        }

        foreach (var driver in state.Drivers.Values.Where(d => d.Capabilities.Available))
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
                Log.DriverFailed(state.Logger, "list", appName, e);
            }
        }

        return live;
    }
}
