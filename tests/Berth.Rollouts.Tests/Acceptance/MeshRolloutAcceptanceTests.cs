namespace Berth.Rollouts.Tests.Acceptance;

/// <summary>The issue's acceptance points with real parts: replicas are real processes (the process driver and its
/// supervisor), probes are real HTTP, the store is a real SQLite file, and a bounded load goes through the real mesh
/// listener on loopback while the service rolls.</summary>
[Collection("real processes")]
public sealed class MeshRolloutAcceptanceTests : IAsyncLifetime
{
    /// <summary>An HTTP server (200 "ok $V") with a process per connection, and GET /slow takes 1.5 s.</summary>
    private const string SlowServer = """
        use IO::Socket::INET; $| = 1; $SIG{CHLD} = "IGNORE";
        my $s = IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => $ENV{PORT}, Listen => 128, ReuseAddr => 1) or die "listen $ENV{PORT}: $!";
        my $v = $ENV{V} // "1";
        while (1) {
          my $c = $s->accept or next;
          if (fork() == 0) {
            my $r = <$c>; while (my $l = <$c>) { last if $l =~ /^\r?\n$/ }
            select(undef, undef, undef, 1.5) if $r =~ m{^GET /slow};
            my $b = "ok $v";
            print $c "HTTP/1.1 200 OK\r\nContent-Length: " . length($b) . "\r\nConnection: close\r\n\r\n$b"; close $c; exit 0;
          }
          close $c;
        }
        """;

    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(90);

    /// <summary>Two clients, each as fast as answers come, bounded to 200 000 requests and 3 minutes (an idle machine sends 20 000 within a rollback's 8 s deadline, so a lower cap would end the load before the rollout does).</summary>
    private static readonly LoopbackLoadOptions UnpacedLoad = new() { Pace = TimeSpan.Zero, MaxRequests = 200_000, MaxTime = TimeSpan.FromMinutes(3) };
    private CountingSink _counts = null!;
    private MeshedPlane _m = null!;

    public async Task InitializeAsync() => _m = await MeshedPlane.StartAsync("berth-meshrollout-", mesh => _counts = new CountingSink(mesh));

    public Task DisposeAsync() => _m.DisposeAsync().AsTask();

    private static Service Web(int replicas, string version, string? sick = null, ImmutableArray<string>? command = null) => new()
    {
        Name = "web",
        Command = command ?? TestHttpServer.Command,
        Replicas = replicas,
        Endpoints = [new Endpoint { Name = "http" }],
        Env = sick is null
            ? ImmutableSortedDictionary<string, string>.Empty.Add("V", version)
            : ImmutableSortedDictionary<string, string>.Empty.Add("V", version).Add("SICK", sick),
        Readiness = new Probe { Kind = ProbeKind.Http, Path = "/healthz", Period = TimeSpan.FromMilliseconds(500) },
        Update = new UpdateStrategy { ProgressDeadline = TimeSpan.FromSeconds(8) },
        StopGracePeriod = TimeSpan.FromSeconds(2),
    };

    private static Application App(Service web) => new() { Name = "rollacc", Services = [web] };

    private IEnumerable<ReplicaRecord> Web() => _m.Plane.Replicas.Where(r => r.Service == "web");

    private Task UntilAsync(Func<bool> condition, string what) => Poll.UntilAsync(condition, Wait,
        $"{what}; have {string.Join(", ", _m.Plane.Replicas.Select(r => $"{r.Id}:{r.Revision}:{r.Phase}:{r.Reason}"))}; rollout {_m.Plane.GetRollout("web")}; events: {string.Join(" | ", _m.Store.ListEvents().TakeLast(12).Select(e => $"{e.Type} {e.Replica} {e.Message}"))}");

    private async Task<int> UpAsync(int replicas)
    {
        await _m.Plane.ApplyAsync(App(Web(replicas, "1")), "up", CancellationToken.None);
        await UntilAsync(() => Web().Count(r => r.Phase == ReplicaPhase.Ready) == replicas && _counts.Last("web") == replicas, $"{replicas} Ready and routed");
        return _m.Plane.StablePorts[("web", "http")];
    }

    /// <summary>Applies <paramref name="web"/> and waits until its rollout is complete: as many replicas as it asks, every one
    /// of its new template.</summary>
    private async Task ApplyUntilCompleteAsync(Service web)
    {
        var template = (await _m.Plane.ApplyAsync(App(web), "apply", CancellationToken.None)).TemplateOf("web");
        await UntilAsync(() => _m.Plane.GetRollout("web").State == RolloutState.Complete && Web().All(r => r.Revision == template) && Web().Count() == web.Replicas,
            "rollout complete");
    }

    [Fact]
    public async Task Apply_ChangedTemplateUnderLoad_CompletesWithZeroFailedRequestsAndReadyNeverBelowMinimum()
    {
        var port = await UpAsync(4);
        var mark = _counts.Mark();
        await using var load = LoopbackLoad.Start(port, UnpacedLoad);

        await ApplyUntilCompleteAsync(Web(4, "2"));
        await load.MoreAsync(50);
        var result = await load.StopAsync();

        result.AssertNoneFailedUncapped();
        Assert.Contains("ok 2", result.Bodies.Keys);
        var sizes = _counts.SizesSince(mark, "web");
        Assert.True(sizes.Min() >= 3, $"routed Ready replicas per update (replicas 4, maxUnavailable 1): {string.Join(",", sizes)}");
    }

    [Fact]
    public async Task Apply_ChangedTemplateWithSlowRequestsInFlight_ZeroFailedBecauseOldReplicasDrainBeforeStopping()
    {
        await _m.Plane.ApplyAsync(App(Web(2, "1", command: ["perl", "-e", SlowServer]) with { StopGracePeriod = TimeSpan.FromSeconds(10) }), "up", CancellationToken.None);
        await UntilAsync(() => Web().Count(r => r.Phase == ReplicaPhase.Ready) == 2 && _counts.Last("web") == 2, "2 Ready and routed");
        var port = _m.Plane.StablePorts[("web", "http")];
        await using var load = LoopbackLoad.Start(new Uri($"http://127.0.0.1:{port}/slow"), UnpacedLoad with { Clients = 6 });
        await load.MoreAsync(6);

        await ApplyUntilCompleteAsync(Web(2, "2", command: ["perl", "-e", SlowServer]) with { StopGracePeriod = TimeSpan.FromSeconds(10) });
        await load.MoreAsync(6);
        var result = await load.StopAsync();

        result.AssertNoneFailedUncapped();
        Assert.Contains("ok 1", result.Bodies.Keys);
        Assert.Contains("ok 2", result.Bodies.Keys);
    }

    [Fact]
    public async Task Apply_NewVersionFailsReadiness_RolledBackAutomaticallyWithZeroFailedRequests()
    {
        var port = await UpAsync(2);
        var good = Web().First().Revision;
        var ids = Web().Select(r => r.Id).Order().ToList();
        await using var load = LoopbackLoad.Start(port, UnpacedLoad);

        await _m.Plane.ApplyAsync(App(Web(2, "broken", sick: "/")), "apply", CancellationToken.None);
        await UntilAsync(() => _m.Plane.GetRollout("web").State == RolloutState.RolledBack && Web().Count() == 2 && Web().All(r => r.Revision == good && r.Phase == ReplicaPhase.Ready),
            "rolled back to the first revision");
        await load.MoreAsync(50);
        var result = await load.StopAsync();

        result.AssertNoneFailedUncapped();
        Assert.Equal(["ok 1"], result.Bodies.Keys);
        Assert.Equal(ids, Web().Select(r => r.Id).Order());
        var status = _m.Plane.GetRollout("web");
        var failed = _m.Store.ListEvents().Single(e => e.Type == RolloutEvents.Failed);
        Assert.Matches($"^rolled back to revision {good}: new replica web-[0-9a-f]{{5}} not ready within the progress deadline of 8s: readiness probe failing: HTTP 500", status.Message);
        Assert.Contains(failed.Replica!, status.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Apply_NewVersionCrashLoops_RolledBackAutomaticallyWithZeroFailedRequests()
    {
        var port = await UpAsync(2);
        var good = Web().First().Revision;
        await using var load = LoopbackLoad.Start(port, UnpacedLoad);

        await _m.Plane.ApplyAsync(App(Web(2, "crash", command: ["perl", "-e", "print qq(starting\\n); exit 3"])), "apply", CancellationToken.None);
        await UntilAsync(() => _m.Plane.GetRollout("web").State == RolloutState.RolledBack && Web().Count() == 2 && Web().All(r => r.Revision == good && r.Phase == ReplicaPhase.Ready),
            "rolled back to the first revision");
        await load.MoreAsync(50);
        var result = await load.StopAsync();

        result.AssertNoneFailedUncapped();
        Assert.Matches($"^rolled back to revision {good}: new replica web-[0-9a-f]{{5}} failed: exited with code 3", _m.Plane.GetRollout("web").Message);
        Assert.Equal($"rollback web to revision {good} (automatic)", _m.Store.ListRevisions()[0].Cause);
    }

    /// <summary>Forwards to the mesh and records how many upstreams each update of each service had.</summary>
    private sealed class CountingSink(IRouteSink next) : IRouteSink, IInFlightSource
    {
        public int InFlight(string service, string replica) => next is IInFlightSource source ? source.InFlight(service, replica) : 0;

        private readonly ConcurrentQueue<(string Service, int Count)> _updates = new();

        public int Mark() => _updates.Count;

        public int Last(string service) => _updates.LastOrDefault(u => u.Service == service).Count;

        public List<int> SizesSince(int mark, string service) => [.. _updates.Skip(mark).Where(u => u.Service == service).Select(u => u.Count)];

        public async Task UpdateAsync(ServiceRoute route, CancellationToken cancellationToken)
        {
            await next.UpdateAsync(route, cancellationToken);
            _updates.Enqueue((route.Service, route.Upstreams.Length));
        }

        public Task RemoveAsync(string service, string endpoint, CancellationToken cancellationToken) => next.RemoveAsync(service, endpoint, cancellationToken);
    }
}
