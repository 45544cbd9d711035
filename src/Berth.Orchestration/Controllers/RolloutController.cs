using System.Collections.Immutable;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Berth.Core.Contracts;
using Berth.Core.Model;
using Berth.Orchestration.State;

namespace Berth.Orchestration.Controllers;

/// <summary>Event types the rollout controller and the autoscaler emit, stable for clients.</summary>
public static class RolloutEvents
{
    public const string Started = "rollout-started";
    public const string Complete = "rollout-complete";
    public const string Failed = "rollout-failed";
    public const string RolledBack = "rolled-back";
    public const string Paused = "rollout-paused";
    public const string Resumed = "rollout-resumed";
    public const string Autoscaled = "autoscaled";
}

/// <summary>Rollout defaults, each named after the peer it follows.</summary>
public static class RolloutDefaults
{
    /// <summary>A new replica that failed this many times in a row is crash-looping: the rollout fails whatever
    /// max_failure_ratio allows (Kubernetes shows CrashLoopBackOff after the second failed restart).</summary>
    public const int CrashLoopFailures = 3;
}

/// <summary>The rollout controller's persisted memory of one service: which template it is rolling to, the last good one
/// (to roll back to), and how the rollout stands. Kept in the store so a restarted control plane carries on.</summary>
public sealed record RolloutRecord
{
    public required string Service { get; init; }

    /// <summary>The template revision being rolled out (or settled on).</summary>
    public long Template { get; init; }

    /// <summary>The last template whose rollout completed: what an automatic rollback returns to.</summary>
    public long? StableTemplate { get; init; }

    /// <summary>The service as it was when <see cref="StableTemplate"/> completed (revisions are pruned; this is not).</summary>
    public Service? StableSpec { get; init; }

    public RolloutState State { get; init; } = RolloutState.Progressing;

    public string Message { get; init; } = "";

    public bool Paused { get; init; }

    /// <summary>The current target is a rollback: its failures do not trigger another rollback.</summary>
    public bool RollingBack { get; init; }

    /// <summary>A rollback to this template was requested and not yet installed.</summary>
    public long? RollbackTo { get; init; }

    /// <summary>Why the rollout failed, when it did: what the rollback's status says while it is under way.</summary>
    public string? Why { get; init; }

    /// <summary>An automatic rollback decided or under way: its replicas are not all back on the good template yet.</summary>
    [JsonIgnore]
    public bool RollbackUnderWay => State == RolloutState.RolledBack && (RollingBack || RollbackTo is not null);

    /// <summary>This rollout's failure was acted on already (failure_action continue, or no revision to return to).</summary>
    public bool FailureHandled { get; init; }

    public DateTimeOffset StartedAt { get; init; }

    /// <summary>When the rollout last made progress; the progress deadline counts from here, as Kubernetes'.</summary>
    public DateTimeOffset LastProgressAt { get; init; }

    public string ProgressMark { get; init; } = "";

    /// <summary>New replicas that failed during this rollout → why (the first failure seen).</summary>
    public ImmutableSortedDictionary<string, string> Failures { get; init; } = ImmutableSortedDictionary<string, string>.Empty.WithComparers(StringComparer.Ordinal);

    /// <summary>New replicas whose failure is not held against the rollout (lost while the control plane was down).</summary>
    public ImmutableSortedSet<string> Excused { get; init; } = ImmutableSortedSet<string>.Empty.WithComparer(StringComparer.Ordinal);
}

/// <summary>The Kubernetes rolling-update arithmetic (deployment controller's rolling.go), as pure functions.</summary>
public static class RollingUpdate
{
    /// <summary>maxSurge rounds up, maxUnavailable down; when both come to 0, one replica may be unavailable (as Kubernetes'
    /// ResolveFenceposts), so a rollout can always move.</summary>
    public static (int Surge, int Unavailable) Resolve(UpdateStrategy strategy, int want)
    {
        var surge = Math.Max(0, strategy.MaxSurge.Resolve(want, roundUp: true));
        var unavailable = Math.Max(0, strategy.MaxUnavailable.Resolve(want, roundUp: false));
        return surge == 0 && unavailable == 0 ? (0, 1) : (surge, unavailable);
    }

    /// <summary>How many replicas of the new template may exist: never more than want + surge in all.</summary>
    public static int NewTarget(int want, int surge, int newCount, int oldCount)
    {
        if (newCount >= want)
        {
            return newCount;
        }

        var room = want + surge - (newCount + oldCount);
        return room <= 0 ? newCount : Math.Min(want, newCount + room);
    }

    /// <summary>How many old replicas to remove now: first old ones that are not available (bounded so unavailable new ones
    /// and the minimum available still fit), then available ones down to want − maxUnavailable available in all.</summary>
    public static (int Unhealthy, int Healthy) OldToRemove(int want, int unavailable, int newCount, int newAvailable, int oldCount, int oldAvailable)
    {
        var minAvailable = want - unavailable;
        var maxCleanup = newCount + oldCount - minAvailable - (newCount - newAvailable);
        var unhealthy = Math.Clamp(maxCleanup, 0, oldCount - oldAvailable);
        var healthy = Math.Clamp(newAvailable + oldAvailable - minAvailable, 0, oldAvailable);
        return (unhealthy, healthy);
    }
}

/// <summary>One reconcile step of a service's rollout: how many new replicas may exist, which old ones go now.</summary>
internal sealed record RolloutStep(int NewTarget, IReadOnlyList<ReplicaRecord> RemoveOld);

/// <summary>A rollback the controller decided on; the control plane installs it as a new revision.</summary>
internal sealed record RollbackRequest(string Service, Service Spec, long ToTemplate);

/// <summary>Rolling updates with surge/unavailable budgets, minReady, progress deadline, Compose's delay and
/// max_failure_ratio, crash-loop detection, automatic rollback to the last good template, and pause. The control plane
/// calls <see cref="Step"/> under its lock once per service per pass; all state it keeps is persisted.</summary>
internal sealed class RolloutController(StateStore store, Action<string, string?, string?, string> emit)
{
    private readonly Dictionary<string, RolloutRecord> _records = new(StringComparer.Ordinal);
    private ImmutableDictionary<string, RolloutRecord> _view = ImmutableDictionary<string, RolloutRecord>.Empty;
    private readonly List<RollbackRequest> _rollbacks = [];
    private DateTimeOffset? _wake;

    /// <summary>
    /// Reads the rollouts a previous control plane left. The progress deadline of one under way (a rollback too) restarts at
    /// <paramref name="now"/>: while no control plane ran, nothing could make progress (a new replica that vanished with it
    /// is only restarted now), so that time is not the new revision's fault. Kubernetes' deployment controller counts its
    /// own downtime against progressDeadlineSeconds; a one-machine control plane is killed or restarted far more often.
    /// </summary>
    public void Load(DateTimeOffset now)
    {
        foreach (var body in store.ListRollouts())
        {
            var r = JsonSerializer.Deserialize<RolloutRecord>(body, StateJson.Options)!;
            r = r.StableSpec is { } spec ? r with { StableSpec = store.Secrets.Open(ModelCompleteness.FillDefaults(spec)) } : r;
            _records[r.Service] = (r.State == RolloutState.Progressing || r.RollbackUnderWay) && r.LastProgressAt < now ? r with { LastProgressAt = now } : r;
        }

        _view = _records.ToImmutableDictionary(StringComparer.Ordinal);
    }

    /// <summary>The record of a service; safe to call without the control plane's lock.</summary>
    public RolloutRecord? Get(string service) => Volatile.Read(ref _view).GetValueOrDefault(service);

    /// <summary>The earliest time a rollout needs a pass (minReady elapsed, a delay over, a deadline); cleared when read.</summary>
    public DateTimeOffset? TakeWake()
    {
        var w = _wake;
        _wake = null;
        return w;
    }

    /// <summary>Rollbacks decided in this pass; cleared when read.</summary>
    public IReadOnlyList<RollbackRequest> TakeRollbacks()
    {
        var list = _rollbacks.ToList();
        _rollbacks.Clear();
        return list;
    }

    public void Update(RolloutRecord record)
    {
        _records[record.Service] = record;
        Volatile.Write(ref _view, _view.SetItem(record.Service, record));
        Write(record.Service);
    }

    private readonly HashSet<string> _unsaved = new(StringComparer.Ordinal);

    /// <summary>Writes again the records a store fault left unwritten; true when none is left.</summary>
    public bool RetryUnsaved() => _unsaved.ToList().All(Write);

    private bool Write(string service)
    {
        var record = _records[service];
        var stored = record.StableSpec is { } spec ? record with { StableSpec = store.Secrets.Seal(spec) } : record;
        try
        {
            store.SaveRollout(record.Service, JsonSerializer.Serialize(stored, StateJson.Options));
            _unsaved.Remove(service);
            return true;
        }
        catch (StateStoreException)
        {
            // Kept in memory and written at the next pass (a full disk); the replicas' records carry the same fault to the API.
            _unsaved.Add(service);
            return false;
        }
    }

    /// <summary>Marks the next template of <paramref name="service"/> as a rollback (an undo or an automatic one).</summary>
    public void ExpectRollback(string service, long toTemplate)
    {
        if (_records.TryGetValue(service, out var r))
        {
            Update(r with { RollbackTo = toTemplate });
        }
    }

    public RolloutStep Step(RevisionRecord current, Service service, int want, IReadOnlyList<ReplicaRecord> fresh,
        IReadOnlyList<ReplicaRecord> outdated, DateTimeOffset now, Func<ReplicaRecord, string> whyNotReady)
    {
        var template = current.TemplateOf(service.Name);
        if (_records.TryGetValue(service.Name, out var previous) && previous.Template != template && previous.StableTemplate is null
            && previous.State == RolloutState.Progressing && want > 0
            && outdated.Count(r => r.Revision == previous.Template && r.Phase == ReplicaPhase.Ready) >= want
            && SpecOf(service.Name, previous.Template) is { } spec)
        {
            // The first deploy was serving in full when the next change came, before a pass could call it complete.
            Update(previous with { StableTemplate = previous.Template, StableSpec = spec });
        }

        var rec = Observe(service.Name, template, now);
        var strategy = rec.RollingBack ? service.Rollback ?? service.Update : service.Update;

        // Compose's monitor: a new replica is watched this long after it is Ready before it counts, so failures in that
        // window fail the update; it acts as a longer minReady.
        strategy = strategy.Monitor > strategy.MinReady ? strategy with { MinReady = strategy.Monitor } : strategy;
        bool Available(ReplicaRecord r) => r.Phase == ReplicaPhase.Ready && r.ReadyAt is { } at && at + strategy.MinReady <= now;
        foreach (var r in fresh.Where(r => r.Phase == ReplicaPhase.Ready && r.ReadyAt is { } at && at + strategy.MinReady > now))
        {
            Wake(r.ReadyAt!.Value + strategy.MinReady);
        }

        var newAvailable = fresh.Count(Available);
        var oldAvailable = outdated.Count(Available);
        var done = outdated.Count == 0 && newAvailable >= want && fresh.Count <= want;

        if (done)
        {
            Complete(rec, service, template, want, newAvailable);
            return new RolloutStep(want, []);
        }

        if (outdated.Count == 0 && rec.State is RolloutState.Complete)
        {
            // A settled service scaling or restarting a replica: not a rollout.
            return new RolloutStep(want, []);
        }

        rec = TrackProgress(rec, $"{fresh.Count}/{newAvailable}/{outdated.Count}", now);
        if (rec is { State: RolloutState.RolledBack, RollingBack: true })
        {
            rec = WatchRollback(rec, service, template, strategy, fresh, Available, now, whyNotReady);
        }

        // A first deploy has nothing to roll back to and is not judged; a rollout from a good template is.
        if (rec.State == RolloutState.Progressing && rec.StableTemplate is not null && !rec.RollingBack && !rec.FailureHandled)
        {
            var before = rec;
            var failure = FindFailure(rec, strategy, want, fresh, Available, now, whyNotReady, out rec);
            if (!ReferenceEquals(before, rec))
            {
                Update(rec);
            }

            Wake(rec.LastProgressAt + strategy.ProgressDeadline + TimeSpan.FromMilliseconds(1));
            if (failure is { } f)
            {
                rec = Fail(rec, service, template, strategy, f.Replica, f.Why);
                if (rec.State is RolloutState.RolledBack or RolloutState.Failed && rec.RollbackTo is not null)
                {
                    return new RolloutStep(fresh.Count, []); // hold still until the rollback revision is installed
                }
            }
        }

        if (rec.Paused)
        {
            return new RolloutStep(outdated.Count == 0 ? want : Math.Min(fresh.Count, want), []);
        }

        var (surge, unavailable) = RollingUpdate.Resolve(strategy, want);
        var target = RollingUpdate.NewTarget(want, surge, fresh.Count, outdated.Count);
        if (strategy.Delay > TimeSpan.Zero && outdated.Count > 0 && fresh.Where(Available).Select(r => r.ReadyAt!.Value).DefaultIfEmpty().Max() is var last
            && last != default && last + strategy.Delay > now)
        {
            target = Math.Min(target, Math.Max(fresh.Count, 0));
            Wake(last + strategy.Delay);
        }

        var (unhealthy, healthy) = RollingUpdate.OldToRemove(want, unavailable, fresh.Count, newAvailable, outdated.Count, oldAvailable);
        var remove = outdated.Where(r => !Available(r)).OrderBy(VictimOrder.Rank).ThenBy(r => r.CreatedAt).Take(unhealthy)
            .Concat(outdated.Where(Available).OrderBy(r => r.CreatedAt).Take(healthy))
            .ToList();
        return new RolloutStep(target, remove);
    }

    private Service? SpecOf(string service, long template) =>
        store.ListRevisions().FirstOrDefault(r => r.TemplateOf(service) == template)?.Application.FindService(service);

    private void Wake(DateTimeOffset at) => _wake = _wake is { } w && w < at ? w : at;

    /// <summary>Starts a new record when the service's template changed since the last pass.</summary>
    private RolloutRecord Observe(string service, long template, DateTimeOffset now)
    {
        if (!_records.TryGetValue(service, out var rec))
        {
            rec = new RolloutRecord { Service = service, Template = template, StartedAt = now, LastProgressAt = now };
            Update(rec);
            return rec;
        }

        if (rec.Template == template)
        {
            return rec;
        }

        var rollback = rec.RollbackTo == template;
        var next = rec with
        {
            Template = template,
            State = rollback ? RolloutState.RolledBack : RolloutState.Progressing,
            Message = rollback ? rec.Message : "",
            Why = rollback ? rec.Why : null,
            RollingBack = rollback,
            RollbackTo = null,
            FailureHandled = false,
            StartedAt = now,
            LastProgressAt = now,
            ProgressMark = "",
            Failures = ImmutableSortedDictionary<string, string>.Empty.WithComparers(StringComparer.Ordinal),
            Excused = ImmutableSortedSet<string>.Empty.WithComparer(StringComparer.Ordinal),
        };
        Update(next);
        if (!rollback)
        {
            emit(RolloutEvents.Started, service, null, $"rolling out revision {template} (from revision {rec.Template})");
        }

        return next;
    }

    private RolloutRecord TrackProgress(RolloutRecord rec, string mark, DateTimeOffset now)
    {
        if (rec.ProgressMark == mark && !rec.Paused)
        {
            return rec;
        }

        var next = rec with { ProgressMark = mark, LastProgressAt = now };
        Update(next);
        return next;
    }

    private void Complete(RolloutRecord rec, Service service, long template, int want, int ready)
    {
        if (rec.State == RolloutState.Complete && rec.StableTemplate == template && rec.RollbackTo is null)
        {
            return;
        }

        if (rec.State == RolloutState.RolledBack)
        {
            if (rec.RollingBack)
            {
                Update(rec with { RollingBack = false, StableTemplate = template, StableSpec = service });
                emit(RolloutEvents.Complete, service.Name, null, $"rollback to revision {template} complete: {ready}/{want} replicas ready");
            }

            return;
        }

        Update(rec with
        {
            State = RolloutState.Complete,
            Message = $"{ready}/{want} replicas of revision {template} ready",
            StableTemplate = template,
            StableSpec = service,
            RollingBack = false,
            Paused = false,
        });
        emit(RolloutEvents.Complete, service.Name, null, $"revision {template} rolled out: {ready}/{want} replicas ready");
    }

    private static (string? Replica, string Why)? FindFailure(RolloutRecord rec, UpdateStrategy strategy, int want, IReadOnlyList<ReplicaRecord> fresh,
        Func<ReplicaRecord, bool> available, DateTimeOffset now, Func<ReplicaRecord, string> whyNotReady, out RolloutRecord updated)
    {
        updated = rec;
        var failures = rec.Failures;
        var excused = rec.Excused;
        foreach (var r in fresh)
        {
            // A replica lost while the control plane itself was down is not the new version's fault.
            if (r.LastExitCause == ExitCause.LostWithControlPlane && !excused.Contains(r.Id))
            {
                excused = excused.Add(r.Id);
            }

            if (!failures.ContainsKey(r.Id) && !excused.Contains(r.Id) && (r.Phase is ReplicaPhase.BackOff or ReplicaPhase.Failed || r.ConsecutiveFailures > 0))
            {
                failures = failures.SetItem(r.Id, r.Reason ?? (r.LastExitCode is { } c ? $"exited with code {c}" : "exited"));
            }
        }

        if (failures != rec.Failures || excused != rec.Excused)
        {
            updated = rec with { Failures = failures, Excused = excused };
        }

        var looping = fresh.FirstOrDefault(r => r.ConsecutiveFailures >= RolloutDefaults.CrashLoopFailures);
        if (looping is not null)
        {
            return (looping.Id, $"new replica {looping.Id} is crash-looping ({looping.ConsecutiveFailures} failures in a row): {failures.GetValueOrDefault(looping.Id) ?? looping.Reason}");
        }

        var failedNew = failures.Keys.Count(id => fresh.Any(r => r.Id == id));
        if (failedNew > 0 && failedNew > strategy.MaxFailureRatio * Math.Max(1, want))
        {
            var first = failures.First(kv => fresh.Any(r => r.Id == kv.Key));
            return (first.Key, $"new replica {first.Key} failed: {first.Value}; {failedNew} of {want} new replicas failed, more than max_failure_ratio {strategy.MaxFailureRatio.ToString(CultureInfo.InvariantCulture)} allows");
        }

        if (now - updated.LastProgressAt > strategy.ProgressDeadline)
        {
            return PastDeadline("new replica", strategy, fresh, available, whyNotReady);
        }

        return null;
    }

    /// <summary>
    /// An automatic rollback is a rollout too, judged by the same progress deadline (as Kubernetes judges a rollback like any
    /// other rollout): one that makes no progress for that long is reported failed, so a status watch does not wait forever.
    /// Its replicas' failures do not start another rollback; the service is held where it is until fixed or undone.
    /// </summary>
    private RolloutRecord WatchRollback(RolloutRecord rec, Service service, long template, UpdateStrategy strategy,
        IReadOnlyList<ReplicaRecord> fresh, Func<ReplicaRecord, bool> available, DateTimeOffset now, Func<ReplicaRecord, string> whyNotReady)
    {
        if (now - rec.LastProgressAt <= strategy.ProgressDeadline)
        {
            Wake(rec.LastProgressAt + strategy.ProgressDeadline + TimeSpan.FromMilliseconds(1));
            return rec;
        }

        var (stuck, why) = PastDeadline("replica", strategy, fresh, available, whyNotReady);
        var failed = rec with
        {
            State = RolloutState.Failed,
            FailureHandled = true,
            Message = $"the rollback to revision {template} failed: {why}; it was rolling back because {rec.Why}; fix it and apply, or 'berth rollout undo {service.Name}'",
        };
        Update(failed);
        emit(RolloutEvents.Failed, service.Name, stuck, $"rollback to revision {template} failed: {why}");
        return failed;
    }

    /// <summary>Why a rollout (or a rollback) that passed its progress deadline failed: the first replica not available, if any.</summary>
    private static (string? Replica, string Why) PastDeadline(string what, UpdateStrategy strategy, IReadOnlyList<ReplicaRecord> fresh,
        Func<ReplicaRecord, bool> available, Func<ReplicaRecord, string> whyNotReady)
    {
        var deadline = Durations.Format(strategy.ProgressDeadline);
        return fresh.FirstOrDefault(r => !available(r)) is { } stuck
            ? (stuck.Id, $"{what} {stuck.Id} not ready within the progress deadline of {deadline}: {whyNotReady(stuck)}")
            : (null, $"no progress for {deadline} (progress deadline)");
    }

    private RolloutRecord Fail(RolloutRecord rec, Service service, long template, UpdateStrategy strategy, string? replica, string why)
    {
        emit(RolloutEvents.Failed, service.Name, replica, $"rollout of revision {template} failed: {why}");
        if (strategy.FailureAction == FailureAction.Continue)
        {
            var cont = rec with { FailureHandled = true, Message = $"{why}; continuing (failure_action: continue)" };
            Update(cont);
            return cont;
        }

        if (strategy.FailureAction == FailureAction.Pause)
        {
            var paused = rec with { State = RolloutState.Failed, Paused = true, FailureHandled = true, Message = $"paused: {why}; fix it and 'berth rollout resume {service.Name}', or 'berth rollout undo {service.Name}'" };
            Update(paused);
            emit(RolloutEvents.Paused, service.Name, replica, paused.Message);
            return paused;
        }

        if (!strategy.AutoRollback || rec.StableSpec is null || rec.StableTemplate is not { } stable || stable == template)
        {
            var failed = rec with
            {
                State = RolloutState.Failed,
                FailureHandled = true,
                Message = !strategy.AutoRollback ? $"{why}; auto_rollback is off" : $"{why}; no earlier revision to roll back to",
            };
            Update(failed);
            return failed;
        }

        var rolledBack = rec with { State = RolloutState.RolledBack, FailureHandled = true, RollbackTo = stable, Why = why, Message = $"rolled back to revision {stable}: {why}" };
        Update(rolledBack);
        emit(RolloutEvents.RolledBack, service.Name, replica, rolledBack.Message);
        _rollbacks.Add(new RollbackRequest(service.Name, rec.StableSpec, stable));
        return rolledBack;
    }
}
