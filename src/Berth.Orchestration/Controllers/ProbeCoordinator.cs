using Berth.Core.Model;
using Berth.Core.Probing;
using Berth.Orchestration.State;
using Berth.Runtime;

namespace Berth.Orchestration.Controllers;

/// <summary>A replica's probes: which it has (startup holds the others), where they are aimed, running one in the
/// background, and turning results into Ready / not Ready. What a failed liveness probe leads to is the lifecycle's.</summary>
internal sealed class ProbeCoordinator(PlaneState state, IProbeExecutor prober)
{
    public void Install(ReplicaRecord r, ReplicaRuntime rt, DateTimeOffset startedAt, bool adopted)
    {
        rt.Probes.Clear();
        var service = state.ServiceOf(r);
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

    /// <summary>Runs <paramref name="probe"/> once outside the lock; <paramref name="onResult"/> gets the outcome under it.</summary>
    public void Launch(ReplicaRecord r, ProbeTracker probe, Func<string, ReplicaHandle, ProbeTracker, ProbeOutcome, CancellationToken, Task> onResult)
    {
        probe.InFlight = true;
        var handle = r.Handle!;
        var target = TargetFor(r, probe.Probe);
        var life = state.Loop.Life;
        // Until readiness first passes, probe the moment the port opens (at the latest after a period, as Kubernetes would):
        // a dependent waiting on depends_on: healthy starts within milliseconds of its dependency listening. After the first
        // pass probes keep Kubernetes' period, timeout and thresholds.
        var awaitPort = probe.Role == ProbeRole.Readiness && !probe.EverPassed && probe.Probe.Kind is ProbeKind.Http or ProbeKind.Tcp;
        state.Loop.Track(async () =>
        {
            ProbeOutcome outcome;
            try
            {
                if (awaitPort)
                {
                    await prober.WaitForPortAsync(target, probe.Probe.Period, life);
                }

                outcome = await prober.RunAsync(probe.Probe, target, life);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                outcome = new ProbeOutcome(false, e.Message);
            }

            await state.Loop.UnderLockAsync(ct => onResult(r.Id, handle, probe, outcome, ct));
        });
    }

    /// <summary>Whether a result still belongs to the replica's current run (it may have restarted or stopped meanwhile).</summary>
    public bool Current(string id, ReplicaHandle handle, ProbeTracker probe, out ReplicaRecord record) =>
        state.Replicas.TryGetValue(id, out record!) && ReferenceEquals(record.Handle, handle) && state.Runtime[id].Probes.Contains(probe);

    public ProbeTarget TargetFor(ReplicaRecord r, Probe probe)
    {
        var service = state.ServiceOf(r);
        int? port = probe.Port;
        if (port is null && service is not null && !service.Endpoints.IsDefaultOrEmpty)
        {
            var name = probe.Endpoint ?? service.Endpoints[0].Name;
            port = r.Ports.TryGetValue(name, out var p) ? p : null;
        }

        return new ProbeTarget(state.Options.Host, port)
        {
            ContainerId = r.Handle?.ContainerId,
            Replica = r.Handle,
            Driver = r.Handle is { } h ? state.Drivers.GetValueOrDefault(h.Kind) : null,
            WorkingDirectory = service?.WorkingDir ?? state.Current?.Application.BaseDirectory,
        };
    }

    /// <summary>Moves a replica between Running and Ready as its probes say.</summary>
    public void UpdateReadiness(ReplicaRecord r, ReplicaRuntime rt, DateTimeOffset now, string? why = null)
    {
        var ready = rt.ReadyByProbes;
        if (ready && r.Phase == ReplicaPhase.Running)
        {
            state.Save(r with { Phase = ReplicaPhase.Ready, ReadyAt = now, Reason = null });
            state.Emit(EventTypes.Ready, r.Service, r.Id, r.StartedAt is { } s ? $"ready {Text.Human(now - s)} after start" : "ready");
        }
        else if (!ready && r.Phase == ReplicaPhase.Ready)
        {
            state.Save(r with { Phase = ReplicaPhase.Running, ReadyAt = null, Reason = why });
            state.Emit(EventTypes.NotReady, r.Service, r.Id, $"not ready: {why}; removed from routing");
        }
    }

    /// <summary>A readiness result: moves the replica in or out of Ready and keeps the reason it is not Ready on its
    /// record ("readiness: HTTP 404 from GET /nope, 3 in a row"), so <c>ps</c> shows why, as kubectl's Ready
    /// condition carries the probe's message. A replica that never passed gets a not-ready event when the failures
    /// reach the failure threshold, and again when the cause changes; a Ready one gets it as it leaves routing.</summary>
    public void OnReadinessResult(ReplicaRecord r, ReplicaRuntime rt, ProbeTracker probe, ProbeOutcome outcome, ProbeTransition transition, DateTimeOffset now)
    {
        var why = outcome.Success ? null : ReadinessReason(outcome.Message, probe.FailuresInARow);
        if (transition != ProbeTransition.None)
        {
            UpdateReadiness(r, rt, now, why);
            r = state.Replicas[r.Id];
        }

        if (r.Phase != ReplicaPhase.Running)
        {
            return;
        }

        if (why is null)
        {
            if (r.Reason?.StartsWith(ReadinessPrefix, StringComparison.Ordinal) == true)
            {
                state.Save(r with { Reason = null });
            }

            return;
        }

        if (r.Reason == why)
        {
            return;
        }

        var previousCause = r.Reason?.StartsWith(ReadinessPrefix, StringComparison.Ordinal) == true ? CauseOf(r.Reason) : null;
        state.Save(r with { Reason = why });
        var reached = probe.FailuresInARow == probe.Probe.FailureThreshold && transition == ProbeTransition.None && !probe.EverPassed;
        var changed = probe.FailuresInARow > probe.Probe.FailureThreshold && previousCause is not null && previousCause != outcome.Message;
        if (reached || changed)
        {
            state.Emit(EventTypes.NotReady, r.Service, r.Id, $"not ready: {why}");
        }
    }

    private const string ReadinessPrefix = "readiness: ";

    private static string ReadinessReason(string message, int inARow) =>
        $"{ReadinessPrefix}{message}, {inARow} in a row";

    private static string CauseOf(string reason) =>
        reason[ReadinessPrefix.Length..reason.LastIndexOf(", ", StringComparison.Ordinal)];

    /// <summary>The readiness probe's last answer, else the replica's phase and reason (for a rollout's failure message).</summary>
    public string WhyNotReady(ReplicaRecord r)
    {
        var probe = state.Runtime.TryGetValue(r.Id, out var rt) ? rt.Probes.FirstOrDefault(p => p.Role == ProbeRole.Readiness && !p.Passing) : null;
        return probe?.LastMessage is { } m ? $"readiness probe failing: {m}" : Text.Describe(r);
    }
}
