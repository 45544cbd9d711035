namespace Berth.Mesh.Tests.Functional;

/// <summary>The mesh's side of draining and start-up: in-flight counts per replica, waiting for a Ready upstream, and what counts against the service breaker.</summary>
[Collection(SerialCollection.Name)]
public sealed class DrainingTests
{
    [Fact]
    public async Task InFlight_SlowRequestToReplica_CountedUntilItFinishesEvenAfterLeavingTheRoute()
    {
        await using var a = await TestUpstream.StartAsync("a");
        await using var b = await TestUpstream.StartAsync("b");
        var release = a.HoldAnswer("slow");
        await using var mesh = await MeshTest.ServeAsync(MeshTest.Bare(), a.Upstream());
        using var client = mesh.Client();

        var slow = client.GetStringAsync("/");
        await PollAsync(() => mesh.Host.InFlight("api", "a") == 1, "the slow request to be counted in flight on a");
        await mesh.Host.UpdateAsync(MeshTest.Route(mesh.Port, MeshTest.Bare(), b.Upstream()), CancellationToken.None);

        Assert.Equal(1, mesh.Host.InFlight("api", "a"));
        Assert.Equal(0, mesh.Host.InFlight("api", "b"));
        release.SetResult();
        Assert.Equal("slow", await slow);
        await PollAsync(() => mesh.Host.InFlight("api", "a") == 0, "a's in-flight count to return to 0");
    }

    [Fact]
    public async Task Proxy_NoReadyUpstreamYet_RequestWaitsAndReachesTheFirstOne()
    {
        await using var a = await TestUpstream.StartAsync("a");
        await using var mesh = new MeshHost(new MeshHostOptions { ConnectTimeout = TimeSpan.FromSeconds(20) });
        await mesh.StartAsync(CancellationToken.None);
        var port = Ports.Free();
        await mesh.UpdateAsync(MeshTest.Route(port, MeshPolicy.Default), CancellationToken.None);
        using var client = MeshTest.Client(port);
        using var admin = new HttpClient { BaseAddress = mesh.AdminAddress };

        var waiting = MeshTest.GetAsync(client);
        await PollAsync(async () => (await admin.GetStringAsync("/metrics")).Contains("berth_mesh_active_requests{service=\"api\",endpoint=\"http\"} 1", StringComparison.Ordinal),
            "the request to be held in the mesh");
        Assert.False(waiting.IsCompleted, "the request answered before any upstream was Ready");
        await mesh.UpdateAsync(MeshTest.Route(port, MeshPolicy.Default, a.Upstream()), CancellationToken.None);

        var (status, body, _) = await waiting;
        Assert.Equal(200, status);
        Assert.Equal("a", body);
    }

    [Fact]
    public async Task Proxy_NoReadyUpstreamManyTimes_ServiceBreakerStaysClosed()
    {
        await using var a = await TestUpstream.StartAsync("a");
        await using var mesh = new MeshHost(new MeshHostOptions { ConnectTimeout = TimeSpan.FromMilliseconds(20) });
        var port = Ports.Free();
        var policy = MeshTest.Bare() with { CircuitBreaker = CircuitBreakerPolicy.Default };
        await mesh.UpdateAsync(MeshTest.Route(port, policy), CancellationToken.None);
        using var client = MeshTest.Client(port);

        for (var i = 0; i < 3 * CircuitBreakerPolicy.Default.ConsecutiveFailures; i++)
        {
            var (status, _, response) = await MeshTest.GetAsync(client);
            Assert.Equal(503, status);
            Assert.Equal("no-upstream", response.Headers.GetValues("x-berth-error").Single());
        }

        await mesh.UpdateAsync(MeshTest.Route(port, policy, a.Upstream()), CancellationToken.None);
        Assert.Equal(200, (await MeshTest.GetAsync(client)).Status);
        Assert.Equal("Closed", (await mesh.RoutesAsync(CancellationToken.None)).Single().Circuit);
    }

    [Fact]
    public async Task Proxy_OneReplicaFailingConsecutivelyWhileAnotherServes_ServiceBreakerStaysClosed()
    {
        // As in a rollout: a run of failures all from one (old) replica while the new one is healthy. A header route
        // sends the failing run to the old replica only, so the service sees consecutive failures from one upstream.
        await using var old = await TestUpstream.StartAsync("old");
        await using var fresh = await TestUpstream.StartAsync("new");
        old.Answer(502);
        await using var mesh = new MeshHost();
        var port = Ports.Free();
        var policy = MeshTest.Bare() with
        {
            CircuitBreaker = CircuitBreakerPolicy.Default,
            Split = MeshTest.Split(
                new TrafficSplit { Version = "version=v1", HeaderName = "X-Old", HeaderValue = "1" },
                new TrafficSplit { Version = "version=v2", Weight = 100 }),
        };
        await mesh.UpdateAsync(MeshTest.Route(port, policy,
            old.Upstream() with { Labels = Labels("v1") }, fresh.Upstream() with { Labels = Labels("v2") }), CancellationToken.None);
        using var client = MeshTest.Client(port);

        for (var i = 0; i < CircuitBreakerPolicy.Default.ConsecutiveFailures; i++)
        {
            Assert.Equal(502, (await MeshTest.GetAsync(client, "/", r => r.Headers.Add("X-Old", "1"))).Status);
        }

        var (status, body, _) = await MeshTest.GetAsync(client);
        Assert.Equal(200, status);
        Assert.Equal("new", body);
        var route = (await mesh.RoutesAsync(CancellationToken.None)).Single();
        Assert.Equal("Closed", route.Circuit);
        Assert.Equal("Open", route.Upstreams.Single(u => u.Replica == "old").Circuit);
    }

    private static System.Collections.Immutable.ImmutableSortedDictionary<string, string> Labels(string version) =>
        System.Collections.Immutable.ImmutableSortedDictionary<string, string>.Empty.Add("version", version);

    private static async Task PollAsync(Func<bool> condition, string what) => await PollAsync(() => Task.FromResult(condition()), what);

    private static async Task PollAsync(Func<Task<bool>> condition, string what)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        while (!await condition())
        {
            if (deadline.IsCancellationRequested)
            {
                throw new Xunit.Sdk.XunitException($"timed out after 20s waiting for {what}");
            }

            await Task.Delay(10, CancellationToken.None);
        }
    }
}
