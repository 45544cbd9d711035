using System.Collections.Immutable;
using Berth.Core.Contracts;
using Berth.Core.Model;
using Berth.Orchestration.Controllers;
using Berth.Orchestration.State;
using Berth.Orchestration.Tests.Fakes;
using Berth.Testing;
using Microsoft.Extensions.Time.Testing;

namespace Berth.Orchestration.Tests.Controllers;

/// <summary>The controller logic over an in-memory driver and a fake clock; the real-process acceptance tests are in Berth.EndToEnd.Tests.</summary>
public sealed class ControlPlaneTests : IAsyncLifetime
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(20);
    private readonly string _dir = Directory.CreateTempSubdirectory("berth-cp-").FullName;
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
    private readonly FakeDriver _driver;
    private readonly RecordingRouteSink _routes;
    private readonly ScriptedProber _prober = new();
    private readonly ConsoleLogger<ControlPlane> _log = new();
    private StateStore _store = null!;
    private ControlPlane _plane = null!;

    public ControlPlaneTests()
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

    private static Service Api(int replicas = 2) => new()
    {
        Name = "api", Command = ["api"], Replicas = replicas,
        Endpoints = [new Endpoint { Name = "http" }],
        Readiness = new Probe { Kind = ProbeKind.Http, Path = "/healthz", Period = TimeSpan.FromSeconds(1) },
    };

    private static Application App(params Service[] services) => new() { Name = "shop", Services = [.. services] };

    private IEnumerable<ReplicaRecord> Of(string service) => _plane.Replicas.Where(r => r.Service == service);

    private async Task UntilAsync(Func<bool> condition, string what)
    {
        try
        {
            await Poll.UntilAsync(condition, Wait, what);
        }
        catch (TimeoutException e)
        {
            throw new TimeoutException($"{e.Message}\nhave: {string.Join(", ", _plane.Replicas.Select(r => $"{r.Id}:{r.Phase}:{r.Reason}"))}\nevents:\n{string.Join("\n", _store.ListEvents().Select(x => $"{x.Type} {x.Replica}: {x.Message}"))}\nlog:\n{string.Join("\n", _log.Lines)}", e);
        }
    }

    private Task AllReadyAsync(string service, int n, bool routed = true) =>
        UntilAsync(() => Of(service).Count(r => r.Phase == ReplicaPhase.Ready) == n && Of(service).Count() == n && (!routed || _routes.Upstreams(service).Count == n),
            $"{n} Ready {service} replicas{(routed ? " in routes" : "")}");

    [Fact]
    public async Task Apply_TwoReplicas_BothReadyRoutedWithDiscoveryEnv()
    {
        var web = new Service { Name = "web", Command = ["web"], Endpoints = [new Endpoint { Name = "http", Port = 18080 }] };
        var revision = await _plane.ApplyAsync(App(Api(), web), "up", CancellationToken.None);
        await AllReadyAsync("api", 2);
        await AllReadyAsync("web", 1);

        var route = _routes.Routes[("api", "http")];
        var stable = _plane.StablePorts[("api", "http")];
        Assert.Equal(stable, route.StablePort);
        Assert.Equal(18080, _routes.Routes[("web", "http")].StablePort);
        var spec = _driver.Starts.First(s => s.Service == "api");
        Assert.Equal($"http://127.0.0.1:{stable}", spec.Env["services__api__http__0"]);
        Assert.Equal("http://127.0.0.1:18080", spec.Env["services__web__http__0"]);
        Assert.Equal(spec.Ports["http"].ToString(System.Globalization.CultureInfo.InvariantCulture), spec.Env["PORT"]);
        Assert.Equal($"http://127.0.0.1:{spec.Ports["http"]}", spec.Env["ASPNETCORE_URLS"]);
        Assert.Equal(revision.Number.ToString(System.Globalization.CultureInfo.InvariantCulture), spec.Env["BERTH_REVISION"]);
        Assert.Equal(spec.ReplicaId, spec.Env["BERTH_REPLICA"]);
        Assert.Equal("shop", spec.Labels["berth.app"]);
        Assert.NotEqual(stable, spec.Ports["http"]);
        var replicaPorts = _driver.Starts.Where(s => s.Service == "api").Select(s => s.Ports["http"]).ToList();
        Assert.Equal(replicaPorts.Count, replicaPorts.Distinct().Count());
    }

    [Fact]
    public async Task Exit_CrashLoop_RestartsAtOnceThenBacksOffOneTwoFourSeconds()
    {
        await _plane.ApplyAsync(App(Api(1)), "up", CancellationToken.None);
        await AllReadyAsync("api", 1);
        var id = Of("api").Single().Id;

        // First crash: restarted at once (the kubelet's first restart has no delay).
        _driver.Exit(id);
        await UntilAsync(() => _driver.StartCount(id) == 2 && Of("api").Single().Phase == ReplicaPhase.Ready, "immediate restart after the first crash");
        Assert.Empty(_routes.Upstreams("api").Except([id]));

        foreach (var seconds in new[] { 1, 2, 4 })
        {
            var starts = _driver.StartCount(id);
            _driver.Exit(id);
            await UntilAsync(() => Of("api").Single() is { Phase: ReplicaPhase.BackOff, NextRetryAt: not null }, "back-off after a crash");
            var r = Of("api").Single();
            Assert.Equal(_time.GetUtcNow().AddSeconds(seconds), r.NextRetryAt);
            Assert.Empty(_routes.Upstreams("api"));
            _time.Advance(TimeSpan.FromSeconds(seconds) - TimeSpan.FromMilliseconds(10));
            await _plane.SettleAsync(CancellationToken.None);
            Assert.Equal(starts, _driver.StartCount(id));
            _time.Advance(TimeSpan.FromMilliseconds(10));
            await UntilAsync(() => _driver.StartCount(id) == starts + 1, $"restart after {seconds}s of back-off");
            await UntilAsync(() => Of("api").Single().Phase == ReplicaPhase.Ready, "Ready again");
        }

        Assert.Equal(4, Of("api").Single().RestartCount);
        var types = _store.ListEvents().Where(e => e.Replica == id).Select(e => e.Type).ToList();
        Assert.Equal(3, types.Count(t => t == EventTypes.BackOff));
        Assert.Equal(4, types.Count(t => t == EventTypes.Restarted));
    }

    [Fact]
    public async Task Exit_OnFailureExitZero_CompletesAndFreesItsCapacity()
    {
        var job = new Service { Name = "job", Command = ["job"], Restart = new RestartPolicy { Mode = RestartMode.OnFailure } };
        await _plane.ApplyAsync(App(job), "up", CancellationToken.None);
        await UntilAsync(() => Of("job").SingleOrDefault()?.Phase == ReplicaPhase.Ready, "job running");
        _driver.Exit(Of("job").Single().Id, code: 0, signal: null);
        await UntilAsync(() => Of("job").Single().Phase == ReplicaPhase.Completed, "job completed");
        Assert.Equal("exited with code 0; restart: on-failure", Of("job").Single().Reason);
        Assert.Equal(0, _plane.Nodes.Single().Replicas);
    }

    [Fact]
    public async Task Scale_Down_RemovesFromRoutesBeforeStopping()
    {
        await _plane.ApplyAsync(App(Api(3)), "up", CancellationToken.None);
        await AllReadyAsync("api", 3);
        var revision = await _plane.ScaleAsync("api", 1, CancellationToken.None);
        await AllReadyAsync("api", 1);
        var kept = Of("api").Single().Id;

        var calls = _driver.Calls.ToList();
        foreach (var stop in calls.Where(c => c.StartsWith("stop ", StringComparison.Ordinal)))
        {
            var victim = stop["stop ".Length..];
            Assert.NotEqual(kept, victim);
            var stopAt = calls.IndexOf(stop);
            var lastRouteWithVictim = calls.FindLastIndex(c => c.StartsWith("route api.http", StringComparison.Ordinal) && c.Contains(victim, StringComparison.Ordinal));
            var firstRouteWithout = calls.FindIndex(lastRouteWithVictim + 1, c => c.StartsWith("route api.http", StringComparison.Ordinal));
            Assert.True(firstRouteWithout >= 0 && firstRouteWithout < stopAt, $"{victim} must leave routing before it is stopped: {string.Join(" | ", calls)}");
        }

        Assert.Equal("scale api=1", revision.Cause);
        Assert.Equal(2, _store.ListRevisions().Count);
    }

    [Fact]
    public async Task Scale_UnknownServiceOrNegative_ClearErrors()
    {
        await _plane.ApplyAsync(App(Api(1)), "up", CancellationToken.None);
        var unknown = await Assert.ThrowsAsync<ControlPlaneException>(() => _plane.ScaleAsync("nope", 2, CancellationToken.None));
        Assert.Equal("no service 'nope' in app 'shop'; known: api", unknown.Message);
        Assert.Equal(ControlPlaneError.NotFound, unknown.Error);
        var negative = await Assert.ThrowsAsync<ControlPlaneException>(() => _plane.ScaleAsync("api", -1, CancellationToken.None));
        Assert.Equal("replicas must be 0 or more, got -1", negative.Message);
        var huge = await Assert.ThrowsAsync<ControlPlaneException>(() => _plane.ScaleAsync("api", 1_000_000, CancellationToken.None));
        Assert.Equal("replicas must be at most 10000 on one machine, got 1000000; run more on Kubernetes (berth k8s generate)", huge.Message);
        Assert.Single(_store.ListRevisions());
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
        await _plane.ApplyAsync(app, "up", CancellationToken.None);
        await UntilAsync(() => Of("small").Count() == 10 && Of("big").All(r => r.Phase == ReplicaPhase.Ready)
            && Of("small").Count(r => r.Phase == ReplicaPhase.Pending && r.Reason?.StartsWith("0/2 nodes fit: 2 insufficient cpu", StringComparison.Ordinal) == true) == 6,
            "big running, 4 small running, 6 small Pending for cpu");
        Assert.Equal(4, Of("small").Count(r => r.Phase == ReplicaPhase.Ready));
        Assert.Contains(_store.ListEvents(), e => e.Type == EventTypes.Pending && e.Service == "small");

        await _plane.ScaleAsync("big", 0, CancellationToken.None);
        await AllReadyAsync("small", 10, routed: false);
        Assert.Empty(Of("big"));
    }

    [Fact]
    public async Task Restart_ControlPlane_AdoptsRunningReplicasWithoutRestartingAndKeepsHistory()
    {
        await _plane.ApplyAsync(App(Api(3)), "up", CancellationToken.None);
        await AllReadyAsync("api", 3);
        await _plane.ScaleAsync("api", 2, CancellationToken.None);
        await AllReadyAsync("api", 2);
        var before = Of("api").Select(r => r.Id).ToList();
        var events = _store.ListEvents().Count;
        var revisions = _store.ListRevisions().Count;

        await _plane.DisposeAsync();
        _plane = NewPlane();
        await _plane.StartAsync(CancellationToken.None);
        await AllReadyAsync("api", 2);

        Assert.Equal(before, Of("api").Select(r => r.Id));
        Assert.All(before, id => Assert.Equal(1, _driver.StartCount(id)));
        Assert.Equal(revisions, _store.ListRevisions().Count);
        var after = _store.ListEvents();
        Assert.True(after.Count >= events + 2);
        Assert.Equal(2, after.Skip(events).Count(e => e.Type == EventTypes.Adopted));

        // The adopted replicas are watched: a crash after adoption is still handled.
        _driver.Exit(before[0]);
        await UntilAsync(() => _driver.StartCount(before[0]) == 2, "adopted replica restarted after a crash");
    }

    [Fact]
    public async Task Restart_ControlPlaneWhileReplicaDied_RestartsIt()
    {
        await _plane.ApplyAsync(App(Api(1)), "up", CancellationToken.None);
        await AllReadyAsync("api", 1);
        var id = Of("api").Single().Id;
        await _plane.DisposeAsync();
        _driver.Exit(id);

        _plane = NewPlane();
        await _plane.StartAsync(CancellationToken.None);
        await UntilAsync(() => _driver.StartCount(id) == 2 && Of("api").Single().Phase == ReplicaPhase.Ready, "replica that died while the control plane was down restarted");
    }

    [Fact]
    public async Task Liveness_FailsThreeTimes_ReplicaRestarted()
    {
        var api = Api(1) with { Readiness = null, Liveness = new Probe { Kind = ProbeKind.Http, Period = TimeSpan.FromSeconds(1), FailureThreshold = 3 } };
        await _plane.ApplyAsync(App(api), "up", CancellationToken.None);
        await AllReadyAsync("api", 1);
        var r = Of("api").Single();
        _prober.Healthy[r.Ports["http"]] = false;
        for (var i = 0; i < 3; i++)
        {
            var runs = _prober.Runs;
            _time.Advance(TimeSpan.FromSeconds(1));
            await UntilAsync(() => _prober.Runs > runs, "liveness probe run");
        }

        await UntilAsync(() => _driver.StartCount(r.Id) == 2, "restart after liveness failure");
        Assert.Contains(_store.ListEvents(), e => e.Type == EventTypes.Unhealthy && e.Message.StartsWith("liveness probe failed 3 times (HTTP 500)", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Readiness_Failing_TakesReplicaOutOfRoutesWithoutRestart()
    {
        await _plane.ApplyAsync(App(Api(2)), "up", CancellationToken.None);
        await AllReadyAsync("api", 2);
        var sick = Of("api").First();
        _prober.Healthy[sick.Ports["http"]] = false;
        for (var i = 0; i < 3; i++)
        {
            var runs = _prober.Runs;
            _time.Advance(TimeSpan.FromSeconds(1));
            await UntilAsync(() => _prober.Runs >= runs + 2, "readiness probes run");
        }

        await UntilAsync(() => _routes.Upstreams("api").SequenceEqual([Of("api").Last().Id]), "only the healthy replica routed");
        Assert.Equal(ReplicaPhase.Running, Of("api").First().Phase);
        Assert.Equal(1, _driver.StartCount(sick.Id));
    }

    [Fact]
    public async Task DependsOn_Healthy_StartsOnlyAfterDependencyIsReady()
    {
        _prober.Default = false;
        var db = Api(1) with { Name = "db" };
        var api = Api(1) with { DependsOn = [new Dependency("db", DependencyCondition.Healthy)] };
        await _plane.ApplyAsync(App(api, db), "up", CancellationToken.None);
        await UntilAsync(() => Of("db").SingleOrDefault()?.Phase == ReplicaPhase.Running, "db running, not ready");
        await UntilAsync(() => Of("api").SingleOrDefault()?.Reason == "waiting for 'db' to be ready (healthy) (depends_on)", "api waiting");
        Assert.DoesNotContain(_driver.Starts, s => s.Service == "api");

        _prober.Default = true;
        _time.Advance(TimeSpan.FromSeconds(1));
        await AllReadyAsync("db", 1);
        await AllReadyAsync("api", 1);
    }

    [Fact]
    public async Task Patch_NewImage_ReplacesReplicasNewFirstAndReportsComplete()
    {
        await _plane.ApplyAsync(App(Api(2)), "up", CancellationToken.None);
        await AllReadyAsync("api", 2);
        var old = Of("api").Select(r => r.Id).ToList();
        var revision = await _plane.PatchServiceAsync("api", new ServicePatch { Env = ImmutableSortedDictionary<string, string>.Empty.Add("V", "2") }, CancellationToken.None);
        await UntilAsync(() => Of("api").All(r => r.Revision == revision.Number && r.Phase == ReplicaPhase.Ready) && Of("api").Count() == 2, "replaced by revision 2");
        Assert.Empty(old.Intersect(Of("api").Select(r => r.Id)));
        Assert.All(_driver.Starts.Where(s => s.Revision == revision.Number), s => Assert.Equal("2", s.Env["V"]));
        Assert.Equal(RolloutState.Complete, _plane.GetRollout("api").State);

        // Scaling is a new revision too, but it does not replace replicas.
        var replaced = Of("api").Select(r => r.Id).ToList();
        await _plane.ScaleAsync("api", 3, CancellationToken.None);
        await AllReadyAsync("api", 3);
        Assert.Equal(replaced, replaced.Intersect(Of("api").Select(r => r.Id)));
        Assert.All(Of("api"), r => Assert.Equal(revision.Number, r.Revision));
    }

    [Fact]
    public async Task StopService_ThenStart_RunsNoneThenTheDesiredCount()
    {
        await _plane.ApplyAsync(App(Api(2)), "up", CancellationToken.None);
        await AllReadyAsync("api", 2);
        await _plane.StopServiceAsync("api", CancellationToken.None);
        await UntilAsync(() => !Of("api").Any() && _routes.Upstreams("api").Count == 0, "api stopped");
        await _plane.StartServiceAsync("api", CancellationToken.None);
        await AllReadyAsync("api", 2);
    }

    [Fact]
    public async Task RestartReplica_OnRequest_SameIdStartedAgain()
    {
        await _plane.ApplyAsync(App(Api(1)), "up", CancellationToken.None);
        await AllReadyAsync("api", 1);
        var r = Of("api").Single();
        await _plane.RestartReplicaAsync(r.Id, CancellationToken.None);
        await UntilAsync(() => _driver.StartCount(r.Id) == 2 && Of("api").Single().Phase == ReplicaPhase.Ready, "restarted on request");
        Assert.Equal(r.Id, Of("api").Single().Id);
        Assert.Equal(r.Ports, Of("api").Single().Ports);
        Assert.Equal([r.Id], _driver.Starts.Select(s => s.ReplicaId).Distinct());
    }

    [Fact]
    public async Task Start_DriverFails_BacksOffWithTheError()
    {
        _driver.FailStartsWith = "no such file: ./api";
        await _plane.ApplyAsync(App(Api(1)), "up", CancellationToken.None);
        await UntilAsync(() => Of("api").SingleOrDefault() is { Phase: ReplicaPhase.BackOff, ConsecutiveFailures: 2 }, "second failed start backing off");
        Assert.Contains(_store.ListEvents(), e => e.Type == EventTypes.Failed && e.Message == "could not start: no such file: ./api");
    }

    [Fact]
    public async Task Down_StopsEverything()
    {
        await _plane.ApplyAsync(App(Api(3)), "up", CancellationToken.None);
        await AllReadyAsync("api", 3);
        await _plane.DownAsync(CancellationToken.None);
        Assert.Empty(_plane.Replicas);
        Assert.Empty(_store.ListReplicas());
        Assert.Equal(3, _driver.Calls.Count(c => c.StartsWith("stop ", StringComparison.Ordinal)));
        Assert.Empty(_routes.Routes);
    }
}
