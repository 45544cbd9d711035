using System.Collections.Immutable;
using Berth.Core.Contracts;
using Berth.Core.Model;
using Berth.Orchestration;
using Berth.Orchestration.Controllers;
using Berth.Orchestration.State;
using Berth.Orchestration.Tests.Fakes;
using Berth.Testing;
using Microsoft.Extensions.Time.Testing;

namespace Berth.Rollouts.Tests.Controllers;

/// <summary>The rollout policy over the in-memory driver and a fake clock; the real-process, real-mesh acceptance tests
/// are in Acceptance/.</summary>
public sealed class RolloutControllerTests : IAsyncLifetime
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(20);
    private readonly string _dir = Directory.CreateTempSubdirectory("berth-rollout-").FullName;
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
    private readonly FakeDriver _driver;
    private readonly RecordingRouteSink _routes;
    private readonly ScriptedProber _prober = new();
    private readonly ConsoleLogger<ControlPlane> _log = new();
    private StateStore _store = null!;
    private ControlPlane _plane = null!;

    public RolloutControllerTests()
    {
        _driver = new FakeDriver(_time);
        _routes = new RecordingRouteSink(_driver.Calls);
    }

    public async Task InitializeAsync()
    {
        _store = StateStore.Open(_dir);
        _plane = NewPlane();
        await _plane.StartAsync(CancellationToken.None);
    }

    public async Task DisposeAsync()
    {
        await _plane.DisposeAsync();
        _store.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    private ControlPlane NewPlane() =>
        new(new OrchestratorOptions { StateDirectory = _dir }, _store, [_driver], _routes, _prober, _time, _log, random: new Random(7));

    private static Service Api(int replicas, UpdateStrategy? update = null) => new()
    {
        Name = "api", Command = ["api"], Replicas = replicas,
        Endpoints = [new Endpoint { Name = "http" }],
        Readiness = new Probe { Kind = ProbeKind.Http, Path = "/healthz", Period = TimeSpan.FromSeconds(1) },
        Update = update ?? UpdateStrategy.Default,
    };

    private static Application App(params Service[] services) => new() { Name = "shop", Services = [.. services] };

    private static ServicePatch Env(string value) => new() { Env = ImmutableSortedDictionary<string, string>.Empty.Add("V", value) };

    private IEnumerable<ReplicaRecord> Of(string service) => _plane.Replicas.Where(r => r.Service == service);

    private async Task UntilAsync(Func<bool> condition, string what, bool tick = false)
    {
        try
        {
            await Poll.UntilAsync(() =>
            {
                if (tick)
                {
                    _time.Advance(TimeSpan.FromMilliseconds(250));
                }

                return condition();
            }, Wait, what);
        }
        catch (TimeoutException e)
        {
            throw new TimeoutException($"{e.Message}\nhave: {string.Join(", ", _plane.Replicas.Select(r => $"{r.Id}:{r.Revision}:{r.Phase}:{r.Reason}"))}\nevents:\n{string.Join("\n", _store.ListEvents().Select(x => $"{x.Type} {x.Replica}: {x.Message}"))}\nlog:\n{string.Join("\n", _log.Lines)}", e);
        }
    }

    private Task AllReadyAsync(string service, int n, long? revision = null) =>
        UntilAsync(() => Of(service).Count(r => r.Phase == ReplicaPhase.Ready && (revision is null || r.Revision == revision)) == n && Of(service).Count() == n
            && _routes.Upstreams(service).Count == n, $"{n} Ready {service} replicas{(revision is null ? "" : $" of revision {revision}")} in routes", tick: true);

    private List<int> RouteSizesSince(int mark) => [.. _driver.Calls.Skip(mark)
        .Where(c => c.StartsWith("route api.http:", StringComparison.Ordinal))
        .Select(c => c["route api.http:".Length..].Trim())
        .Select(u => u.Length == 0 ? 0 : u.Split(',').Length)];

    /// <summary>Replicas running now stay Ready; new ones fail readiness, so a rollout stays in progress.</summary>
    private void HoldNewReplicasUnready()
    {
        foreach (var r in Of("api"))
        {
            _prober.Healthy[r.Ports["http"]] = true;
        }

        _prober.Default = false;
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
        var e = await Assert.ThrowsAsync<ControlPlaneException>(() => _plane.ApplyAsync(App(Api(2, update)), "apply", CancellationToken.None));
        Assert.Equal(ControlPlaneError.Invalid, e.Error);
        Assert.Equal("services.api.update: maxSurge and maxUnavailable are both 0, so a rolling update could never make progress; set maxSurge to 1 (start a new replica first) or maxUnavailable to 1", e.Message);
        Assert.Null(_plane.Current);
    }

    [Fact]
    public async Task Patch_FourReplicasDefaultStrategy_RoutedNeverBelowThreeAndAllReplaced()
    {
        await _plane.ApplyAsync(App(Api(4)), "up", CancellationToken.None);
        await AllReadyAsync("api", 4);
        var mark = _driver.Calls.Count;
        var old = Of("api").Select(r => r.Id).ToList();

        var revision = await _plane.PatchServiceAsync("api", Env("2"), CancellationToken.None);
        await AllReadyAsync("api", 4, revision.Number);

        Assert.Empty(old.Intersect(Of("api").Select(r => r.Id)));
        var sizes = RouteSizesSince(mark);
        Assert.NotEmpty(sizes);
        Assert.True(sizes.Min() >= 3, $"routed replicas per update: {string.Join(",", sizes)}");
        Assert.True(_driver.Starts.Count(s => s.Revision == revision.Number) == 4, "exactly 4 new replicas started");
        var status = _plane.GetRollout("api");
        Assert.Equal(new RolloutStatus(revision.Number, RolloutState.Complete, $"4/4 replicas of revision {revision.Number} ready"), status);
        Assert.Contains(_store.ListEvents(), e => e.Type == RolloutEvents.Complete && e.Message == $"revision {revision.Number} rolled out: 4/4 replicas ready");
    }

    [Fact]
    public async Task Patch_StopFirstOneAtATime_NeverMoreThanWantRunning()
    {
        var update = new UpdateStrategy { MaxSurge = IntOrPercent.Count(0), MaxUnavailable = IntOrPercent.Count(1), Order = UpdateOrder.StopFirst };
        await _plane.ApplyAsync(App(Api(3, update)), "up", CancellationToken.None);
        await AllReadyAsync("api", 3);
        var mark = _driver.Calls.Count;

        var revision = await _plane.PatchServiceAsync("api", Env("2"), CancellationToken.None);
        await AllReadyAsync("api", 3, revision.Number);

        var sizes = RouteSizesSince(mark);
        Assert.True(sizes.Min() >= 2 && sizes.Max() <= 3, $"routed replicas per update: {string.Join(",", sizes)}");
        // A new replica starts only after an old one was asked to stop.
        var calls = _driver.Calls.Skip(mark).ToList();
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
        await _plane.ApplyAsync(app, "up", CancellationToken.None);
        await UntilAsync(() => Of("api").Count(r => r.Phase == ReplicaPhase.Ready) == 4, "4 Ready", tick: true);
        var mark = _driver.Calls.Count;
        var revision = await _plane.PatchServiceAsync("api", Env("2"), CancellationToken.None);

        // The first batch of two starts at once (surge 2) …
        await UntilAsync(() => Of("api").Count(r => r.Revision == revision.Number && r.Phase == ReplicaPhase.Ready) == 2, "first batch of 2 Ready");
        // … counts once Ready for the 5s monitor, then the next batch waits for the 10s delay.
        _time.Advance(TimeSpan.FromSeconds(5.5));
        await UntilAsync(() => Of("api").Count(r => r.Revision != revision.Number) == 2, "2 old replaced by the first batch");
        _time.Advance(TimeSpan.FromSeconds(2));
        await _plane.SettleAsync(CancellationToken.None);
        Assert.Equal(2, Of("api").Count(r => r.Revision == revision.Number));
        await UntilAsync(() => Of("api").Count(r => r.Revision == revision.Number && r.Phase == ReplicaPhase.Ready) == 4 && Of("api").Count() == 4, "second batch", tick: true);
        Assert.True(RouteSizesSince(mark).Min() >= 4, string.Join(",", RouteSizesSince(mark)));
    }

    [Fact]
    public async Task Patch_NewReplicasNeverReady_RolledBackAfterProgressDeadlineNamingReplicaAndReason()
    {
        var update = new UpdateStrategy { ProgressDeadline = TimeSpan.FromSeconds(30) };
        await _plane.ApplyAsync(App(Api(2, update)), "up", CancellationToken.None);
        await AllReadyAsync("api", 2);
        var good = Of("api").ToDictionary(r => r.Id, r => r.Revision);
        foreach (var r in Of("api"))
        {
            _prober.Healthy[r.Ports["http"]] = true;
        }

        _prober.Default = false;
        var broken = await _plane.PatchServiceAsync("api", Env("broken"), CancellationToken.None);
        await UntilAsync(() => Of("api").Any(r => r.Revision == broken.Number && r.Phase == ReplicaPhase.Running), "a new replica running, not Ready");
        Assert.Equal(RolloutState.Progressing, _plane.GetRollout("api").State);

        await UntilAsync(() => _plane.GetRollout("api").State == RolloutState.RolledBack && Of("api").Count() == 2 && Of("api").All(r => r.Phase == ReplicaPhase.Ready),
            "rolled back after the 30s progress deadline", tick: true);

        var failedReplica = _store.ListEvents().Single(e => e.Type == RolloutEvents.Failed).Replica;
        Assert.NotNull(failedReplica);
        var status = _plane.GetRollout("api");
        Assert.Equal(good.Values.First(), status.Revision);
        Assert.Equal($"rolled back to revision {good.Values.First()}: new replica {failedReplica} not ready within the progress deadline of 30s: readiness probe failing: HTTP 500", status.Message);
        Assert.Equal(good, Of("api").ToDictionary(r => r.Id, r => r.Revision)); // the good replicas were never touched
        var rollback = _store.ListRevisions()[0];
        Assert.Equal($"rollback api to revision {good.Values.First()} (automatic)", rollback.Cause);
        Assert.Equal(good.Values.First(), rollback.TemplateOf("api"));
        Assert.False(rollback.Application.FindService("api")!.Env.ContainsKey("V"));
    }

    [Fact]
    public async Task Patch_NewReplicaCrashes_RolledBackAtOnceByMaxFailureRatio()
    {
        await _plane.ApplyAsync(App(Api(2)), "up", CancellationToken.None);
        await AllReadyAsync("api", 2);
        var good = Of("api").First().Revision;
        HoldNewReplicasUnready();
        var broken = await _plane.PatchServiceAsync("api", Env("crash"), CancellationToken.None);
        await UntilAsync(() => Of("api").Any(r => r.Revision == broken.Number && r.Handle is not null && _driver.IsRunning(r.Id)), "a new replica started");
        var victim = Of("api").First(r => r.Revision == broken.Number);

        _driver.Exit(victim.Id, code: 3, signal: null);

        await UntilAsync(() => _plane.GetRollout("api").State == RolloutState.RolledBack && Of("api").All(r => r.Revision == good) && Of("api").Count() == 2, "rolled back");
        Assert.Equal($"rolled back to revision {good}: new replica {victim.Id} failed: exited with code 3; restarting; 1 of 2 new replicas failed, more than max_failure_ratio 0 allows",
            _plane.GetRollout("api").Message);
        var failed = _store.ListEvents().Single(e => e.Type == RolloutEvents.Failed);
        Assert.Equal(victim.Id, failed.Replica);
    }

    [Fact]
    public async Task Patch_FailureActionPause_ReportsFailedAndHoldsWithoutRollback()
    {
        var update = new UpdateStrategy { FailureAction = FailureAction.Pause };
        await _plane.ApplyAsync(App(Api(2, update)), "up", CancellationToken.None);
        await AllReadyAsync("api", 2);
        HoldNewReplicasUnready();
        var broken = await _plane.PatchServiceAsync("api", Env("crash"), CancellationToken.None);
        await UntilAsync(() => Of("api").Any(r => r.Revision == broken.Number && r.Handle is not null && _driver.IsRunning(r.Id)), "a new replica started");
        _driver.Exit(Of("api").First(r => r.Revision == broken.Number).Id, code: 3, signal: null);

        await UntilAsync(() => _plane.GetRollout("api").State == RolloutState.Failed, "failed and paused");
        Assert.StartsWith("paused: new replica ", _plane.GetRollout("api").Message, StringComparison.Ordinal);
        Assert.Equal(broken.Number, _store.ListRevisions()[0].Number);
        Assert.Equal(2, Of("api").Count(r => r.Revision != broken.Number && r.Phase == ReplicaPhase.Ready));
    }

    [Fact]
    public async Task Pause_MidRollout_HoldsUntilResumed()
    {
        await _plane.ApplyAsync(App(Api(4)), "up", CancellationToken.None);
        await AllReadyAsync("api", 4);
        await _plane.PauseRolloutAsync("api", CancellationToken.None);
        var revision = await _plane.PatchServiceAsync("api", Env("2"), CancellationToken.None);
        for (var i = 0; i < 10; i++)
        {
            _time.Advance(TimeSpan.FromSeconds(1));
            await _plane.SettleAsync(CancellationToken.None);
        }

        Assert.Equal(RolloutState.Paused, _plane.GetRollout("api").State);
        Assert.DoesNotContain(Of("api"), r => r.Revision == revision.Number);

        await _plane.ResumeRolloutAsync("api", CancellationToken.None);
        await AllReadyAsync("api", 4, revision.Number);
        Assert.Equal(RolloutState.Complete, _plane.GetRollout("api").State);
        Assert.Equal([RolloutEvents.Paused, RolloutEvents.Resumed], _store.ListEvents().Where(e => e.Type is RolloutEvents.Paused or RolloutEvents.Resumed).Select(e => e.Type));
    }

    [Fact]
    public async Task Undo_AfterTwoRollouts_ReturnsToPreviousTemplateAndHistoryListsAll()
    {
        var first = await _plane.ApplyAsync(App(Api(2)), "up", CancellationToken.None);
        await AllReadyAsync("api", 2);
        var second = await _plane.PatchServiceAsync("api", Env("2"), CancellationToken.None);
        await AllReadyAsync("api", 2, second.Number);
        var third = await _plane.PatchServiceAsync("api", Env("3"), CancellationToken.None);
        await AllReadyAsync("api", 2, third.Number);

        var undo = await _plane.UndoRolloutAsync("api", null, CancellationToken.None);
        Assert.Equal(second.Number, undo.TemplateOf("api"));
        await AllReadyAsync("api", 2, second.Number);
        Assert.All(_driver.Starts.Where(s => s.Revision == second.Number).TakeLast(2), s => Assert.Equal("2", s.Env["V"]));

        await _plane.UndoRolloutAsync("api", first.Number, CancellationToken.None);
        await AllReadyAsync("api", 2, first.Number);

        var history = _plane.GetRolloutHistory("api");
        Assert.Equal([first.Number, second.Number, third.Number], history.Select(h => h.Revision));
        Assert.Equal(["up", "patch api", "patch api"], history.Select(h => h.Cause));
        Assert.Equal([true, false, false], history.Select(h => h.Current));
        var missing = await Assert.ThrowsAsync<ControlPlaneException>(() => _plane.UndoRolloutAsync("api", 99, CancellationToken.None));
        Assert.Equal("no revision 99 of 'api' in the kept history; 'berth rollout history api' lists them", missing.Message);
    }

    [Fact]
    public async Task ControlPlaneRestart_MidRollout_ContinuesAndStillRollsBackFromPersistedRecord()
    {
        var update = new UpdateStrategy { ProgressDeadline = TimeSpan.FromSeconds(30) };
        await _plane.ApplyAsync(App(Api(2, update)), "up", CancellationToken.None);
        await AllReadyAsync("api", 2);
        var good = Of("api").First().Revision;
        foreach (var r in Of("api"))
        {
            _prober.Healthy[r.Ports["http"]] = true;
        }

        _prober.Default = false;
        var broken = await _plane.PatchServiceAsync("api", Env("broken"), CancellationToken.None);
        await UntilAsync(() => Of("api").Any(r => r.Revision == broken.Number && r.Phase == ReplicaPhase.Running), "a new replica running, not Ready");
        var events = _store.ListEvents().Select(e => e.Id).ToList();

        await _plane.DisposeAsync();
        _plane = NewPlane();
        await _plane.StartAsync(CancellationToken.None);

        await UntilAsync(() => _plane.GetRollout("api").State == RolloutState.RolledBack && Of("api").Count() == 2 && Of("api").All(r => r.Revision == good && r.Phase == ReplicaPhase.Ready),
            "rolled back by the new control plane", tick: true);
        Assert.Equal(events, _store.ListEvents().Take(events.Count).Select(e => e.Id));
        Assert.Equal([good, broken.Number, broken.Number + 1], _store.ListRevisions().Select(r => r.Number).Order());
    }
}
