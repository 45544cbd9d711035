
namespace Berth.Mesh.Tests.Functional;

/// <summary>The TCP listener against real echo servers on loopback.</summary>
public sealed class TcpTests
{
    [Fact]
    public async Task Tcp_SecondMeshOnTheSamePort_RefusedNotShared()
    {
        await using var a = new EchoServer("a");
        await using var b = new EchoServer("b");
        await using var first = new MeshHost();
        await using var second = new MeshHost();
        var port = Ports.Free();
        await first.UpdateAsync(MeshTest.TcpRoute(port, MeshTest.Bare(LoadBalancing.RoundRobin), a.Upstream), CancellationToken.None);

        // SO_REUSEPORT on both would let the kernel share the port between two control planes, each answering in turn.
        var refused = await Assert.ThrowsAsync<MeshListenerException>(() => second.UpdateAsync(MeshTest.TcpRoute(port, MeshTest.Bare(LoadBalancing.RoundRobin), b.Upstream), CancellationToken.None));

        Assert.Contains($"127.0.0.1:{port}: Address already in use", refused.Message, StringComparison.Ordinal);
        for (var i = 0; i < 4; i++)
        {
            Assert.Equal("a", (await RoundTripAsync(port, $"ping-{i}")).Item1);
        }
    }

    [Fact]
    public async Task Tcp_RoundRobin_SplicesConnectionsAcrossUpstreamsBothWays()
    {
        await using var a = new EchoServer("a");
        await using var b = new EchoServer("b");
        await using var mesh = await MeshTest.ServeTcpAsync(MeshTest.Bare(LoadBalancing.RoundRobin), a.Upstream, b.Upstream);

        var greetings = new List<string>();
        for (var i = 0; i < 4; i++)
        {
            var (greeting, echo) = await RoundTripAsync(mesh.Port, $"ping-{i}");
            greetings.Add(greeting);
            Assert.Equal($"ping-{i}", echo);
        }

        Assert.Equal(2, greetings.Count(g => g == "a"));
        Assert.Equal(2, greetings.Count(g => g == "b"));
    }

    [Fact]
    public async Task Tcp_LeastConnections_PrefersTheUpstreamWithFewerOpenConnections()
    {
        await using var a = new EchoServer("a");
        await using var b = new EchoServer("b");
        await using var mesh = await MeshTest.ServeTcpAsync(MeshTest.Bare(LoadBalancing.LeastConnections), a.Upstream, b.Upstream);

        var held = new List<TcpClient>();
        try
        {
            var greetings = new List<string>();
            for (var i = 0; i < 3; i++)
            {
                greetings.Add(await OpenAsync(mesh.Port, held));
            }

            // Fewest open wins, ties to the first: a, b, a. Now a has 2 open and b 1; close b's.
            Assert.Equal(["a", "b", "a"], greetings);
            held[1].Dispose();
            await Poll.UntilAsync(async () => (await mesh.Host.RoutesAsync(CancellationToken.None)).Single().Upstreams.Single(u => u.Replica == "b").Active == 0,
                TimeSpan.FromSeconds(10), "b's connection to close in the mesh");

            // Round-robin would now say b then a; least-connections says b, b (b: 0 then 1, a: 2).
            Assert.Equal("b", await OpenAsync(mesh.Port, held));
            Assert.Equal("b", await OpenAsync(mesh.Port, held));
        }
        finally
        {
            held.ForEach(c => c.Dispose());
        }
    }

    private static async Task<string> OpenAsync(int port, List<TcpClient> held)
    {
        var client = new TcpClient();
        held.Add(client);
        await client.ConnectAsync("127.0.0.1", port);
        return await ReadLineAsync(client.GetStream());
    }

    [Fact]
    public async Task Tcp_UpstreamRefusing_RetriesConnectOnAnotherAndEjectsIt()
    {
        await using var a = new EchoServer("a");
        var dead = new Upstream("dead", "127.0.0.1", Ports.Free(), 1);
        await using var mesh = new MeshHost();
        var port = Ports.Free();
        var policy = MeshTest.Bare(LoadBalancing.RoundRobin) with
        {
            Retries = new RetryPolicy { Attempts = 2 },
            OutlierDetection = OutlierDetectionPolicy.Default,
        };
        await mesh.UpdateAsync(MeshTest.TcpRoute(port, policy, dead, a.Upstream), CancellationToken.None);

        for (var i = 0; i < 20; i++)
        {
            var (greeting, echo) = await RoundTripAsync(port, "hello");
            Assert.Equal("a", greeting);
            Assert.Equal("hello", echo);
        }

        var routes = await mesh.RoutesAsync(CancellationToken.None);
        Assert.True(routes.Single().Upstreams.Single(u => u.Replica == "dead").Ejected, "the refusing upstream should be ejected after 5 connect failures");
    }

    [Fact]
    public async Task Tcp_RouteUpdated_OpenConnectionKeepsWorkingAndNewOnesGoToNewUpstream()
    {
        await using var a = new EchoServer("a");
        await using var b = new EchoServer("b");
        await using var mesh = await MeshTest.ServeTcpAsync(MeshTest.Bare(), a.Upstream);

        using var open = new TcpClient();
        await open.ConnectAsync("127.0.0.1", mesh.Port);
        var stream = open.GetStream();
        Assert.Equal("a", await ReadLineAsync(stream));

        await mesh.Host.UpdateAsync(MeshTest.TcpRoute(mesh.Port, MeshTest.Bare(), b.Upstream), CancellationToken.None);

        await stream.WriteAsync(Encoding.ASCII.GetBytes("still-here\n"));
        Assert.Equal("still-here", await ReadLineAsync(stream));
        Assert.Equal("b", (await RoundTripAsync(mesh.Port, "new")).Greeting);
    }

    [Fact]
    public async Task Tcp_AboveMaxConnections_ClosesTheNewConnectionAtOnce()
    {
        await using var a = new EchoServer("a");
        await using var mesh = await MeshTest.ServeTcpAsync(MeshTest.Bare() with { Limits = new ConnectionLimits { MaxConnections = 1 } }, a.Upstream);
        using var held = new TcpClient();
        await held.ConnectAsync("127.0.0.1", mesh.Port);
        Assert.Equal("a", await ReadLineAsync(held.GetStream()));

        using var extra = new TcpClient();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var read = 0;
        try
        {
            await extra.ConnectAsync("127.0.0.1", mesh.Port, cts.Token);
            read = await extra.GetStream().ReadAsync(new byte[16], cts.Token);
        }
        catch (Exception e) when (e is IOException or SocketException)
        {
            // Reset rather than FIN (possibly before the connect completed): also closed at once.
        }

        Assert.Equal(0, read);
        Assert.Equal(1, a.Accepted);
    }

    private static async Task<(string Greeting, string Echo)> RoundTripAsync(int port, string message)
    {
        using var client = new TcpClient();
        await client.ConnectAsync("127.0.0.1", port);
        var stream = client.GetStream();
        var greeting = await ReadLineAsync(stream);
        await stream.WriteAsync(Encoding.ASCII.GetBytes(message + "\n"));
        return (greeting, await ReadLineAsync(stream));
    }

    private static async Task<string> ReadLineAsync(NetworkStream stream)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var bytes = new List<byte>();
        var one = new byte[1];
        while (await stream.ReadAsync(one, cts.Token) == 1 && one[0] != '\n')
        {
            bytes.Add(one[0]);
        }

        return Encoding.ASCII.GetString(bytes.ToArray());
    }
}
