using System.Collections.Concurrent;

namespace Berth.Orchestration.Tests.Controllers;

/// <summary>The controller logic over an in-memory driver and a fake clock; the real-process acceptance tests are in Berth.EndToEnd.Tests.</summary>
public sealed class ControlPlaneTests : IAsyncLifetime
{
    private readonly ControlPlaneHarness _h = new("berth-cp-");

    public async Task InitializeAsync() => await _h.StartAsync();

    public async Task DisposeAsync() => await _h.DisposeAsync();

    private static Service Api(int replicas = 2) => HarnessApps.Api(replicas);

    private static Application App(params Service[] services) => HarnessApps.Shop(services);

    [Fact]
    public async Task Apply_TwoReplicas_BothReadyRoutedWithDiscoveryEnv()
    {
        var web = new Service { Name = "web", Command = ["web"], Endpoints = [new Endpoint { Name = "http", Port = 18080 }] };
        var revision = await _h.Plane.ApplyAsync(App(Api(), web), "up", CancellationToken.None);
        await _h.AllReadyAsync("api", 2);
        await _h.AllReadyAsync("web", 1);

        var route = _h.Routes.Routes[("api", "http")];
        var stable = _h.Plane.StablePorts[("api", "http")];
        Assert.Equal(stable, route.StablePort);
        Assert.Equal(18080, _h.Routes.Routes[("web", "http")].StablePort);
        var spec = _h.Driver.Starts.First(s => s.Service == "api");
        Assert.Equal($"http://127.0.0.1:{stable}", spec.Env["services__api__http__0"]);
        Assert.Equal("http://127.0.0.1:18080", spec.Env["services__web__http__0"]);
        Assert.Equal(spec.Ports["http"].ToString(System.Globalization.CultureInfo.InvariantCulture), spec.Env["PORT"]);
        Assert.Equal($"http://127.0.0.1:{spec.Ports["http"]}", spec.Env["ASPNETCORE_URLS"]);
        Assert.Equal(revision.Number.ToString(System.Globalization.CultureInfo.InvariantCulture), spec.Env["BERTH_REVISION"]);
        Assert.Equal(spec.ReplicaId, spec.Env["BERTH_REPLICA"]);
        Assert.Equal("shop", spec.Labels["berth.app"]);
        Assert.NotEqual(stable, spec.Ports["http"]);
        var replicaPorts = _h.Driver.Starts.Where(s => s.Service == "api").Select(s => s.Ports["http"]).ToList();
        Assert.Equal(replicaPorts.Count, replicaPorts.Distinct().Count());
    }

    [Fact]
    public async Task Apply_RevisionEvent_CurrentAlreadyShowsTheNewRevision()
    {
        // Subscribers (the pipeline triggers) read Current when the revision event arrives. The event is logged inside
        // the same locked section, right after it is emitted, so this reads Current at the moment it goes out.
        var seen = new ConcurrentQueue<long?>();
        _h.Log.OnLine = line =>
        {
            if (line.StartsWith("[Information] revision ", StringComparison.Ordinal))
            {
                seen.Enqueue(_h.Plane.Current?.Number);
            }
        };

        var first = await _h.Plane.ApplyAsync(App(Api(1)), "up", CancellationToken.None);
        // A template change (a scale makes no revision since issue #14 §7).
        var second = await _h.Plane.PatchServiceAsync("api", new ServicePatch { Env = ImmutableSortedDictionary<string, string>.Empty.Add("V", "2") }, CancellationToken.None);

        Assert.Equal([first.Number, second.Number], seen);
        Assert.Equal(first.Number + 1, second.Number);
    }

    [Fact]
    public async Task Exit_CrashLoop_RestartsAtOnceThenBacksOffOneTwoFourSeconds()
    {
        await _h.Plane.ApplyAsync(App(Api(1)), "up", CancellationToken.None);
        await _h.AllReadyAsync("api", 1);
        var id = _h.Of("api").Single().Id;

        // First crash: restarted at once (the kubelet's first restart has no delay).
        _h.Driver.Exit(id);
        await _h.UntilAsync(() => _h.Driver.StartCount(id) == 2 && _h.Of("api").Single().Phase == ReplicaPhase.Ready, "immediate restart after the first crash");
        Assert.Empty(_h.Routes.Upstreams("api").Except([id]));

        foreach (var seconds in new[] { 1, 2, 4 })
        {
            var starts = _h.Driver.StartCount(id);
            _h.Driver.Exit(id);
            await _h.UntilAsync(() => _h.Of("api").Single() is { Phase: ReplicaPhase.BackOff, NextRetryAt: not null }, "back-off after a crash");
            var r = _h.Of("api").Single();
            Assert.Equal(_h.Time.GetUtcNow().AddSeconds(seconds), r.NextRetryAt);
            Assert.Empty(_h.Routes.Upstreams("api"));
            _h.Time.Advance(TimeSpan.FromSeconds(seconds) - TimeSpan.FromMilliseconds(10));
            await _h.Plane.SettleAsync(CancellationToken.None);
            Assert.Equal(starts, _h.Driver.StartCount(id));
            _h.Time.Advance(TimeSpan.FromMilliseconds(10));
            await _h.UntilAsync(() => _h.Driver.StartCount(id) == starts + 1, $"restart after {seconds}s of back-off");
            await _h.UntilAsync(() => _h.Of("api").Single().Phase == ReplicaPhase.Ready, "Ready again");
        }

        Assert.Equal(4, _h.Of("api").Single().RestartCount);
        var types = _h.Store.ListEvents().Where(e => e.Replica == id).Select(e => e.Type).ToList();
        Assert.Equal(3, types.Count(t => t == EventTypes.BackOff));
        Assert.Equal(4, types.Count(t => t == EventTypes.Restarted));
    }

    [Fact]
    public async Task Exit_OnFailureExitZero_CompletesAndFreesItsCapacity()
    {
        var job = new Service { Name = "job", Command = ["job"], Restart = new RestartPolicy { Mode = RestartMode.OnFailure } };
        await _h.Plane.ApplyAsync(App(job), "up", CancellationToken.None);
        await _h.UntilAsync(() => _h.Of("job").SingleOrDefault()?.Phase == ReplicaPhase.Ready, "job running");
        _h.Driver.Exit(_h.Of("job").Single().Id, code: 0, signal: null);
        await _h.UntilAsync(() => _h.Of("job").Single().Phase == ReplicaPhase.Completed, "job completed");
        Assert.Equal("exited with code 0; restart: on-failure", _h.Of("job").Single().Reason);
        Assert.Equal(0, _h.Plane.Nodes.Single().Replicas);
    }

    [Fact]
    public async Task Scale_Down_RemovesFromRoutesBeforeStopping()
    {
        await _h.Plane.ApplyAsync(App(Api(3)), "up", CancellationToken.None);
        await _h.AllReadyAsync("api", 3);
        var all = _h.Of("api").Select(r => r.Id).ToList();
        var revision = await _h.Plane.ScaleAsync("api", 1, CancellationToken.None);
        await _h.AllReadyAsync("api", 1);
        var kept = _h.Of("api").Single().Id;

        var calls = _h.Driver.Calls.ToList();
        var stops = calls.Where(c => c.StartsWith("stop ", StringComparison.Ordinal)).ToList();
        // Exactly the two victims were stopped through the driver: with no stop recorded the order below proves nothing.
        Assert.Equal(all.Where(id => id != kept).Order(StringComparer.Ordinal), stops.Select(c => c["stop ".Length..]).Order(StringComparer.Ordinal));
        foreach (var stop in stops)
        {
            var victim = stop["stop ".Length..];
            Assert.NotEqual(kept, victim);
            var stopAt = calls.IndexOf(stop);
            var lastRouteWithVictim = calls.FindLastIndex(c => c.StartsWith("route api.http", StringComparison.Ordinal) && c.Contains(victim, StringComparison.Ordinal));
            var firstRouteWithout = calls.FindIndex(lastRouteWithVictim + 1, c => c.StartsWith("route api.http", StringComparison.Ordinal));
            Assert.True(firstRouteWithout >= 0 && firstRouteWithout < stopAt, $"{victim} must leave routing before it is stopped: {string.Join(" | ", calls)}");
        }

        // No pod template changed: the count is written into the current revision, no new one (issue #14 §7, as Kubernetes).
        Assert.Equal("up", revision.Cause);
        Assert.Equal(1, Assert.Single(_h.Store.ListRevisions()).Application.FindService("api")!.Replicas);
    }

    [Fact]
    public async Task Scale_Down_ControlPlaneStopsWhileTheVictimIsRemoved_LiveReplicaFoldersKept()
    {
        // Seen in CI: a retire's prune ran after the control plane began stopping, its locked read of the live ids was
        // skipped, and every live replica's folder (pid file, logs) was deleted, so the next control plane restarted them.
        await _h.Plane.ApplyAsync(App(Api(2)), "up", CancellationToken.None);
        await _h.AllReadyAsync("api", 2);
        var folders = _h.Of("api").Select(r => Path.Combine(_h.Directory, "replicas", r.Id)).ToList();
        foreach (var folder in folders)
        {
            Directory.CreateDirectory(folder);
            await File.WriteAllTextAsync(Path.Combine(folder, "pid"), "pid=1\n");
        }

        _h.Driver.RemoveGate = new SemaphoreSlim(0);
        await _h.Plane.ScaleAsync("api", 1, CancellationToken.None);
        await _h.UntilAsync(() => _h.Driver.Calls.Any(c => c.StartsWith("remove ", StringComparison.Ordinal)), "the victim's removal to begin");
        var kept = Path.Combine(_h.Directory, "replicas", _h.Of("api").Single().Id);

        await _h.RestartPlaneAsync();

        Assert.True(File.Exists(Path.Combine(kept, "pid")), $"the live replica's folder {kept} lost its pid file while the control plane stopped");
        await _h.AllReadyAsync("api", 1);
        Assert.Equal(2, _h.Driver.Starts.Count);
    }

    [Fact]
    public async Task Scale_TenTimesAfterAPatch_NoRevisionsAndUndoStillGoesBack()
    {
        var first = await _h.Plane.ApplyAsync(App(Api(2)), "up", CancellationToken.None);
        await _h.AllReadyAsync("api", 2);
        var patched = await _h.Plane.PatchServiceAsync("api", new ServicePatch { Env = ImmutableSortedDictionary<string, string>.Empty.Add("V", "2") }, CancellationToken.None);
        await _h.UntilAsync(() => _h.Of("api").Count() == 2 && _h.Of("api").All(r => r.Revision == patched.Number && r.Phase == ReplicaPhase.Ready), "2 Ready of the patched template");

        for (var i = 0; i < 10; i++)
        {
            await _h.Plane.ScaleAsync("api", 1 + (i % 3), CancellationToken.None);
        }

        await _h.Plane.StopServiceAsync("api", CancellationToken.None);
        await _h.Plane.StartServiceAsync("api", CancellationToken.None);
        await _h.Plane.RestartServiceAsync("api", CancellationToken.None);

        Assert.Equal([patched.Number, first.Number], _h.Store.ListRevisions().Select(r => r.Number));
        Assert.Equal(1 + (9 % 3), _h.Plane.Current!.Application.FindService("api")!.Replicas);
        var undo = await _h.Plane.UndoRolloutAsync("api", null, CancellationToken.None);
        Assert.Equal($"undo api to revision {first.Number}", undo.Cause);
        Assert.Equal(first.Number, undo.TemplateOf("api"));
        Assert.Equal(1 + (9 % 3), undo.Application.FindService("api")!.Replicas);
        Assert.False(undo.Application.FindService("api")!.Env.ContainsKey("V"));
        await _h.UntilAsync(() => _h.Of("api").Count() == 1 + (9 % 3) && _h.Of("api").All(r => r.Revision == first.Number && r.Phase == ReplicaPhase.Ready), "back on the first template");
    }

    [Fact]
    public async Task Apply_UnchangedSpec_SameRevisionNoEvent()
    {
        var first = await _h.Plane.ApplyAsync(App(Api(2)), "up", CancellationToken.None);
        await _h.AllReadyAsync("api", 2);
        var revisionEvents = _h.Store.ListEvents(0, int.MaxValue).Count(e => e.Type == EventTypes.Revision);

        var again = await _h.Plane.ApplyAsync(App(Api(2)), "up", CancellationToken.None);
        var rescaled = await _h.Plane.ApplyAsync(App(Api(3)), "up", CancellationToken.None);
        await _h.AllReadyAsync("api", 3);

        Assert.Equal(first.Number, again.Number);
        Assert.Equal(first.Number, rescaled.Number);
        Assert.Single(_h.Store.ListRevisions());
        Assert.Equal(revisionEvents, _h.Store.ListEvents(0, int.MaxValue).Count(e => e.Type == EventTypes.Revision));
        var changed = await _h.Plane.ApplyAsync(App(Api(3) with { Command = ["api", "--v2"] }), "up", CancellationToken.None);
        Assert.Equal(first.Number + 1, changed.Number);
    }

    [Fact]
    public async Task Scale_UnknownServiceOrNegative_ClearErrors()
    {
        await _h.Plane.ApplyAsync(App(Api(1)), "up", CancellationToken.None);
        var unknown = await Assert.ThrowsAsync<ControlPlaneException>(() => _h.Plane.ScaleAsync("nope", 2, CancellationToken.None));
        Assert.Equal("no service 'nope' in app 'shop'; known: api", unknown.Message);
        Assert.Equal(ControlPlaneError.NotFound, unknown.Error);
        var negative = await Assert.ThrowsAsync<ControlPlaneException>(() => _h.Plane.ScaleAsync("api", -1, CancellationToken.None));
        Assert.Equal("replicas must be 0 or more, got -1", negative.Message);
        var huge = await Assert.ThrowsAsync<ControlPlaneException>(() => _h.Plane.ScaleAsync("api", 1_000_000, CancellationToken.None));
        Assert.Equal("replicas must be at most 10000 on one machine, got 1000000; run more on Kubernetes (berth k8s generate)", huge.Message);
        Assert.Single(_h.Store.ListRevisions());
    }

    [Fact]
    public async Task Capacity_Exceeded_RestPendingWithReasonUntilOtherServiceScalesDown()
    {
        var app = App(
            new Service { Name = "big", Command = ["big"], Replicas = 2, Resources = new Resources { CpuRequest = CpuQuantity.Parse("1") } },
            new Service { Name = "small", Command = ["small"], Replicas = 10, Resources = new Resources { CpuRequest = CpuQuantity.Parse("250m") } }) with
        {
            Nodes = [new Node("n1", CpuQuantity.Parse("2"), ByteSize.FromMebibytes(4096)), new Node("n2", CpuQuantity.Parse("1"), ByteSize.FromMebibytes(4096))],
        };
        await _h.Plane.ApplyAsync(app, "up", CancellationToken.None);
        await _h.UntilAsync(() => _h.Of("small").Count() == 10 && _h.Of("big").All(r => r.Phase == ReplicaPhase.Ready)
            && _h.Of("small").Count(r => r.Phase == ReplicaPhase.Pending && r.Reason?.StartsWith("0/2 nodes fit: 2 insufficient cpu", StringComparison.Ordinal) == true) == 6,
            "big running, 4 small running, 6 small Pending for cpu");
        Assert.Equal(4, _h.Of("small").Count(r => r.Phase == ReplicaPhase.Ready));
        Assert.Contains(_h.Store.ListEvents(), e => e.Type == EventTypes.Pending && e.Service == "small");

        await _h.Plane.ScaleAsync("big", 0, CancellationToken.None);
        await _h.AllReadyAsync("small", 10, routed: false);
        Assert.Empty(_h.Of("big"));
    }

    [Fact]
    public async Task Restart_ControlPlane_AdoptsRunningReplicasWithoutRestartingAndKeepsHistory()
    {
        await _h.Plane.ApplyAsync(App(Api(3)), "up", CancellationToken.None);
        await _h.AllReadyAsync("api", 3);
        await _h.Plane.ScaleAsync("api", 2, CancellationToken.None);
        await _h.AllReadyAsync("api", 2);
        var before = _h.Of("api").Select(r => r.Id).ToList();
        var events = _h.Store.ListEvents().Count;
        var revisions = _h.Store.ListRevisions().Count;

        await _h.RestartPlaneAsync();
        await _h.AllReadyAsync("api", 2);

        Assert.Equal(before, _h.Of("api").Select(r => r.Id));
        Assert.All(before, id => Assert.Equal(1, _h.Driver.StartCount(id)));
        Assert.Equal(revisions, _h.Store.ListRevisions().Count);
        var after = _h.Store.ListEvents();
        Assert.True(after.Count >= events + 2);
        Assert.Equal(2, after.Skip(events).Count(e => e.Type == EventTypes.Adopted));

        // The adopted replicas are watched: a crash after adoption is still handled.
        _h.Driver.Exit(before[0]);
        await _h.UntilAsync(() => _h.Driver.StartCount(before[0]) == 2, "adopted replica restarted after a crash");
    }

    [Fact]
    public async Task Restart_ControlPlaneWhileReplicaDied_RestartsIt()
    {
        await _h.Plane.ApplyAsync(App(Api(1)), "up", CancellationToken.None);
        await _h.AllReadyAsync("api", 1);
        var id = _h.Of("api").Single().Id;
        await _h.RestartPlaneAsync(whileDown: () => _h.Driver.Exit(id));
        await _h.UntilAsync(() => _h.Driver.StartCount(id) == 2 && _h.Of("api").Single().Phase == ReplicaPhase.Ready, "replica that died while the control plane was down restarted");
    }

    [Fact]
    public async Task Liveness_FailsThreeTimes_ReplicaRestarted()
    {
        var api = Api(1) with { Readiness = null, Liveness = new Probe { Kind = ProbeKind.Http, Period = TimeSpan.FromSeconds(1), FailureThreshold = 3 } };
        await _h.Plane.ApplyAsync(App(api), "up", CancellationToken.None);
        await _h.AllReadyAsync("api", 1);
        var r = _h.Of("api").Single();
        _h.Prober.Healthy[r.Ports["http"]] = false;
        await _h.ProbeRoundsAsync(3, TimeSpan.FromSeconds(1), probesPerRound: 1, "liveness probe run");

        await _h.UntilAsync(() => _h.Driver.StartCount(r.Id) == 2, "restart after liveness failure");
        Assert.Contains(_h.Store.ListEvents(), e => e.Type == EventTypes.Unhealthy && e.Message.StartsWith("liveness probe failed 3 times (HTTP 500)", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Readiness_Failing_TakesReplicaOutOfRoutesWithoutRestart()
    {
        await _h.Plane.ApplyAsync(App(Api(2)), "up", CancellationToken.None);
        await _h.AllReadyAsync("api", 2);
        var sick = _h.Of("api").First();
        _h.Prober.Healthy[sick.Ports["http"]] = false;
        await _h.ProbeRoundsAsync(3, TimeSpan.FromSeconds(1), probesPerRound: 2, "readiness probes run");

        await _h.UntilAsync(() => _h.Routes.Upstreams("api").SequenceEqual([_h.Of("api").Last().Id]), "only the healthy replica routed");
        Assert.Equal(ReplicaPhase.Running, _h.Of("api").First().Phase);
        Assert.Equal(1, _h.Driver.StartCount(sick.Id));
    }

    [Fact]
    public async Task Readiness_NeverPassing_ReasonCountsFailuresAndEventsOnEachTransition()
    {
        _h.Prober.Default = false;
        await _h.Plane.ApplyAsync(App(Api(1)), "up", CancellationToken.None);
        await _h.UntilAsync(() => _h.Of("api").SingleOrDefault()?.Reason == "readiness: HTTP 500, 1 in a row", "the first failure as the reason");
        var id = _h.Of("api").Single().Id;
        for (var i = 2; i <= 4; i++)
        {
            _h.Time.Advance(TimeSpan.FromSeconds(1));
            await _h.UntilAsync(() => _h.Of("api").Single().Reason == $"readiness: HTTP 500, {i} in a row", $"{i} failures in the reason");
        }

        Assert.Equal(ReplicaPhase.Running, _h.Of("api").Single().Phase);
        // One event when the failures reach the threshold (3), none for the 1st, 2nd and 4th.
        Assert.Equal(["not ready: readiness: HTTP 500, 3 in a row"], NotReadyEvents(id));

        _h.Prober.Default = true;
        _h.Time.Advance(TimeSpan.FromSeconds(1));
        await _h.AllReadyAsync("api", 1);
        Assert.Null(_h.Of("api").Single().Reason);
        Assert.Contains(_h.Store.ListEvents(), e => e.Type == EventTypes.Ready && e.Replica == id);

        _h.Prober.Default = false;
        await _h.ProbeRoundsAsync(3, TimeSpan.FromSeconds(1), probesPerRound: 1, "readiness probe after Ready");

        await _h.UntilAsync(() => _h.Of("api").Single().Reason == "readiness: HTTP 500, 3 in a row", "the reason once it left routing");
        Assert.Equal(["not ready: readiness: HTTP 500, 3 in a row", "not ready: readiness: HTTP 500, 3 in a row; removed from routing"], NotReadyEvents(id));
    }

    private List<string> NotReadyEvents(string replica) =>
        [.. _h.Store.ListEvents().Where(e => e.Type == EventTypes.NotReady && e.Replica == replica).Select(e => e.Message)];

    [Fact]
    public async Task DependsOn_Healthy_StartsOnlyAfterDependencyIsReady()
    {
        _h.Prober.Default = false;
        var db = Api(1) with { Name = "db" };
        var api = Api(1) with { DependsOn = [new Dependency("db", DependencyCondition.Healthy)] };
        await _h.Plane.ApplyAsync(App(api, db), "up", CancellationToken.None);
        await _h.UntilAsync(() => _h.Of("db").SingleOrDefault()?.Phase == ReplicaPhase.Running, "db running, not ready");
        await _h.UntilAsync(() => _h.Of("api").SingleOrDefault()?.Reason == "waiting for 'db' to be ready (healthy) (depends_on)", "api waiting");
        Assert.DoesNotContain(_h.Driver.Starts, s => s.Service == "api");

        _h.Prober.Default = true;
        _h.Time.Advance(TimeSpan.FromSeconds(1));
        await _h.AllReadyAsync("db", 1);
        await _h.AllReadyAsync("api", 1);
    }

    [Fact]
    public async Task Patch_NewImage_ReplacesReplicasNewFirstAndReportsComplete()
    {
        await _h.Plane.ApplyAsync(App(Api(2)), "up", CancellationToken.None);
        await _h.AllReadyAsync("api", 2);
        var old = _h.Of("api").Select(r => r.Id).ToList();
        var revision = await _h.Plane.PatchServiceAsync("api", new ServicePatch { Env = ImmutableSortedDictionary<string, string>.Empty.Add("V", "2") }, CancellationToken.None);
        await _h.UntilAsync(() => _h.Of("api").All(r => r.Revision == revision.Number && r.Phase == ReplicaPhase.Ready) && _h.Of("api").Count() == 2, "replaced by revision 2");
        Assert.Empty(old.Intersect(_h.Of("api").Select(r => r.Id)));
        Assert.All(_h.Driver.Starts.Where(s => s.Revision == revision.Number), s => Assert.Equal("2", s.Env["V"]));
        Assert.Equal(RolloutState.Complete, _h.Plane.GetRollout("api").State);

        // Scaling makes no revision and does not replace replicas.
        var replaced = _h.Of("api").Select(r => r.Id).ToList();
        await _h.Plane.ScaleAsync("api", 3, CancellationToken.None);
        await _h.AllReadyAsync("api", 3);
        Assert.Equal(replaced, replaced.Intersect(_h.Of("api").Select(r => r.Id)));
        Assert.All(_h.Of("api"), r => Assert.Equal(revision.Number, r.Revision));
    }

    [Fact]
    public async Task StopService_ThenStart_RunsNoneThenTheDesiredCount()
    {
        await _h.Plane.ApplyAsync(App(Api(2)), "up", CancellationToken.None);
        await _h.AllReadyAsync("api", 2);
        await _h.Plane.StopServiceAsync("api", CancellationToken.None);
        await _h.UntilAsync(() => !_h.Of("api").Any() && _h.Routes.Upstreams("api").Count == 0, "api stopped");
        await _h.Plane.StartServiceAsync("api", CancellationToken.None);
        await _h.AllReadyAsync("api", 2);
    }

    [Fact]
    public async Task RestartReplica_OnRequest_SameIdStartedAgain()
    {
        await _h.Plane.ApplyAsync(App(Api(1)), "up", CancellationToken.None);
        await _h.AllReadyAsync("api", 1);
        var r = _h.Of("api").Single();
        await _h.Plane.RestartReplicaAsync(r.Id, CancellationToken.None);
        await _h.UntilAsync(() => _h.Driver.StartCount(r.Id) == 2 && _h.Of("api").Single().Phase == ReplicaPhase.Ready, "restarted on request");
        Assert.Equal(r.Id, _h.Of("api").Single().Id);
        Assert.Equal(r.Ports, _h.Of("api").Single().Ports);
        Assert.Equal([r.Id], _h.Driver.Starts.Select(s => s.ReplicaId).Distinct());
    }

    [Fact]
    public async Task Start_DriverFails_BacksOffWithTheError()
    {
        _h.Driver.FailStartsWith = "no such file: ./api";
        await _h.Plane.ApplyAsync(App(Api(1)), "up", CancellationToken.None);
        await _h.UntilAsync(() => _h.Of("api").SingleOrDefault() is { Phase: ReplicaPhase.BackOff, ConsecutiveFailures: 2 }, "second failed start backing off");
        Assert.Contains(_h.Store.ListEvents(), e => e.Type == EventTypes.Failed && e.Message == "could not start: no such file: ./api");
    }

    [Fact]
    public async Task Down_StopsEverything()
    {
        await _h.Plane.ApplyAsync(App(Api(3)), "up", CancellationToken.None);
        await _h.AllReadyAsync("api", 3);
        await _h.Plane.DownAsync(CancellationToken.None);
        Assert.Empty(_h.Plane.Replicas);
        Assert.Empty(_h.Store.ListReplicas());
        Assert.Equal(3, _h.Driver.Calls.Count(c => c.StartsWith("stop ", StringComparison.Ordinal)));
        Assert.Empty(_h.Routes.Routes);
    }

    /// <summary>An apply that reaches a control plane while it goes down (a 'berth apply' racing 'berth down') is kept as the
    /// desired state but starts nothing: only a control plane started on a downed state is released by an apply.</summary>
    [Fact]
    public async Task Down_ThenAnApplyToTheSameControlPlane_StartsNothing()
    {
        await _h.Plane.ApplyAsync(App(Api(2)), "up", CancellationToken.None);
        await _h.AllReadyAsync("api", 2);
        await _h.Plane.DownAsync(CancellationToken.None);
        var starts = _h.Driver.Starts.Count;

        var applied = await _h.Plane.ApplyAsync(App(Api(2) with { Env = ImmutableSortedDictionary<string, string>.Empty.Add("V", "2") }), "apply", CancellationToken.None);
        await _h.SettleAsync();

        Assert.Equal(applied.Number, _h.Plane.Current!.Number);
        Assert.Empty(_h.Plane.Replicas);
        Assert.Equal(starts, _h.Driver.Starts.Count);
        Assert.True(File.Exists(Path.Combine(_h.Directory, "down")));
    }

    /// <summary>After a down, a new control plane on the same state starts nothing until an apply, and then only the
    /// applied spec: 'berth up' with a changed spec must not first start the revision the app was taken down on (it did,
    /// then rolled away from it, for 1-3 s running the old spec, e.g. the other network mode). Unchanged, the same spec
    /// comes back. A control plane that was killed (no down) still restores its replicas at once (RestartPlane tests).</summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Down_ThenANewControlPlane_StartsNothingUntilApplyThenOnlyTheAppliedSpec(bool changed)
    {
        await _h.Plane.ApplyAsync(App(Api(2)), "up", CancellationToken.None);
        await _h.AllReadyAsync("api", 2);
        await _h.Plane.DownAsync(CancellationToken.None);
        var starts = _h.Driver.Starts.Count;

        await _h.RestartPlaneAsync();
        await _h.SettleAsync();
        Assert.Empty(_h.Plane.Replicas);
        Assert.Equal(starts, _h.Driver.Starts.Count);

        var spec = changed ? Api(2) with { Env = ImmutableSortedDictionary<string, string>.Empty.Add("V", "2") } : Api(2);
        var applied = await _h.Plane.ApplyAsync(App(spec), "up", CancellationToken.None);
        await _h.AllReadyAsync("api", 2, applied.TemplateOf("api"));
        var since = _h.Driver.Starts.Skip(starts).ToList();
        Assert.Equal(2, since.Count);
        Assert.All(since, s => Assert.Equal(applied.TemplateOf("api"), s.Revision));
        Assert.False(File.Exists(Path.Combine(_h.Directory, "down")));
    }
}
