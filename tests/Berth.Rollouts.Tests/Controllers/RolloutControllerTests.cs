namespace Berth.Rollouts.Tests.Controllers;

/// <summary>The rollout policy over the in-memory driver and a fake clock; the real-process, real-mesh acceptance tests
/// are in Acceptance/.</summary>
public sealed class RolloutControllerTests : IAsyncLifetime
{
    private readonly ControlPlaneHarness _h = new("berth-rollout-");

    public async Task InitializeAsync() => await _h.StartAsync();

    public async Task DisposeAsync() => await _h.DisposeAsync();

    private static Service Api(int replicas, UpdateStrategy? update = null) => HarnessApps.Api(replicas) with { Update = update ?? UpdateStrategy.Default };

    private static Application App(params Service[] services) => HarnessApps.Shop(services);

    private static ServicePatch Env(string value) => new() { Env = ImmutableSortedDictionary<string, string>.Empty.Add("V", value) };

    private Task AllReadyAsync(string service, int n, long? revision = null) => _h.AllReadyAsync(service, n, revision, tick: true);

    private List<int> RouteSizesSince(int mark) => [.. _h.Driver.Calls.Skip(mark)
        .Where(c => c.StartsWith("route api.http:", StringComparison.Ordinal))
        .Select(c => c["route api.http:".Length..].Trim())
        .Select(u => u.Length == 0 ? 0 : u.Split(',').Length)];

    /// <summary>Replicas running now stay Ready; new ones fail readiness, so a rollout stays in progress.</summary>
    private void HoldNewReplicasUnready()
    {
        foreach (var r in _h.Of("api"))
        {
            _h.Prober.Healthy[r.Ports["http"]] = true;
        }

        _h.Prober.Default = false;
    }

    [Theory]
    [InlineData(4, 25, 25, 1, 1)]
    [InlineData(10, 25, 25, 3, 2)]
    [InlineData(2, 25, 25, 1, 0)]
    [InlineData(3, 0, 0, 0, 1)]
    public void Resolve_PercentOfReplicas_SurgeRoundsUpUnavailableDownNeverBothZero(int want, int surgePct, int unavailablePct, int surge, int unavailable)
    {
        var strategy = new UpdateStrategy { MaxSurge = IntOrPercent.Percent(surgePct), MaxUnavailable = IntOrPercent.Percent(unavailablePct) };
        Assert.Equal((surge, unavailable), RollingUpdate.Resolve(strategy, want));
    }

    [Fact]
    public void OldToRemove_NewNotYetAvailable_RemovesOnlyWithinUnavailableBudget()
    {
        // 4 wanted, 1 unavailable allowed: with 1 new (not available) and 4 old available, one old may go now.
        Assert.Equal((0, 1), RollingUpdate.OldToRemove(want: 4, unavailable: 1, newCount: 1, newAvailable: 0, oldCount: 4, oldAvailable: 4));
        // Nothing unavailable allowed: an old one goes only once a new one is available.
        Assert.Equal((0, 0), RollingUpdate.OldToRemove(want: 2, unavailable: 0, newCount: 1, newAvailable: 0, oldCount: 2, oldAvailable: 2));
        Assert.Equal((0, 1), RollingUpdate.OldToRemove(want: 2, unavailable: 0, newCount: 1, newAvailable: 1, oldCount: 2, oldAvailable: 2));
        // An old replica that is not serving goes first, as long as the minimum available still holds.
        Assert.Equal((1, 0), RollingUpdate.OldToRemove(want: 2, unavailable: 0, newCount: 1, newAvailable: 1, oldCount: 2, oldAvailable: 1));
    }

    [Fact]
    public void NewTarget_SurgeBudget_NeverMoreThanWantPlusSurgeInAll()
    {
        Assert.Equal(1, RollingUpdate.NewTarget(want: 4, surge: 1, newCount: 0, oldCount: 4));
        Assert.Equal(2, RollingUpdate.NewTarget(want: 4, surge: 1, newCount: 1, oldCount: 3));
        Assert.Equal(1, RollingUpdate.NewTarget(want: 4, surge: 1, newCount: 1, oldCount: 4));
        Assert.Equal(4, RollingUpdate.NewTarget(want: 4, surge: 1, newCount: 3, oldCount: 0));
        Assert.Equal(0, RollingUpdate.NewTarget(want: 2, surge: 0, newCount: 0, oldCount: 2));
    }

    [Fact]
    public async Task Apply_SurgeAndUnavailableBothZero_RejectedSayingHowToFix()
    {
        var update = new UpdateStrategy { MaxSurge = IntOrPercent.Count(0), MaxUnavailable = IntOrPercent.Percent(0) };
        var e = await Assert.ThrowsAsync<ControlPlaneException>(() => _h.Plane.ApplyAsync(App(Api(2, update)), "apply", CancellationToken.None));
        Assert.Equal(ControlPlaneError.Invalid, e.Error);
        Assert.Equal("$.services[0].update: maxSurge and maxUnavailable are both 0, so a rolling update could never make progress; set maxSurge to 1 (start a new replica first) or maxUnavailable to 1", e.Message);
        Assert.Null(_h.Plane.Current);
    }

    [Fact]
    public async Task Patch_FourReplicasDefaultStrategy_RoutedNeverBelowThreeAndAllReplaced()
    {
        await _h.Plane.ApplyAsync(App(Api(4)), "up", CancellationToken.None);
        await AllReadyAsync("api", 4);
        var mark = _h.Driver.Calls.Count;
        var old = _h.Of("api").Select(r => r.Id).ToList();

        var revision = await _h.Plane.PatchServiceAsync("api", Env("2"), CancellationToken.None);
        await AllReadyAsync("api", 4, revision.Number);

        Assert.Empty(old.Intersect(_h.Of("api").Select(r => r.Id)));
        var sizes = RouteSizesSince(mark);
        Assert.NotEmpty(sizes);
        Assert.True(sizes.Min() >= 3, $"routed replicas per update: {string.Join(",", sizes)}");
        Assert.True(_h.Driver.Starts.Count(s => s.Revision == revision.Number) == 4, "exactly 4 new replicas started");
        // The last old replica leaves the records once its stop is done; the pass after that one completes the rollout.
        await _h.UntilAsync(() => _h.Store.ListEvents().Any(e => e.Type == RolloutEvents.Complete && e.Message.StartsWith($"revision {revision.Number} ", StringComparison.Ordinal)),
            "the rollout-complete event", tick: true);
        var status = _h.Plane.GetRollout("api");
        Assert.Equal(new RolloutStatus(revision.Number, RolloutState.Complete, $"4/4 replicas of revision {revision.Number} ready"), status);
        Assert.Contains(_h.Store.ListEvents(), e => e.Type == RolloutEvents.Complete && e.Message == $"revision {revision.Number} rolled out: 4/4 replicas ready");
    }

    [Fact]
    public async Task Patch_StopFirstOneAtATime_NeverMoreThanWantRunning()
    {
        var update = new UpdateStrategy { MaxSurge = IntOrPercent.Count(0), MaxUnavailable = IntOrPercent.Count(1), Order = UpdateOrder.StopFirst };
        await _h.Plane.ApplyAsync(App(Api(3, update)), "up", CancellationToken.None);
        await AllReadyAsync("api", 3);
        var mark = _h.Driver.Calls.Count;

        var revision = await _h.Plane.PatchServiceAsync("api", Env("2"), CancellationToken.None);
        await AllReadyAsync("api", 3, revision.Number);

        var sizes = RouteSizesSince(mark);
        Assert.True(sizes.Min() >= 2 && sizes.Max() <= 3, $"routed replicas per update: {string.Join(",", sizes)}");
        // A new replica starts only after an old one was asked to stop.
        var calls = _h.Driver.Calls.Skip(mark).ToList();
        var firstNewStart = calls.FindIndex(c => c.StartsWith("start ", StringComparison.Ordinal));
        var firstStop = calls.FindIndex(c => c.StartsWith("stop ", StringComparison.Ordinal));
        Assert.True(firstStop >= 0 && firstStop < firstNewStart, string.Join(" | ", calls));
    }

    [Fact]
    public async Task ComposeUpdateConfig_StartFirstParallelismTwoDelayMonitor_BatchesOfTwoHeldByDelay()
    {
        var loaded = Berth.Core.Loading.SpecLoader.LoadText("""
            name: shop
            services:
              api:
                image: api:1
                command: [api]
                ports: ["8080"]
                deploy:
                  replicas: 4
                  update_config: {parallelism: 2, order: start-first, delay: 10s, monitor: 5s, failure_action: pause, max_failure_ratio: 0.5}
            """, "compose.yaml");
        Assert.True(loaded.Application is not null, string.Join("\n", loaded.Diagnostics));
        var api = loaded.Application!.FindService("api")!;
        Assert.Equal((2, 0), RollingUpdate.Resolve(api.Update, 4));
        Assert.Equal((FailureAction.Pause, 0.5, TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(5)),
            (api.Update.FailureAction, api.Update.MaxFailureRatio, api.Update.Delay, api.Update.Monitor));

        // The in-memory driver stands in for Docker and ports are assigned; the strategy is what is under test.
        var app = loaded.Application with { Services = [api with { Runtime = RuntimeKind.Process, Endpoints = [new Endpoint { Name = "http" }] }] };
        await _h.Plane.ApplyAsync(app, "up", CancellationToken.None);
        await _h.UntilAsync(() => _h.Of("api").Count(r => r.Phase == ReplicaPhase.Ready) == 4, "4 Ready", tick: true);
        var mark = _h.Driver.Calls.Count;
        var revision = await _h.Plane.PatchServiceAsync("api", Env("2"), CancellationToken.None);

        // The first batch of two starts at once (surge 2) …
        await _h.UntilAsync(() => _h.Of("api").Count(r => r.Revision == revision.Number && r.Phase == ReplicaPhase.Ready) == 2, "first batch of 2 Ready");
        // … counts once Ready for the 5s monitor, then the next batch waits for the 10s delay.
        _h.Time.Advance(TimeSpan.FromSeconds(5.5));
        await _h.UntilAsync(() => _h.Of("api").Count(r => r.Revision != revision.Number) == 2, "2 old replaced by the first batch");
        _h.Time.Advance(TimeSpan.FromSeconds(2));
        await _h.Plane.SettleAsync(CancellationToken.None);
        Assert.Equal(2, _h.Of("api").Count(r => r.Revision == revision.Number));
        await _h.UntilAsync(() => _h.Of("api").Count(r => r.Revision == revision.Number && r.Phase == ReplicaPhase.Ready) == 4 && _h.Of("api").Count() == 4, "second batch", tick: true);
        Assert.True(RouteSizesSince(mark).Min() >= 4, string.Join(",", RouteSizesSince(mark)));
    }

    [Fact]
    public async Task Patch_NewReplicasNeverReady_RolledBackAfterProgressDeadlineNamingReplicaAndReason()
    {
        var update = new UpdateStrategy { ProgressDeadline = TimeSpan.FromSeconds(30) };
        await _h.Plane.ApplyAsync(App(Api(2, update)), "up", CancellationToken.None);
        await AllReadyAsync("api", 2);
        var good = _h.Of("api").ToDictionary(r => r.Id, r => r.Revision);
        foreach (var r in _h.Of("api"))
        {
            _h.Prober.Healthy[r.Ports["http"]] = true;
        }

        _h.Prober.Default = false;
        var broken = await _h.Plane.PatchServiceAsync("api", Env("broken"), CancellationToken.None);
        await _h.UntilAsync(() => _h.Of("api").Any(r => r.Revision == broken.Number && r.Phase == ReplicaPhase.Running), "a new replica running, not Ready");
        Assert.Equal(RolloutState.Progressing, _h.Plane.GetRollout("api").State);

        // The clock has not moved since the patch, when the rollout last made progress: 29 s later it is still waiting.
        _h.Time.Advance(TimeSpan.FromSeconds(29));
        await _h.SettleAsync();
        Assert.Equal(RolloutState.Progressing, _h.Plane.GetRollout("api").State);
        Assert.DoesNotContain(_h.Store.ListEvents(), e => e.Type is RolloutEvents.Failed or RolloutEvents.RolledBack);
        Assert.Equal(broken.Number, _h.Store.ListRevisions()[0].Number);
        Assert.Contains(_h.Of("api"), r => r.Revision == broken.Number);

        await _h.UntilAsync(() => _h.Plane.GetRollout("api").State == RolloutState.RolledBack && _h.Of("api").Count() == 2 && _h.Of("api").All(r => r.Phase == ReplicaPhase.Ready),
            "rolled back after the 30s progress deadline", tick: true);

        var failedReplica = _h.Store.ListEvents().Single(e => e.Type == RolloutEvents.Failed).Replica;
        Assert.NotNull(failedReplica);
        var status = _h.Plane.GetRollout("api");
        Assert.Equal(good.Values.First(), status.Revision);
        Assert.Equal($"rolled back to revision {good.Values.First()}: new replica {failedReplica} not ready within the progress deadline of 30s: readiness probe failing: HTTP 500", status.Message);
        Assert.Equal(good, _h.Of("api").ToDictionary(r => r.Id, r => r.Revision)); // the good replicas were never touched
        var rollback = _h.Store.ListRevisions()[0];
        Assert.Equal($"rollback api to revision {good.Values.First()} (automatic)", rollback.Cause);
        Assert.Equal(good.Values.First(), rollback.TemplateOf("api"));
        Assert.False(rollback.Application.FindService("api")!.Env.ContainsKey("V"));
    }

    /// <summary>A rollout that replaced an old replica before it failed: the rollback must start a replica of the good
    /// template again. Until that one is Ready the status says rolling-back (not settled: the CLI's status watch and the
    /// deploy step keep waiting), and rolled-back only once every wanted replica runs the good template.</summary>
    [Fact]
    public async Task Patch_FailsAfterAnOldReplicaWasReplaced_RollingBackUntilTheGoodTemplateServesInFullThenRolledBack()
    {
        var (good, broken, failedReplica) = await FailAfterReplacingOneAsync();

        var status = _h.Plane.GetRollout("api");
        Assert.Equal((RolloutState.RollingBack, good), (status.State, status.Revision));
        Assert.False(status.State.IsSettled());
        Assert.Equal($"rolling back to revision {good}: new replica {failedReplica} not ready within the progress deadline of 30s: readiness probe failing: HTTP 500; " +
            $"1/2 replicas of revision {good} ready, 0 of older revisions left", status.Message);
        Assert.DoesNotContain(_h.Store.ListEvents(), e => e.Type == RolloutEvents.Complete && e.Message.StartsWith("rollback", StringComparison.Ordinal));

        _h.Prober.Default = true;
        await _h.UntilAsync(() => _h.Plane.GetRollout("api").State == RolloutState.RolledBack, "rolled back once the good template's new replica is Ready", tick: true);
        Assert.All(_h.Of("api"), r => Assert.Equal((good, ReplicaPhase.Ready), (r.Revision, r.Phase)));
        Assert.Equal(2, _h.Of("api").Count());
        Assert.DoesNotContain(_h.Of("api"), r => r.Revision == broken);
        Assert.Equal($"rolled back to revision {good}: new replica {failedReplica} not ready within the progress deadline of 30s: readiness probe failing: HTTP 500",
            _h.Plane.GetRollout("api").Message);
        Assert.Single(_h.Store.ListEvents(), e => e.Type == RolloutEvents.Complete && e.Message.StartsWith($"rollback to revision {good} complete", StringComparison.Ordinal));
    }

    /// <summary>A rollback is judged by the progress deadline like any rollout: one whose replicas never get Ready ends
    /// failed (settled, saying both why), so a status watch does not wait forever; no second rollback starts.</summary>
    [Fact]
    public async Task Patch_RollbackNeverGetsReady_FailedAfterTheProgressDeadlineSayingBothWhys()
    {
        var (good, _, failedReplica) = await FailAfterReplacingOneAsync();
        var rollbacks = _h.Store.ListRevisions().Count(r => r.Cause.StartsWith("rollback", StringComparison.Ordinal));

        _h.Time.Advance(TimeSpan.FromSeconds(29));
        await _h.SettleAsync();
        Assert.Equal(RolloutState.RollingBack, _h.Plane.GetRollout("api").State);

        await _h.UntilAsync(() => _h.Plane.GetRollout("api").State == RolloutState.Failed, "the stuck rollback reported failed after its 30s deadline", tick: true);
        var status = _h.Plane.GetRollout("api");
        Assert.Equal(good, status.Revision);
        Assert.Matches($"^the rollback to revision {good} failed: replica api-[0-9a-f]{{5}} not ready within the progress deadline of 30s: readiness probe failing: HTTP 500; " +
            $"it was rolling back because new replica {failedReplica} not ready within the progress deadline of 30s: readiness probe failing: HTTP 500; " +
            "fix it and apply, or 'berth rollout undo api'$", status.Message);
        Assert.Equal(rollbacks, _h.Store.ListRevisions().Count(r => r.Cause.StartsWith("rollback", StringComparison.Ordinal)));
        Assert.Equal(2, _h.Store.ListEvents().Count(e => e.Type == RolloutEvents.Failed));
    }

    /// <summary>Two replicas with maxSurge 0 and maxUnavailable 1: the rollout stops one good replica, its new replica never
    /// gets Ready (probed failing), and after the 30 s progress deadline the rollout is rolled back while the good template has one replica
    /// left. Returns the good and broken templates and the replica the failure names; new replicas stay unready.</summary>
    private async Task<(long Good, long Broken, string FailedReplica)> FailAfterReplacingOneAsync()
    {
        var update = new UpdateStrategy { ProgressDeadline = TimeSpan.FromSeconds(30), MaxSurge = new IntOrPercent(0, false), MaxUnavailable = new IntOrPercent(1, false) };
        await _h.Plane.ApplyAsync(App(Api(2, update)), "up", CancellationToken.None);
        await AllReadyAsync("api", 2);
        var good = _h.Of("api").First().Revision;
        HoldNewReplicasUnready();
        var broken = (await _h.Plane.PatchServiceAsync("api", Env("broken"), CancellationToken.None)).Number;
        await _h.UntilAsync(() => _h.Of("api").Count(r => r.Revision == good) == 1 && _h.Of("api").Any(r => r.Revision == broken && r.Phase == ReplicaPhase.Running),
            "one good replica replaced by a new one that is not Ready");
        Assert.Equal(RolloutState.Progressing, _h.Plane.GetRollout("api").State);

        _h.Time.Advance(TimeSpan.FromSeconds(29));
        await _h.SettleAsync();
        await _h.UntilAsync(() => _h.Store.ListEvents().Any(e => e.Type == RolloutEvents.RolledBack)
            && _h.Of("api").Any(r => r.Revision == good && r.Phase != ReplicaPhase.Ready && r.Handle is not null), "the rollback deciding and starting a good replica", tick: true);
        return (good, broken, _h.Store.ListEvents().Single(e => e.Type == RolloutEvents.Failed).Replica!);
    }

    [Fact]
    public async Task Patch_NewReplicaCrashes_RolledBackAtOnceByMaxFailureRatio()
    {
        await _h.Plane.ApplyAsync(App(Api(2)), "up", CancellationToken.None);
        await AllReadyAsync("api", 2);
        var good = _h.Of("api").First().Revision;
        HoldNewReplicasUnready();
        var broken = await _h.Plane.PatchServiceAsync("api", Env("crash"), CancellationToken.None);
        await _h.UntilAsync(() => _h.Of("api").Any(r => r.Revision == broken.Number && r.Handle is not null && _h.Driver.IsRunning(r.Id)), "a new replica started");
        var victim = _h.Of("api").First(r => r.Revision == broken.Number);

        _h.Driver.Exit(victim.Id, code: 3, signal: null);

        await _h.UntilAsync(() => _h.Plane.GetRollout("api").State == RolloutState.RolledBack && _h.Of("api").All(r => r.Revision == good) && _h.Of("api").Count() == 2, "rolled back");
        Assert.Equal($"rolled back to revision {good}: new replica {victim.Id} failed: exited with code 3; restarting; 1 of 2 new replicas failed, more than max_failure_ratio 0 allows",
            _h.Plane.GetRollout("api").Message);
        var failed = _h.Store.ListEvents().Single(e => e.Type == RolloutEvents.Failed);
        Assert.Equal(victim.Id, failed.Replica);
    }

    [Fact]
    public async Task Patch_FailureActionPause_ReportsFailedAndHoldsWithoutRollback()
    {
        var update = new UpdateStrategy { FailureAction = FailureAction.Pause };
        await _h.Plane.ApplyAsync(App(Api(2, update)), "up", CancellationToken.None);
        await AllReadyAsync("api", 2);
        HoldNewReplicasUnready();
        var broken = await _h.Plane.PatchServiceAsync("api", Env("crash"), CancellationToken.None);
        await _h.UntilAsync(() => _h.Of("api").Any(r => r.Revision == broken.Number && r.Handle is not null && _h.Driver.IsRunning(r.Id)), "a new replica started");
        _h.Driver.Exit(_h.Of("api").First(r => r.Revision == broken.Number).Id, code: 3, signal: null);

        await _h.UntilAsync(() => _h.Plane.GetRollout("api").State == RolloutState.Failed, "failed and paused");
        Assert.StartsWith("paused: new replica ", _h.Plane.GetRollout("api").Message, StringComparison.Ordinal);
        Assert.Equal(broken.Number, _h.Store.ListRevisions()[0].Number);
        Assert.Equal(2, _h.Of("api").Count(r => r.Revision != broken.Number && r.Phase == ReplicaPhase.Ready));
    }

    [Fact]
    public async Task Pause_MidRollout_HoldsUntilResumed()
    {
        await _h.Plane.ApplyAsync(App(Api(4)), "up", CancellationToken.None);
        await AllReadyAsync("api", 4);
        await _h.Plane.PauseRolloutAsync("api", CancellationToken.None);
        var revision = await _h.Plane.PatchServiceAsync("api", Env("2"), CancellationToken.None);
        for (var i = 0; i < 10; i++)
        {
            _h.Time.Advance(TimeSpan.FromSeconds(1));
            await _h.Plane.SettleAsync(CancellationToken.None);
        }

        Assert.Equal(RolloutState.Paused, _h.Plane.GetRollout("api").State);
        Assert.DoesNotContain(_h.Of("api"), r => r.Revision == revision.Number);

        await _h.Plane.ResumeRolloutAsync("api", CancellationToken.None);
        await AllReadyAsync("api", 4, revision.Number);
        Assert.Equal(RolloutState.Complete, _h.Plane.GetRollout("api").State);
        Assert.Equal([RolloutEvents.Paused, RolloutEvents.Resumed], _h.Store.ListEvents().Where(e => e.Type is RolloutEvents.Paused or RolloutEvents.Resumed).Select(e => e.Type));
    }

    [Fact]
    public async Task Undo_AfterTwoRollouts_ReturnsToPreviousTemplateAndHistoryListsAll()
    {
        var first = await _h.Plane.ApplyAsync(App(Api(2)), "up", CancellationToken.None);
        await AllReadyAsync("api", 2);
        var second = await _h.Plane.PatchServiceAsync("api", Env("2"), CancellationToken.None);
        await AllReadyAsync("api", 2, second.Number);
        var third = await _h.Plane.PatchServiceAsync("api", Env("3"), CancellationToken.None);
        await AllReadyAsync("api", 2, third.Number);

        var undo = await _h.Plane.UndoRolloutAsync("api", null, CancellationToken.None);
        Assert.Equal(second.Number, undo.TemplateOf("api"));
        await AllReadyAsync("api", 2, second.Number);
        Assert.All(_h.Driver.Starts.Where(s => s.Revision == second.Number).TakeLast(2), s => Assert.Equal("2", s.Env["V"]));

        await _h.Plane.UndoRolloutAsync("api", first.Number, CancellationToken.None);
        await AllReadyAsync("api", 2, first.Number);

        var history = _h.Plane.GetRolloutHistory("api");
        Assert.Equal([first.Number, second.Number, third.Number], history.Select(h => h.Revision));
        Assert.Equal(["up", "patch api", "patch api"], history.Select(h => h.Cause));
        Assert.Equal([true, false, false], history.Select(h => h.Current));
        var missing = await Assert.ThrowsAsync<ControlPlaneException>(() => _h.Plane.UndoRolloutAsync("api", 99, CancellationToken.None));
        Assert.Equal("no revision 99 of 'api' in the kept history; 'berth rollout history api' lists them", missing.Message);
    }

    [Fact]
    public async Task ControlPlaneRestart_MidRollout_ContinuesAndStillRollsBackFromPersistedRecord()
    {
        var update = new UpdateStrategy { ProgressDeadline = TimeSpan.FromSeconds(30) };
        await _h.Plane.ApplyAsync(App(Api(2, update)), "up", CancellationToken.None);
        await AllReadyAsync("api", 2);
        var good = _h.Of("api").First().Revision;
        foreach (var r in _h.Of("api"))
        {
            _h.Prober.Healthy[r.Ports["http"]] = true;
        }

        _h.Prober.Default = false;
        var broken = await _h.Plane.PatchServiceAsync("api", Env("broken"), CancellationToken.None);
        await _h.UntilAsync(() => _h.Of("api").Any(r => r.Revision == broken.Number && r.Phase == ReplicaPhase.Running), "a new replica running, not Ready");
        var events = _h.Store.ListEvents().Select(e => e.Id).ToList();

        await _h.RestartPlaneAsync();

        await _h.UntilAsync(() => _h.Plane.GetRollout("api").State == RolloutState.RolledBack && _h.Of("api").Count() == 2 && _h.Of("api").All(r => r.Revision == good && r.Phase == ReplicaPhase.Ready),
            "rolled back by the new control plane", tick: true);
        Assert.Equal(events, _h.Store.ListEvents().Take(events.Count).Select(e => e.Id));
        Assert.Equal([good, broken.Number, broken.Number + 1], _h.Store.ListRevisions().Select(r => r.Number).Order());
    }

    [Fact]
    public async Task ControlPlaneRestart_AfterDowntime_ProgressDeadlineCountsFromTheRestart()
    {
        var update = new UpdateStrategy { ProgressDeadline = TimeSpan.FromSeconds(30) };
        await _h.Plane.ApplyAsync(App(Api(2, update)), "up", CancellationToken.None);
        await AllReadyAsync("api", 2);
        HoldNewReplicasUnready();
        var broken = await _h.Plane.PatchServiceAsync("api", Env("broken"), CancellationToken.None);
        await _h.UntilAsync(() => _h.Of("api").Any(r => r.Revision == broken.Number && r.Phase == ReplicaPhase.Running), "a new replica running, not Ready");

        // 25 s pass with no control plane; the new one gives the rollout its whole deadline again.
        await _h.RestartPlaneAsync(whileDown: () => _h.Time.Advance(TimeSpan.FromSeconds(25)));
        _h.Time.Advance(TimeSpan.FromSeconds(29));
        await _h.SettleAsync();
        Assert.Equal(RolloutState.Progressing, _h.Plane.GetRollout("api").State);
        Assert.DoesNotContain(_h.Store.ListEvents(), e => e.Type is RolloutEvents.Failed or RolloutEvents.RolledBack);

        await _h.UntilAsync(() => _h.Plane.GetRollout("api").State == RolloutState.RolledBack, "rolled back once the deadline passed after the restart", tick: true);
    }
}
