
namespace Berth.Mesh.Tests.Functional;

/// <summary>Ejection, breaking, retries and budgets through a real listener with real upstreams; mesh time is a FakeTimeProvider where the test moves it.</summary>
[Collection(SerialCollection.Name)]
public sealed class ResilienceTests
{
    [Fact]
    public async Task Proxy_ReplicaReturning500_EjectedAtThresholdAndBackAfterEjectionTime()
    {
        await using var bad = await TestUpstream.StartAsync("bad");
        await using var b = await TestUpstream.StartAsync("b");
        await using var c = await TestUpstream.StartAsync("c");
        bad.Answer(500);
        var time = new FakeTimeProvider();
        var policy = MeshTest.Bare() with { OutlierDetection = OutlierDetectionPolicy.Default };
        await using var mesh = await MeshTest.ServeAsync(time, policy, bad.Upstream(), b.Upstream(), c.Upstream());
        using var client = mesh.Client();

        for (var i = 0; i < 60; i++)
        {
            await MeshTest.GetAsync(client);
        }

        Assert.Equal(OutlierDetectionPolicy.Default.Consecutive5xx, bad.Requests);

        time.Advance(TimeSpan.FromSeconds(29));
        for (var i = 0; i < 9; i++)
        {
            await MeshTest.GetAsync(client);
        }

        Assert.Equal(5, bad.Requests);

        time.Advance(TimeSpan.FromSeconds(1));
        bad.Answer(200);
        for (var i = 0; i < 9; i++)
        {
            await MeshTest.GetAsync(client);
        }

        Assert.Equal(8, bad.Requests);

        // Ejected a second time: twice the base ejection time (as Envoy).
        bad.Answer(500);
        for (var i = 0; i < 60; i++)
        {
            await MeshTest.GetAsync(client);
        }

        Assert.Equal(13, bad.Requests);
        time.Advance(TimeSpan.FromSeconds(59));
        for (var i = 0; i < 9; i++)
        {
            await MeshTest.GetAsync(client);
        }

        Assert.Equal(13, bad.Requests);
        time.Advance(TimeSpan.FromSeconds(1));
        for (var i = 0; i < 9; i++)
        {
            await MeshTest.GetAsync(client);
        }

        Assert.True(bad.Requests > 13, $"expected the replica back after 60s, it had {bad.Requests} requests");
    }

    [Fact]
    public async Task Proxy_EveryReplicaFailing_EjectsAtMostHalfAndKeepsServing()
    {
        await using var a = await TestUpstream.StartAsync("a");
        await using var b = await TestUpstream.StartAsync("b");
        await using var c = await TestUpstream.StartAsync("c");
        a.Answer(503);
        b.Answer(503);
        c.Answer(503);
        await using var mesh = await MeshTest.ServeAsync(new FakeTimeProvider(), MeshTest.Bare() with { OutlierDetection = OutlierDetectionPolicy.Default }, a.Upstream(), b.Upstream(), c.Upstream());
        using var client = mesh.Client();

        for (var i = 0; i < 60; i++)
        {
            await MeshTest.GetAsync(client);
        }

        var routes = await mesh.Host.RoutesAsync(CancellationToken.None);
        // 0 of 3 ejected (0% < 50%) → eject; 1 of 3 (33% < 50%) → eject; 2 of 3 (67%) → stop; the last always stays.
        Assert.Equal(2, routes.Single().Upstreams.Count(u => u.Ejected));
    }

    [Fact]
    public async Task Proxy_ServiceFullyFailing_BreakerOpensFailsFastAndRecoversThroughHalfOpen()
    {
        await using var a = await TestUpstream.StartAsync("a");
        await using var b = await TestUpstream.StartAsync("b");
        a.Answer(500);
        b.Answer(500);
        var time = new FakeTimeProvider();
        var policy = MeshTest.Bare() with { CircuitBreaker = CircuitBreakerPolicy.Default };
        await using var mesh = await MeshTest.ServeAsync(time, policy, a.Upstream(), b.Upstream());
        using var client = mesh.Client();

        for (var i = 0; i < CircuitBreakerPolicy.Default.ConsecutiveFailures; i++)
        {
            Assert.Equal(500, (await MeshTest.GetAsync(client)).Status);
        }

        var upstreamCalls = a.Requests + b.Requests;
        var (status, _, response) = await MeshTest.GetAsync(client);
        Assert.Equal(503, status);
        Assert.Equal("service/api", response.Headers.GetValues("x-berth-circuit-open").Single());

        // Fails fast: the median round trip of a rejected request over real loopback HTTP stays under 1 ms.
        var samples = new List<double>();
        for (var i = 0; i < 101; i++)
        {
            var sw = Stopwatch.StartNew();
            using var r = await client.GetAsync("/");
            sw.Stop();
            Assert.Equal(503, (int)r.StatusCode);
            samples.Add(sw.Elapsed.TotalMilliseconds);
        }

        samples.Sort();
        Assert.True(samples[50] < 1.0, $"median fail-fast round trip {samples[50]:0.###} ms, expected < 1 ms");
        Assert.Equal(upstreamCalls, a.Requests + b.Requests);

        // Half-open after the break: a failing probe re-opens it…
        time.Advance(CircuitBreakerPolicy.Default.BreakDuration);
        Assert.Equal(500, (await MeshTest.GetAsync(client)).Status);
        Assert.Equal(503, (await MeshTest.GetAsync(client)).Status);
        Assert.Equal(upstreamCalls + 1, a.Requests + b.Requests);

        // …a succeeding probe closes it.
        a.Answer(200);
        b.Answer(200);
        time.Advance(CircuitBreakerPolicy.Default.BreakDuration);
        Assert.Equal(200, (await MeshTest.GetAsync(client)).Status);
        for (var i = 0; i < 10; i++)
        {
            Assert.Equal(200, (await MeshTest.GetAsync(client)).Status);
        }
    }

    [Fact]
    public async Task Proxy_OneReplicaFailing_ItsEndpointBreakerOpensWhileTheServiceStaysClosed()
    {
        await using var bad = await TestUpstream.StartAsync("bad");
        await using var good = await TestUpstream.StartAsync("good");
        bad.Answer(500);
        var time = new FakeTimeProvider();
        await using var mesh = await MeshTest.ServeAsync(time, MeshTest.Bare() with { CircuitBreaker = CircuitBreakerPolicy.Default }, bad.Upstream(), good.Upstream());
        using var client = mesh.Client();

        for (var i = 0; i < 40; i++)
        {
            await MeshTest.GetAsync(client);
        }

        var route = (await mesh.Host.RoutesAsync(CancellationToken.None)).Single();
        Assert.Equal(5, bad.Requests);
        Assert.Equal("Open", route.Upstreams.Single(u => u.Replica == "bad").Circuit);
        Assert.Equal("Closed", route.Upstreams.Single(u => u.Replica == "good").Circuit);
        Assert.Equal("Closed", route.Circuit);
    }

    [Fact]
    public async Task Proxy_HalfOpen_LetsOnlyTheConfiguredProbesThrough()
    {
        await using var a = await TestUpstream.StartAsync("a");
        a.Answer(500);
        var time = new FakeTimeProvider();
        await using var mesh = await MeshTest.ServeAsync(time, MeshTest.Bare() with { CircuitBreaker = CircuitBreakerPolicy.Default }, a.Upstream());
        using var client = mesh.Client();
        for (var i = 0; i < 5; i++)
        {
            await MeshTest.GetAsync(client);
        }

        var release = a.HoldAnswer("ok");
        time.Advance(CircuitBreakerPolicy.Default.BreakDuration);
        var probe = client.GetAsync("/");
        await Poll.UntilAsync(() => a.Requests == 6, TimeSpan.FromSeconds(10), "the half-open probe to reach the upstream");

        var (status, _, response) = await MeshTest.GetAsync(client);
        release.SetResult();

        Assert.Equal(503, status);
        Assert.Equal("service/api", response.Headers.GetValues("x-berth-circuit-open").Single());
        Assert.Equal(200, (int)(await probe).StatusCode);
        Assert.Equal(200, (await MeshTest.GetAsync(client)).Status);
    }

    [Fact]
    public async Task Proxy_EveryAttemptFailing_RetryBudgetBoundsUpstreamAttempts()
    {
        await using var a = await TestUpstream.StartAsync("a");
        await using var b = await TestUpstream.StartAsync("b");
        a.Answer(503);
        b.Answer(503);
        var retries = new RetryPolicy { Attempts = 2, BackoffBase = TimeSpan.FromMilliseconds(1), BackoffMax = TimeSpan.FromMilliseconds(2) };
        await using var mesh = await MeshTest.ServeAsync(MeshTest.Bare() with { Retries = retries }, a.Upstream(), b.Upstream());
        using var client = mesh.Client();

        const int requests = 1000;
        var sw = Stopwatch.StartNew();
        var next = 0;
        var statuses = new int[requests];
        await Task.WhenAll(Enumerable.Range(0, 8).Select(async _ =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next) - 1) < requests && sw.Elapsed < TimeSpan.FromSeconds(60))
            {
                using var r = await client.GetAsync("/");
                statuses[i] = (int)r.StatusCode;
            }
        }));
        sw.Stop();

        var sent = statuses.Count(s => s != 0);
        var attempts = a.Requests + b.Requests;
        var bound = (1.2 * sent) + (retries.BudgetMinPerSecond * (sw.Elapsed.TotalSeconds + 1));
        Assert.All(statuses.Where(s => s != 0), s => Assert.Equal(503, s));
        Assert.True(attempts > sent, $"retries should have happened: {attempts} attempts for {sent} requests");
        Assert.True(attempts <= bound, $"{attempts} upstream attempts for {sent} requests in {sw.Elapsed.TotalSeconds:0.0}s exceeds the budget bound {bound:0}");
    }

    [Fact]
    public async Task Proxy_OneReplicaRefusingConnections_GetsRetriedOnAnotherWithoutClientErrors()
    {
        await using var a = await TestUpstream.StartAsync("a");
        var dead = new Berth.Core.Routing.Upstream("dead", "127.0.0.1", Ports.Free(), 1);
        await using var mesh = await MeshTest.ServeAsync(MeshPolicy.Default with { LoadBalancing = LoadBalancing.RoundRobin }, a.Upstream(), dead);
        using var client = mesh.Client();

        for (var i = 0; i < 40; i++)
        {
            var (status, body, _) = await MeshTest.GetAsync(client);
            Assert.Equal(200, status);
            Assert.Equal("a", body);
        }

        var routes = await mesh.Host.RoutesAsync(CancellationToken.None);
        Assert.True(routes.Single().Upstreams.Single(u => u.Replica == "dead").Ejected, "the refusing replica should be ejected");
    }

    [Fact]
    public async Task Proxy_OneReplicaAnswering503_RetryGoesToTheOtherReplica()
    {
        await using var bad = await TestUpstream.StartAsync("bad");
        await using var good = await TestUpstream.StartAsync("good");
        bad.Answer(503);
        var policy = MeshTest.Bare(LoadBalancing.Random) with { Retries = new RetryPolicy { Attempts = 1, BackoffBase = TimeSpan.FromMilliseconds(1), BudgetMinPerSecond = 1000 } };
        await using var mesh = await MeshTest.ServeAsync(policy, bad.Upstream(), good.Upstream());
        using var client = mesh.Client();

        for (var i = 0; i < 40; i++)
        {
            var (status, body, _) = await MeshTest.GetAsync(client);
            Assert.Equal(200, status);
            Assert.Equal("good", body);
        }

        Assert.InRange(bad.Requests, 1, 40);
    }

    [Fact]
    public async Task Proxy_PostToRefusingReplica_RetriedOnAnotherAsItNeverArrived()
    {
        await using var a = await TestUpstream.StartAsync("a");
        var bodies = new List<string>();
        a.Handler = async context =>
        {
            using var reader = new StreamReader(context.Request.Body);
            bodies.Add(await reader.ReadToEndAsync());
        };
        var dead = new Berth.Core.Routing.Upstream("dead", "127.0.0.1", Ports.Free(), 1);
        var policy = MeshTest.Bare(LoadBalancing.RoundRobin) with { Retries = new RetryPolicy() };
        await using var mesh = await MeshTest.ServeAsync(policy, dead, a.Upstream());
        using var client = mesh.Client();

        for (var i = 0; i < 6; i++)
        {
            using var r = await client.PostAsync("/", new StringContent($"order-{i}"));
            Assert.Equal(200, (int)r.StatusCode);
        }

        Assert.Equal(Enumerable.Range(0, 6).Select(i => $"order-{i}"), bodies);
    }

    [Fact]
    public async Task Proxy_PostFailing_NotRetriedUnlessSpecOptsIn()
    {
        await using var a = await TestUpstream.StartAsync("a");
        a.Answer(503);
        var policy = MeshTest.Bare() with { Retries = new RetryPolicy { BackoffBase = TimeSpan.FromMilliseconds(1) } };
        await using var mesh = await MeshTest.ServeAsync(policy, a.Upstream());
        using var client = mesh.Client();

        using (var r = await client.PostAsync("/", new StringContent("x")))
        {
            Assert.Equal(503, (int)r.StatusCode);
        }

        Assert.Equal(1, a.Requests);

        await mesh.Host.UpdateAsync(MeshTest.Route(mesh.Port, policy with { Retries = policy.Retries with { NonIdempotent = true } }, a.Upstream()), CancellationToken.None);
        var bodies = new List<string>();
        a.Handler = async context =>
        {
            using var reader = new StreamReader(context.Request.Body);
            bodies.Add(await reader.ReadToEndAsync());
            context.Response.StatusCode = bodies.Count < 3 ? 503 : 200;
        };
        using (var r = await client.PostAsync("/", new StringContent("order-17")))
        {
            Assert.Equal(200, (int)r.StatusCode);
        }

        Assert.Equal(["order-17", "order-17", "order-17"], bodies);
    }

    [Fact]
    public async Task Proxy_PerTryTimeout_RetriesOnAnotherEndpointWithinTotal()
    {
        await using var slow = await TestUpstream.StartAsync("slow");
        await using var fast = await TestUpstream.StartAsync("fast");
        var hang = slow.HoldAnswer("slow");
        var policy = MeshTest.Bare() with
        {
            PerTryTimeout = TimeSpan.FromMilliseconds(300),
            Retries = new RetryPolicy { BackoffBase = TimeSpan.FromMilliseconds(1) },
        };
        await using var mesh = await MeshTest.ServeAsync(policy, slow.Upstream(), fast.Upstream());
        using var client = mesh.Client();

        for (var i = 0; i < 4; i++)
        {
            var (status, body, _) = await MeshTest.GetAsync(client);
            Assert.Equal(200, status);
            Assert.Equal("fast", body);
        }

        Assert.True(slow.Requests >= 1);
        hang.SetResult();
    }

    [Fact]
    public async Task Proxy_TotalTimeoutExceeded_Answers504()
    {
        await using var slow = await TestUpstream.StartAsync("slow");
        slow.Handler = context => Task.Delay(TimeSpan.FromSeconds(30), context.RequestAborted);
        await using var mesh = await MeshTest.ServeAsync(MeshTest.Bare() with { Timeout = TimeSpan.FromMilliseconds(300) }, slow.Upstream());
        using var client = mesh.Client();

        var (status, _, response) = await MeshTest.GetAsync(client);

        Assert.Equal(504, status);
        Assert.Equal("upstream-timeout", response.Headers.GetValues("x-berth-error").Single());
    }
}
