
namespace Berth.Mesh.Tests.Functional;

/// <summary>Routing through a real mesh listener to real Kestrel upstreams on loopback.</summary>
public sealed class HttpRoutingTests
{
    [Fact]
    public async Task Update_NewRoute_ListensOnStablePortAndRoundRobinsOverUpstreams()
    {
        await using var a = await TestUpstream.StartAsync("a");
        await using var b = await TestUpstream.StartAsync("b");
        await using var mesh = await MeshTest.ServeAsync(MeshTest.Bare(), a.Upstream(), b.Upstream());
        using var client = mesh.Client();

        var bodies = new List<string>();
        for (var i = 0; i < 10; i++)
        {
            var (status, body, _) = await MeshTest.GetAsync(client);
            Assert.Equal(200, status);
            bodies.Add(body);
        }

        Assert.Equal(5, bodies.Count(x => x == "a"));
        Assert.Equal(5, bodies.Count(x => x == "b"));
        Assert.Equal(5, a.Requests);
    }

    [Fact]
    public async Task Update_UpstreamsReplacedDuringRequest_InFlightRequestCompletesAndConnectionStaysOpen()
    {
        await using var a = await TestUpstream.StartAsync("a");
        await using var b = await TestUpstream.StartAsync("b");
        var release = a.HoldAnswer("a-slow");
        await using var mesh = new MeshHost();
        var port = Ports.Free();
        await mesh.UpdateAsync(MeshTest.Route(port, MeshTest.Bare(), a.Upstream()), CancellationToken.None);

        var connections = 0;
        using var client = new HttpClient(new SocketsHttpHandler
        {
            UseProxy = false,
            MaxConnectionsPerServer = 1,
            ConnectCallback = async (ctx, ct) =>
            {
                Interlocked.Increment(ref connections);
                var socket = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
                await socket.ConnectAsync(ctx.DnsEndPoint, ct);
                return new System.Net.Sockets.NetworkStream(socket, ownsSocket: true);
            },
        }) { BaseAddress = new Uri($"http://127.0.0.1:{port}") };

        var slow = client.GetStringAsync("/");
        await Poll.UntilAsync(() => a.Requests == 1, TimeSpan.FromSeconds(10), "the slow request to reach upstream a");

        await mesh.UpdateAsync(MeshTest.Route(port, MeshTest.Bare(), b.Upstream()), CancellationToken.None);
        release.SetResult();

        Assert.Equal("a-slow", await slow);
        Assert.Equal("b", await client.GetStringAsync("/"));
        Assert.Equal(1, connections);
    }

    [Fact]
    public async Task Remove_ListenerWithInFlightRequest_FinishesItThenRefusesConnections()
    {
        await using var a = await TestUpstream.StartAsync("a");
        var release = a.HoldAnswer("done");
        await using var mesh = await MeshTest.ServeAsync(MeshTest.Bare(), a.Upstream());
        using var client = mesh.Client();

        var inFlight = client.GetStringAsync("/");
        await Poll.UntilAsync(() => a.Requests == 1, TimeSpan.FromSeconds(10), "the request to reach upstream a");
        var removing = mesh.Host.RemoveAsync("api", "http", CancellationToken.None);
        release.SetResult();
        await removing;

        Assert.Equal("done", await inFlight);
        using var fresh = MeshTest.Client(mesh.Port);
        await Assert.ThrowsAsync<HttpRequestException>(() => fresh.GetStringAsync("/"));
    }

    [Fact]
    public async Task Proxy_NoUpstreams_Answers503NoUpstream()
    {
        await using var mesh = await MeshTest.ServeAsync(MeshPolicy.Default);
        using var client = mesh.Client();

        var (status, _, response) = await MeshTest.GetAsync(client);

        Assert.Equal(503, status);
        Assert.Equal("no-upstream", response.Headers.GetValues("x-berth-error").Single());
    }

    [Fact]
    public async Task Proxy_RequestWithQueryAndHeaders_ForwardsThemAndAddsForwardedFor()
    {
        await using var a = await TestUpstream.StartAsync("a");
        string? seenTarget = null;
        a.Handler = context =>
        {
            seenTarget = context.Request.Path + context.Request.QueryString;
            return context.Response.WriteAsync(context.Request.Headers["X-Custom"].ToString());
        };
        await using var mesh = await MeshTest.ServeAsync(MeshTest.Bare(), a.Upstream());
        using var client = mesh.Client();

        var (status, body, _) = await MeshTest.GetAsync(client, "/orders/42?x=1&y=%20", r => r.Headers.Add("X-Custom", "hello"));

        Assert.Equal(200, status);
        Assert.Equal("hello", body);
        Assert.Equal("/orders/42?x=1&y=%20", seenTarget);
        var headers = a.Received.Single();
        Assert.Equal("127.0.0.1", headers["X-Forwarded-For"].ToString());
    }

    [Fact]
    public async Task Proxy_ConsistentHashOnHeader_SameKeyAlwaysReachesSameUpstream()
    {
        await using var a = await TestUpstream.StartAsync("a");
        await using var b = await TestUpstream.StartAsync("b");
        await using var c = await TestUpstream.StartAsync("c");
        var policy = MeshTest.Bare(LoadBalancing.ConsistentHash) with { HashOn = "header:X-User" };
        await using var mesh = await MeshTest.ServeAsync(policy, a.Upstream(), b.Upstream(), c.Upstream());
        using var client = mesh.Client();

        var seen = new Dictionary<string, HashSet<string>>();
        for (var user = 0; user < 20; user++)
        {
            for (var i = 0; i < 3; i++)
            {
                var (_, body, _) = await MeshTest.GetAsync(client, "/", r => r.Headers.Add("X-User", $"user-{user}"));
                (seen.TryGetValue($"user-{user}", out var set) ? set : seen[$"user-{user}"] = []).Add(body);
            }
        }

        Assert.All(seen.Values, set => Assert.Single(set));
        Assert.True(seen.Values.Select(s => s.Single()).Distinct().Count() >= 2, "20 keys should spread over more than one upstream");
    }

    [Fact]
    public async Task Proxy_ConsistentHashOnCookie_SameSessionSameUpstream()
    {
        await using var a = await TestUpstream.StartAsync("a");
        await using var b = await TestUpstream.StartAsync("b");
        var policy = MeshTest.Bare(LoadBalancing.ConsistentHash) with { HashOn = "cookie:session" };
        await using var mesh = await MeshTest.ServeAsync(policy, a.Upstream(), b.Upstream());
        using var client = mesh.Client();

        var owners = new HashSet<string>();
        for (var session = 0; session < 12; session++)
        {
            var bodies = new HashSet<string>();
            for (var i = 0; i < 4; i++)
            {
                bodies.Add((await MeshTest.GetAsync(client, "/", r => r.Headers.Add("Cookie", $"theme=dark; session=s{session}"))).Body);
            }

            owners.Add(Assert.Single(bodies));
        }

        Assert.Equal(2, owners.Count);
    }

    [Fact]
    public async Task Update_ConsistentHashWithoutHashOn_ThrowsSayingHowToFix()
    {
        await using var mesh = new MeshHost();
        var route = MeshTest.Route(Ports.Free(), MeshTest.Bare(LoadBalancing.ConsistentHash));

        var error = await Assert.ThrowsAsync<ArgumentException>(() => mesh.UpdateAsync(route, CancellationToken.None));

        Assert.Equal("service api, endpoint http: loadBalancing consistent-hash needs hashOn such as 'header:X-User' or 'cookie:session' (got '')", error.Message);
    }

    [Fact]
    public async Task Update_UnknownRetryCondition_ThrowsNamingIt()
    {
        await using var mesh = new MeshHost();
        var route = MeshTest.Route(Ports.Free(), MeshPolicy.Default with { Retries = new RetryPolicy { On = ["connect-failure", "sometimes"] } });

        var error = await Assert.ThrowsAsync<ArgumentException>(() => mesh.UpdateAsync(route, CancellationToken.None));

        Assert.Equal("service api, endpoint http: retries.on has 'sometimes', which is not a retry condition; use connect-failure, reset, gateway-error, 5xx, a status code such as 503, or a gRPC status such as unavailable", error.Message);
    }

    [Fact]
    public async Task Update_PortAlreadyTaken_ThrowsMeshListenerExceptionNamingServiceAndPort()
    {
        using var blocker = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        blocker.Start();
        var port = ((IPEndPoint)blocker.LocalEndpoint).Port;
        await using var mesh = new MeshHost();

        var error = await Assert.ThrowsAsync<MeshListenerException>(() => mesh.UpdateAsync(MeshTest.Route(port, MeshPolicy.Default), CancellationToken.None));

        Assert.StartsWith($"mesh: cannot listen for service api, endpoint http: ", error.Message);
        Assert.EndsWith("Free the port or choose another one in the spec.", error.Message);
        Assert.Contains(port.ToString(System.Globalization.CultureInfo.InvariantCulture), error.Message);
    }

    /// <summary>The first request holds the only slot (max_requests: 1, in flight) or the only place in the queue
    /// (max_pending_requests: 1, waiting on the upstream); the second fails fast with 503 and never reaches the upstream.</summary>
    [Theory]
    [InlineData("max-requests")]
    [InlineData("max-pending")]
    public async Task Proxy_ConcurrencyAboveTheLimit_FailsFastWith503NamingIt(string limit)
    {
        await using var a = await TestUpstream.StartAsync("a");
        var release = a.HoldAnswer("slow");
        var limits = limit == "max-requests" ? new ConnectionLimits { MaxRequests = 1 } : new ConnectionLimits { MaxPendingRequests = 1 };
        await using var mesh = await MeshTest.ServeAsync(MeshTest.Bare() with { Limits = limits }, a.Upstream());
        using var client = mesh.Client();

        var first = client.GetStringAsync("/");
        await Poll.UntilAsync(() => a.Requests == 1, TimeSpan.FromSeconds(10), $"the first request to take the only place ({limit})");
        var (status, _, response) = await MeshTest.GetAsync(client);
        release.SetResult();

        Assert.Equal(503, status);
        Assert.Equal(limit, response.Headers.GetValues("x-berth-error").Single());
        Assert.Equal("slow", await first);
        Assert.Equal(1, a.Requests);
    }
}
