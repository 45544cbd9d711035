using System.Collections.Concurrent;
using Berth.Core.Diagnostics;
using Berth.Core.Model;
using Berth.Core.Probing;
using Berth.Orchestration.State;
using Berth.Runtime;

namespace Berth.Orchestration.Controllers;

/// <summary>The effects of a replica's life: start it through its driver, watch for its exit, apply the restart policy,
/// stop it (out of routing first), restart it on request or when a liveness probe fails. Decisions happen under the lock;
/// driver calls run in the background and post their results back under it.</summary>
internal sealed class ReplicaLifecycle(PlaneState state, ProbeCoordinator probes, RoutePublisher routes, StablePortRegistry stablePorts, SemaphoreSlim startGate,
    TerminatedReplicas terminated)
{
    /// <summary>Starts the driver finished, waiting for the next locked section to record them together.</summary>
    private readonly ConcurrentQueue<(string Id, ReplicaHandle? Handle, string? Error)> _started = new();

    public Task PublishRoutesAsync(CancellationToken ct) => routes.PublishAsync(state.Current?.Application, state.Replicas.Values, ct);

    // ---- start, watch, exit ---------------------------------------------------------------------------------------

    public void BeginStart(Application app, ReplicaRecord r)
    {
        var service = app.FindService(r.Service)!;
        var rt = state.Runtime[r.Id];
        rt.Busy = true;
        var spec = ReplicaSpecBuilder.Build(app, service, r, stablePorts.Ports, state.Options, stablePorts.Addresses);
        var driver = state.Drivers[service.EffectiveRuntime];
        var previous = r.Handle;
        var life = state.Loop.Life;
        state.Loop.Track(async () =>
        {
            ReplicaHandle? handle = null;
            string? error = null;
            await startGate.WaitAsync(life);
            StartupTrace.Mark($"start {r.Id}: gate");
            try
            {
                if (previous is not null)
                {
                    await state.Loop.IgnoreErrors(() => driver.RemoveAsync(previous, life), "remove", r.Id);
                }

                handle = await driver.StartAsync(spec, life);
            }
            catch (Exception e) when (e is not OperationCanceledException || !life.IsCancellationRequested)
            {
                error = e.Message;
            }
            finally
            {
                startGate.Release();
            }

            StartupTrace.Mark($"start {r.Id}: driver done");
            _started.Enqueue((r.Id, handle, error));
            await state.Loop.UnderLockAsync(RecordStartedAsync);
        });
    }

    /// <summary>A replica in back-off whose delay is over starts again.</summary>
    public void RestartFromBackOff(Application app, ReplicaRecord r)
    {
        var restarted = state.Save(r with { Phase = ReplicaPhase.Starting, RestartCount = r.RestartCount + 1, NextRetryAt = null, Reason = null, LastExitCause = null });
        state.Emit(EventTypes.Restarted, r.Service, r.Id, $"restarting (restart {restarted.RestartCount})");
        BeginStart(app, restarted);
    }

    /// <summary>Records every start finished so far in one locked section, and publishes routes and pods once for all of them
    /// (issue #21): 40 containers started together make a handful of sections and data-plane snapshots, not 40 of each. A
    /// section that finds the queue empty (an earlier one took its start) does nothing.</summary>
    private async Task RecordStartedAsync(CancellationToken ct)
    {
        var publish = false;
        while (_started.TryDequeue(out var s))
        {
            publish |= OnStarted(s.Id, s.Handle, s.Error);
        }

        if (publish)
        {
            await PublishRoutesAsync(ct);
            StartupTrace.Mark("starts published");
        }
    }

    /// <summary>Records one finished start under the lock; true when routes and pods must be published for it.</summary>
    private bool OnStarted(string id, ReplicaHandle? handle, string? error)
    {
        if (!state.Replicas.TryGetValue(id, out var r))
        {
            return false;
        }

        StartupTrace.Mark($"start {id}: locked");
        var rt = state.Runtime[id];
        rt.Busy = false;
        var now = state.Now;
        if (handle is null)
        {
            state.Emit(EventTypes.Failed, r.Service, id, $"could not start: {error}");
            if (rt.Intent == StopIntent.Remove)
            {
                state.Release(r);
                state.Delete(r);
                return false;
            }

            r = state.Save(r with { StartedAt = now });
            HandleExit(r, new ReplicaStatus { State = ReplicaState.Unknown, Error = error }, now, forceFailure: true, ExitCause.CouldNotStart);
            return false;
        }

        r = state.Save(r with { Phase = ReplicaPhase.Running, Handle = handle, StartedAt = now, ReadyAt = null, Reason = null, LastExitCause = null });
        state.Emit(EventTypes.Started, r.Service, id, handle.Pid is { } pid ? $"started (pid {pid})" : "started");
        probes.Install(r, rt, now, adopted: false);
        Watch(r, rt);
        if (rt.Intent != StopIntent.None)
        {
            var stops = new List<ReplicaRecord> { r };
            state.Save(r with { Phase = ReplicaPhase.Terminating });
            LaunchStops(stops);
            return false;
        }

        probes.UpdateReadiness(r, rt, now);
        return true;
    }

    /// <summary>Waits in the background for the running handle to exit on its own.</summary>
    public void Watch(ReplicaRecord r, ReplicaRuntime rt)
    {
        rt.Watch?.Cancel();
        rt.Watch?.Dispose();
        var cts = CancellationTokenSource.CreateLinkedTokenSource(state.Loop.Life);
        rt.Watch = cts;
        var handle = r.Handle!;
        rt.WatchedHandle = handle;
        var driver = state.DriverFor(handle.Kind);
        state.Loop.Track(async () =>
        {
            ReplicaStatus status;
            string? unreachable = null;
            while (true)
            {
                try
                {
                    if (unreachable is not null)
                    {
                        // A wait on a running container would not return, so an inspect (answered at once) tells that the engine is back.
                        await driver.InspectAsync(handle, cts.Token);
                        unreachable = null;
                        await state.Loop.UnderLockAsync(_ => MarkEngine(r.Id, handle, null));
                    }

                    status = await driver.WaitForExitAsync(handle, cts.Token);
                    break;
                }
                catch (OperationCanceledException)
                {
                    return;
                }
                catch (RuntimeUnavailableException e)
                {
                    // The engine is gone, not the replica (a container outlives dockerd): keep it as it is, routed by its
                    // probes, say so once, and ask again until the engine answers.
                    if (unreachable is null)
                    {
                        unreachable = $"{EngineUnreachablePrefix} {state.Now.UtcDateTime:HH:mm:ss} UTC; kept as it was, routed by its probes, until the engine answers ({e.Message.TrimEnd('.')})";
                        await state.Loop.UnderLockAsync(_ => MarkEngine(r.Id, handle, unreachable));
                    }

                    try
                    {
                        await Task.Delay(EngineRetry, state.Time, cts.Token);
                    }
                    catch (OperationCanceledException)
                    {
                        return;
                    }
                }
                catch (Exception e)
                {
                    status = new ReplicaStatus { State = ReplicaState.Unknown, Error = e.Message };
                    break;
                }
            }

            await state.Loop.UnderLockAsync(ct =>
            {
                if (state.Replicas.TryGetValue(r.Id, out var now) && state.Runtime[r.Id] is { Intent: StopIntent.None } rt2 && ReferenceEquals(rt2.WatchedHandle, handle)
                    && now.Phase is ReplicaPhase.Running or ReplicaPhase.Ready)
                {
                    HandleExit(now, status, state.Now, forceFailure: false);
                }

                return PublishRoutesAsync(ct);
            });
        });
    }

    /// <summary>What a replica's reason starts with while its runtime (the Docker engine) does not answer.</summary>
    internal const string EngineUnreachablePrefix = "runtime not answering since";

    /// <summary>How often a replica's exit is asked for again while its runtime does not answer: 1 s.</summary>
    private static readonly TimeSpan EngineRetry = TimeSpan.FromSeconds(1);

    /// <summary>Says on a watched replica that its runtime stopped answering (<paramref name="reason"/>), or that it answers
    /// again (null): the reason and an event, once each way; phase, routing and restarts are left alone.</summary>
    private Task MarkEngine(string id, ReplicaHandle handle, string? reason)
    {
        if (state.Replicas.TryGetValue(id, out var r) && ReferenceEquals(state.Runtime[id].WatchedHandle, handle))
        {
            if (reason is not null)
            {
                state.Save(r with { Reason = reason });
                state.Emit(EventTypes.RuntimeUnreachable, r.Service, id, reason);
            }
            else
            {
                if (r.Reason?.StartsWith(EngineUnreachablePrefix, StringComparison.Ordinal) == true)
                {
                    state.Save(r with { Reason = null });
                }

                state.Emit(EventTypes.RuntimeReachable, r.Service, id, "runtime answers again");
            }
        }

        return Task.CompletedTask;
    }

    /// <summary>Applies the restart policy to an exit: back off and restart, or finish as Completed/Failed.
    /// <paramref name="cause"/> overrides what the status alone says (could not start, lost with the control plane).</summary>
    public void HandleExit(ReplicaRecord r, ReplicaStatus status, DateTimeOffset now, bool forceFailure, ExitCause? cause = null)
    {
        var rt = state.Runtime[r.Id];
        rt.Probes.Clear();
        rt.Watch?.Cancel();
        rt.WatchedHandle = null;
        var failed = forceFailure || rt.KilledUnhealthy || status.OomKilled || status.ExitCode is not 0 || status.Signal is not null;
        var why = cause ?? (rt.KilledUnhealthy ? ExitCause.Unhealthy
            : status.OomKilled ? ExitCause.OomKilled
            : status.Signal is not null ? ExitCause.Killed
            : status.ExitCode is not null ? ExitCause.Exited
            : ExitCause.Gone);
        rt.KilledUnhealthy = false;
        var how = status.OomKilled ? "was OOM-killed"
            : status.Signal is { } sig ? $"was killed by signal {sig}"
            : status.ExitCode is { } code ? $"exited with code {code}"
            : $"is gone ({status.Error ?? "no exit status"})";
        state.Emit(status.OomKilled ? EventTypes.OomKilled : EventTypes.Exited, r.Service, r.Id, $"{how} after {Text.Human(now - (r.StartedAt ?? now))}");

        var service = state.ServiceOf(r);
        if (service is null)
        {
            state.Release(r);
            state.Delete(r);
            return;
        }

        var policy = service.Restart;
        var streak = RestartBackoff.StreakAfterRun(policy, r.ConsecutiveFailures, now - (r.StartedAt ?? now));
        if (RestartBackoff.ShouldRestart(policy.Mode, failed) && (policy.MaxAttempts is not { } max || streak < max))
        {
            var delay = RestartBackoff.Delay(policy, streak);
            state.Save(r with
            {
                Phase = ReplicaPhase.BackOff,
                NextRetryAt = now + delay,
                ConsecutiveFailures = streak + 1,
                LastExitCode = status.ExitCode,
                LastExitCause = why,
                ReadyAt = null,
                Reason = delay > TimeSpan.Zero ? $"{how}; back-off {Durations.Format(delay)} before the next restart" : $"{how}; restarting",
            });
            if (delay > TimeSpan.Zero)
            {
                state.Emit(EventTypes.BackOff, r.Service, r.Id, $"back-off {Durations.Format(delay)} (failure {streak + 1} in a row)");
            }

            state.Loop.Kick();
            return;
        }

        state.Release(r);
        state.Save(r with
        {
            Phase = failed ? ReplicaPhase.Failed : ReplicaPhase.Completed,
            LastExitCode = status.ExitCode,
            LastExitCause = why,
            ReadyAt = null,
            Reason = policy.MaxAttempts is { } m && streak >= m ? $"{how}; gave up after {m} restarts in a row" : $"{how}; restart: {Text.Kebab(policy.Mode)}",
        });
        state.Loop.Kick();
    }

    // ---- stop -----------------------------------------------------------------------------------------------------

    public void RequestRestart(ReplicaRecord r)
    {
        if (r.Phase == ReplicaPhase.BackOff)
        {
            state.Save(r with { NextRetryAt = state.Now });
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
    public void BeginTerminate(ReplicaRecord r, StopIntent intent, List<ReplicaRecord> stops)
    {
        var rt = state.Runtime[r.Id];
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
                state.Release(r);
                if (r.Handle is not null)
                {
                    terminated.Retire(r, r.Handle, state.DriverFor(r.Handle.Kind));
                }

                state.Delete(r);
                state.Emit(EventTypes.Stopped, r.Service, r.Id, "removed");
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

        var terminating = state.Save(r with { Phase = ReplicaPhase.Terminating, Reason = intent switch
        {
            StopIntent.Restart => "restarting on request",
            StopIntent.Unhealthy => r.Reason,
            StopIntent.Remove or StopIntent.None => "stopping",
        } });
        if (!rt.Busy)
        {
            stops.Add(terminating);
        }
    }

    /// <summary>Asks the drivers to stop the replicas <see cref="BeginTerminate"/> collected (SIGTERM, grace, SIGKILL) — each once the
    /// data plane has no request in flight on it, or after its stop grace period (<see cref="ReplicaDrain"/>).</summary>
    public void LaunchStops(List<ReplicaRecord> stops)
    {
        foreach (var r in stops)
        {
            var rt = state.Runtime[r.Id];
            var handle = r.Handle!;
            var grace = state.ServiceOf(r)?.StopGracePeriod ?? ServiceDefaults.StopGracePeriod;
            rt.Busy = true;
            rt.Watch?.Cancel();
            rt.WatchedHandle = null;
            state.Emit(EventTypes.Stopping, r.Service, r.Id, $"stopping (grace {Durations.Format(grace)})");
            var driver = state.DriverFor(handle.Kind);
            var life = state.Loop.Life;
            state.Loop.Track(async () =>
            {
                ReplicaStatus status;
                try
                {
                    await ReplicaDrain.WaitAsync(routes.InFlight, r.Service, r.Id, grace, state.Time, life);
                    status = await driver.StopAsync(handle, grace, life);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    Log.DriverFailed(state.Logger, "stop", r.Id, e);
                    status = new ReplicaStatus { State = ReplicaState.Unknown, Error = e.Message };
                }

                await state.Loop.UnderLockAsync(ct => OnStoppedAsync(r.Id, status, ct));
            });
        }

        stops.Clear();
    }

    private async Task OnStoppedAsync(string id, ReplicaStatus status, CancellationToken ct)
    {
        if (!state.Replicas.TryGetValue(id, out var r))
        {
            return;
        }

        var rt = state.Runtime[id];
        rt.Busy = false;
        var intent = rt.Intent;
        rt.Intent = StopIntent.None;
        var handle = r.Handle;
        var driver = handle is null ? null : state.DriverFor(handle.Kind);
        switch (intent)
        {
            case StopIntent.Restart:
                state.Emit(EventTypes.Stopped, r.Service, id, "stopped for restart");
                var restarted = state.Save(r with { Phase = ReplicaPhase.Starting, RestartCount = r.RestartCount + 1, Reason = null });
                state.Emit(EventTypes.Restarted, r.Service, id, $"restarting on request (restart {restarted.RestartCount})");
                BeginStart(state.Current!.Application, restarted);
                break;
            case StopIntent.Unhealthy:
                rt.KilledUnhealthy = true;
                HandleExit(r, status, state.Now, forceFailure: true);
                break;
            case StopIntent.Remove or StopIntent.None:
                state.Release(r);
                state.Delete(r);
                state.Emit(EventTypes.Stopped, r.Service, id, status.ExitCode is { } code ? $"stopped (exit code {code})" : "stopped");
                if (driver is not null)
                {
                    terminated.Retire(r, handle!, driver);
                }

                break;
        }

        await PublishRoutesAsync(ct);
        state.Loop.Kick();
    }

    // ---- probes ---------------------------------------------------------------------------------------------------

    public void LaunchProbe(ReplicaRecord r, ProbeTracker probe) => probes.Launch(r, probe, OnProbedAsync);

    /// <summary>A probe result: a liveness or startup failure stops the replica (its exit then counts as a failure);
    /// a readiness change moves it in or out of routing.</summary>
    private async Task OnProbedAsync(string id, ReplicaHandle handle, ProbeTracker probe, ProbeOutcome outcome, CancellationToken ct)
    {
        if (!probes.Current(id, handle, probe, out var r))
        {
            return; // the replica moved on (restarted, stopped) while the probe ran
        }

        var rt = state.Runtime[id];
        var now = state.Now;
        var transition = probe.Record(outcome.Success, outcome.Message, now);
        if (transition == ProbeTransition.Failed && probe.Role is ProbeRole.Liveness or ProbeRole.Startup)
        {
            var what = probe.Role == ProbeRole.Liveness ? "liveness" : "startup";
            state.Emit(EventTypes.Unhealthy, r.Service, id, $"{what} probe failed {probe.Probe.FailureThreshold} times ({outcome.Message}); restarting");
            var stops = new List<ReplicaRecord>();
            BeginTerminate(r with { Reason = $"{what} probe failed: {outcome.Message}" }, StopIntent.Unhealthy, stops);
            await PublishRoutesAsync(ct);
            LaunchStops(stops);
        }
        else if (probe.Role == ProbeRole.Readiness)
        {
            probes.OnReadinessResult(r, rt, probe, outcome, transition, now);
            if (transition != ProbeTransition.None)
            {
                await PublishRoutesAsync(ct);
            }
        }
        else if (transition != ProbeTransition.None)
        {
            probes.UpdateReadiness(r, rt, now, outcome.Message);
            await PublishRoutesAsync(ct);
        }

        state.Loop.Kick();
    }

    // ---- orphans ----------------------------------------------------------------------------------------------------

    /// <summary>Stops and removes a live replica the store has no record of.</summary>
    public void StopOrphan(ReplicaHandle h)
    {
        var driver = state.DriverFor(h.Kind);
        var life = state.Loop.Life;
        state.Emit(EventTypes.Orphan, h.Service, h.ReplicaId, "found running with no record; stopping it");
        state.Loop.Track(async () =>
        {
            await state.Loop.IgnoreErrors(() => driver.StopAsync(h, ServiceDefaults.StopGracePeriod, life), "stop", h.ReplicaId);
            await state.Loop.IgnoreErrors(() => driver.RemoveAsync(h, life), "remove", h.ReplicaId);
        });
    }
}
