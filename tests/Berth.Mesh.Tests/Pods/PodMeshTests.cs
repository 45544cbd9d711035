using Berth.Mesh.TestGrpc;
using Grpc.Core;
using Grpc.Net.Client;

namespace Berth.Mesh.Tests.Pods;

/// <summary>The mesh reaching into pods (network namespaces holding only loopback): inbound through sockets made inside
/// each pod, outbound through listeners on a service's virtual address inside the calling pod.</summary>
public sealed class PodMeshTests
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Inbound_TwoPodsOnTheSamePort_MeshReachesBothAndEveryThreadStaysInTheHostNamespace()
    {
        var port = Ports.Free();
        using var a = await ServerPodAsync("api-a", port, "a");
        using var b = await ServerPodAsync("api-b", port, "b");
        await using var mesh = new MeshHost();
        var stable = Ports.Free();
        await mesh.UpdateAsync(MeshTest.Route(stable, Policy(), Upstream(a, port), Upstream(b, port)), CancellationToken.None);
        using var client = MeshTest.Client(stable);

        var bodies = new HashSet<string>();
        await Poll.UntilAsync(async () =>
        {
            var (status, body, _) = await MeshTest.GetAsync(client);
            if (status == 200)
            {
                bodies.Add(body);
            }

            return bodies.Count == 2;
        }, Long, "GETs through the stable port reach the replica in each pod (ok a, ok b)");

        Assert.Equal(["ok a", "ok b"], bodies.Order());
        AssertEveryThreadInHostNamespace();
    }

    [Fact]
    public async Task Outbound_ServiceAddressInsideThePod_ReachesTheCalleeThroughItsRouteAndOnlyFromThatPod()
    {
        var port = Ports.Free();
        using var api = await ServerPodAsync("api-1", port, "api");
        using var web = await TestPod.StartAsync("web-1", ["sleep", "300"]);
        using var other = await TestPod.StartAsync("web-2", ["sleep", "300"]);
        await using var mesh = new MeshHost();
        var stable = Ports.Free();
        await mesh.UpdateAsync(MeshTest.Route(stable, Policy(), Upstream(api, port)), CancellationToken.None);

        await mesh.UpdatePodAsync(new PodRoute(web.Network, [new OutboundListener("api", "http", "127.77.0.9", 8080)]), CancellationToken.None);

        var open = await mesh.PodListenersAsync(CancellationToken.None);
        Assert.Equal([new OutboundListener("api", "http", "127.77.0.9", 8080)], open["web-1"]);
        string? answer = null;
        // Until api's server in its pod listens (a perl start on a loaded machine), the mesh answers 502 connect-failure.
        await Poll.UntilAsync(async () => (answer = await TestPod.GetInsideAsync(web.Network, "127.77.0.9", 8080, host: "api")) is not null && !answer.Contains("upstream-connect-failure", StringComparison.Ordinal),
            Long, "web's pod reaches api at 127.77.0.9:8080");
        Assert.EndsWith("ok api", answer, StringComparison.Ordinal);
        Assert.Contains("HTTP/1.1 200", answer, StringComparison.Ordinal);
        Assert.Null(await TestPod.GetInsideAsync(other.Network, "127.77.0.9", 8080, host: "api"));
        AssertEveryThreadInHostNamespace();

        await mesh.RemovePodAsync("web-1", CancellationToken.None);

        Assert.Null(await TestPod.GetInsideAsync(web.Network, "127.77.0.9", 8080, host: "api"));
    }

    [Fact]
    public async Task Outbound_TcpServiceAddressInsideThePod_ServedInPlaceWithoutAHopThroughTheStableListener()
    {
        var port = Ports.Free();
        using var db = await ServerPodAsync("db-1", port, "db");
        using var web = await TestPod.StartAsync("web-1", ["sleep", "300"]);
        await using var mesh = new MeshHost();
        var stable = Ports.Free();
        await mesh.UpdateAsync(MeshTest.TcpRoute(stable, Policy(), Upstream(db, port)), CancellationToken.None);
        await mesh.UpdatePodAsync(new PodRoute(web.Network, [new OutboundListener("db", "tcp", "127.77.0.11", 7400)]), CancellationToken.None);

        // Until db's server in its pod listens (a perl start on a loaded machine) the proxy finds no upstream and closes.
        string? answer = null;
        await Poll.UntilAsync(async () => (answer = await TestPod.GetInsideAsync(web.Network, "127.77.0.11", 7400)) is not null,
            Long, "web's pod reaches db's TCP endpoint at 127.77.0.11:7400");
        Assert.EndsWith("ok db", answer, StringComparison.Ordinal);

        // One connection held open: once the mesh has connected it to db's server (seen in db's pod), no connection to or
        // from the stable port exists on the host — a splice to the stable listener would hold one for as long.
        using var held = await PodSockets.CreateAsync(web.Network, AddressFamily.InterNetwork, CancellationToken.None);
        await held.ConnectAsync("127.77.0.11", 7400);
        await Poll.UntilAsync(() => Task.FromResult(Established($"/proc/{db.Pid}/net/tcp", port) > 0), Long,
            $"the mesh connects the held connection to db's server on {port} in db's pod");
        Assert.Equal(0, Established("/proc/self/net/tcp", stable));
        AssertEveryThreadInHostNamespace();
    }

    [Fact]
    public async Task PodSockets_BusyPodTakingSpares_EverySocketIsInThePodAndOnceThePodIsGoneNoneConnects()
    {
        var port = Ports.Free();
        var pod = await ServerPodAsync("sockets-1", port, "a");
        try
        {
            await Poll.UntilAsync(async () => await TestPod.GetInsideAsync(pod.Network, "127.0.0.1", port) is not null, Long, $"the server in the pod listens on {port}");

            // Asked back to back (a busy pod), in two bursts: the first makes the pod busy (a batch is made ahead), the second
            // takes spares and refills. Each socket reaches the server that listens only inside the pod (nothing listens on the
            // port on the host).
            var first = await Task.WhenAll(Enumerable.Range(0, 2 * 8).Select(_ => PodSockets.CreateAsync(pod.Network, AddressFamily.InterNetwork, CancellationToken.None)));
            var second = await Task.WhenAll(Enumerable.Range(0, 2 * 8).Select(_ => PodSockets.CreateAsync(pod.Network, AddressFamily.InterNetwork, CancellationToken.None)));
            foreach (var socket in first.Concat(second))
            {
                using var _ = socket;
                await socket.ConnectAsync("127.0.0.1", port);
                await socket.SendAsync(Encoding.ASCII.GetBytes("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"), SocketFlags.None);
                using var stream = new NetworkStream(socket);
                Assert.EndsWith("ok a", await new StreamReader(stream).ReadToEndAsync(), StringComparison.Ordinal);
            }
        }
        finally
        {
            pod.Dispose();
        }

        // The pod is gone: a spare made before holds its namespace, but nothing listens there any more.
        await Assert.ThrowsAnyAsync<SocketException>(async () =>
        {
            using var socket = await PodSockets.CreateAsync(pod.Network, AddressFamily.InterNetwork, CancellationToken.None);
            await socket.ConnectAsync("127.0.0.1", port);
        });
        AssertEveryThreadInHostNamespace();
    }

    [Fact]
    public async Task PodSockets_BurstOfAsksIntoABusyPod_ServedByBatchesNotAVisitEach()
    {
        var port = Ports.Free();
        using var pod = await ServerPodAsync("burst-1", port, "a");
        await Poll.UntilAsync(async () => await TestPod.GetInsideAsync(pod.Network, "127.0.0.1", port) is not null, Long, $"the server in the pod listens on {port}");
        var before = PodSockets.VisitsTo(pod.Network);

        // 64 asks at once (a busy pod: the shop's api opens three db connections per request): the asks queued while the
        // thread makes a batch are served from it, so the pod is entered a few times, not once per socket.
        var sockets = await Task.WhenAll(Enumerable.Range(0, 64).Select(_ => PodSockets.CreateAsync(pod.Network, AddressFamily.InterNetwork, CancellationToken.None)));
        var visits = PodSockets.VisitsTo(pod.Network) - before;

        try
        {
            Assert.InRange(visits, 1, 12);
            Assert.Equal(64, sockets.Distinct().Count());
            foreach (var socket in sockets.Take(4).Concat(sockets.TakeLast(4)))
            {
                await socket.ConnectAsync("127.0.0.1", port);
                await socket.SendAsync(Encoding.ASCII.GetBytes("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"), SocketFlags.None);
                using var stream = new NetworkStream(socket);
                Assert.EndsWith("ok a", await new StreamReader(stream).ReadToEndAsync(), StringComparison.Ordinal);
            }
        }
        finally
        {
            foreach (var socket in sockets)
            {
                socket.Dispose();
            }
        }

        AssertEveryThreadInHostNamespace();
    }

    /// <summary>ESTABLISHED TCP connections with <paramref name="port"/> at either end in a <c>/proc/…/net/tcp</c> table
    /// (the table of the namespace the reading path belongs to).</summary>
    private static int Established(string table, int port)
    {
        var hex = $":{port:X4}";
        return File.ReadLines(table).Skip(1)
            .Select(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Count(f => f[3] == "01" && (f[1].EndsWith(hex, StringComparison.Ordinal) || f[2].EndsWith(hex, StringComparison.Ordinal)));
    }

    [Fact]
    public async Task Inbound_PodGone_ConnectFailureRetriedOnTheOtherPodThenEjected()
    {
        var port = Ports.Free();
        using var a = await ServerPodAsync("api-a", port, "a");
        var b = await ServerPodAsync("api-b", port, "b");
        await using var mesh = new MeshHost();
        var stable = Ports.Free();
        await mesh.UpdateAsync(MeshTest.Route(stable, Policy() with { Retries = new RetryPolicy { Attempts = 2 }, OutlierDetection = new OutlierDetectionPolicy() }, Upstream(a, port), Upstream(b, port)), CancellationToken.None);
        using var client = MeshTest.Client(stable);
        await Poll.UntilAsync(async () => (await MeshTest.GetAsync(client)).Status == 200, Long, "the mesh serves through the pods");

        b.Dispose();
        var statuses = new List<int>();
        for (var i = 0; i < 20; i++)
        {
            statuses.Add((await MeshTest.GetAsync(client)).Status);
        }

        Assert.All(statuses, s => Assert.Equal(200, s));
    }

    [Fact]
    public async Task Inbound_GrpcReplicasInTwoPodsOnTheSamePort_BothAnsweredOverH2cWithTrailers()
    {
        var port = Ports.Free();
        using var a = await GrpcPodAsync("api-a", port);
        using var b = await GrpcPodAsync("api-b", port);
        await using var mesh = new MeshHost();
        var stable = Ports.Free();
        await mesh.UpdateAsync(GrpcRoute(stable, Upstream(a, port), Upstream(b, port)), CancellationToken.None);
        using var channel = GrpcChannel.ForAddress($"http://127.0.0.1:{stable}");
        var invoker = channel.CreateCallInvoker();

        var replicas = new HashSet<string>();
        await Poll.UntilAsync(async () =>
        {
            try
            {
                using var call = invoker.AsyncUnaryCall(EchoBase.EchoMethod, null, new CallOptions(), "hi");
                var reply = await call.ResponseAsync;
                var replica = call.GetTrailers().GetValue("x-replica");
                Assert.Equal($"{replica}:hi", reply);
                replicas.Add(replica!);
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.Unavailable)
            {
                // A pod's server still starting (.NET start): its connect is refused.
            }

            return replicas.Count == 2;
        }, TimeSpan.FromSeconds(90), "gRPC calls through the stable port answered by the server in each pod (both on the same port)");

        Assert.Equal(["api-a", "api-b"], replicas.Order());
        AssertEveryThreadInHostNamespace();
    }

    [Fact]
    public async Task Outbound_GrpcToAServiceAddressInsideThePod_ReachesTheCalleeOverH2c()
    {
        var port = Ports.Free();
        using var api = await GrpcPodAsync("api-1", port);
        using var web = await TestPod.StartAsync("web-1", ["sleep", "300"]);
        await using var mesh = new MeshHost();
        await mesh.UpdateAsync(GrpcRoute(Ports.Free(), Upstream(api, port)), CancellationToken.None);
        await mesh.UpdatePodAsync(new PodRoute(web.Network, [new OutboundListener("api", "grpc", "127.77.0.9", 50051)]), CancellationToken.None);
        // The client's connections are made inside web's pod, as a replica's would be: api's name there is 127.77.0.9.
        using var channel = GrpcChannel.ForAddress("http://127.77.0.9:50051", new GrpcChannelOptions
        {
            HttpHandler = new SocketsHttpHandler
            {
                ConnectCallback = async (context, token) =>
                {
                    var socket = await PodSockets.CreateAsync(web.Network, AddressFamily.InterNetwork, token);
                    await socket.ConnectAsync(context.DnsEndPoint, token);
                    return new NetworkStream(socket, ownsSocket: true);
                },
            },
        });

        string? reply = null;
        await Poll.UntilAsync(async () =>
        {
            try
            {
                reply = await channel.CreateCallInvoker().AsyncUnaryCall(EchoBase.EchoMethod, null, new CallOptions(), "from web").ResponseAsync;
                return true;
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.Unavailable)
            {
                return false;
            }
        }, TimeSpan.FromSeconds(90), "a gRPC call from inside web's pod to api's virtual address answered by api's pod");

        Assert.Equal("api-1:from web", reply);
        AssertEveryThreadInHostNamespace();
    }

    [Fact]
    public async Task HostGateway_PodAskingForTheHost_ReachesHostLoopbackListenersIncludingOnesOpenedLater_OtherPodsDoNot()
    {
        using var early = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, Ports.Free());
        early.Start();
        using var web = await TestPod.StartAsync("web-1", ["sleep", "300"]);
        using var other = await TestPod.StartAsync("web-2", ["sleep", "300"]);
        await using var mesh = new MeshHost(new MeshHostOptions { HostPortsPeriod = TimeSpan.FromMilliseconds(200) });

        await mesh.UpdatePodAsync(new PodRoute(web.Network, []) { HostGateway = true }, CancellationToken.None);
        await mesh.UpdatePodAsync(new PodRoute(other.Network, []), CancellationToken.None);

        var port = ((System.Net.IPEndPoint)early.LocalEndpoint).Port;
        Assert.Equal("host " + port, await EchoThroughAsync(web.Network, early, port));
        Assert.False(await ConnectsAsync(other.Network, PodDefaults.HostGatewayAddress, port), "a pod that did not ask for the host reached it");
        using var later = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, Ports.Free());
        later.Start();
        var laterPort = ((System.Net.IPEndPoint)later.LocalEndpoint).Port;
        await Poll.UntilAsync(async () => (await mesh.PodListenersAsync(CancellationToken.None))["web-1"].Any(l => l.Port == laterPort && l.Address == PodDefaults.HostGatewayAddress),
            Long, "a host port opened after the pod's update mirrored into it");
        Assert.Equal("host " + laterPort, await EchoThroughAsync(web.Network, later, laterPort));
        AssertEveryThreadInHostNamespace();
    }

    /// <summary>Connects from inside <paramref name="pod"/> to the host-gateway address on <paramref name="port"/>, and has
    /// <paramref name="host"/> (listening on the host's loopback) write "host PORT" on the connection it accepts.</summary>
    private static async Task<string> EchoThroughAsync(PodNetwork pod, System.Net.Sockets.TcpListener host, int port)
    {
        using var socket = await PodSockets.CreateAsync(pod, AddressFamily.InterNetwork, CancellationToken.None);
        await socket.ConnectAsync(PodDefaults.HostGatewayAddress, port);
        using var accepted = await host.AcceptSocketAsync().WaitAsync(Long);
        await accepted.SendAsync(Encoding.ASCII.GetBytes($"host {port}"), SocketFlags.None);
        accepted.Shutdown(SocketShutdown.Send);
        var buffer = new byte[64];
        var text = new StringBuilder();
        int n;
        while ((n = await socket.ReceiveAsync(buffer, SocketFlags.None)) > 0)
        {
            text.Append(Encoding.ASCII.GetString(buffer, 0, n));
        }

        return text.ToString();
    }

    private static async Task<bool> ConnectsAsync(PodNetwork pod, string address, int port)
    {
        using var socket = await PodSockets.CreateAsync(pod, AddressFamily.InterNetwork, CancellationToken.None);
        try
        {
            await socket.ConnectAsync(address, port);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    private static ServiceRoute GrpcRoute(int port, params Upstream[] upstreams) =>
        new("api", new Endpoint { Name = "grpc", Port = port, Protocol = EndpointProtocol.Grpc }, Policy(), [.. upstreams]);

    /// <summary>A real Grpc.AspNetCore server (Berth.Mesh.TestUpstream --grpc, h2c only) in a new pod on <paramref name="port"/>.</summary>
    private static Task<TestPod> GrpcPodAsync(string id, int port) =>
        TestPod.StartAsync(id, [Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet", Path.Combine(AppContext.BaseDirectory, "Berth.Mesh.TestUpstream.dll"),
            "--port", $"{port}", "--name", id, "--grpc"]);

    private static MeshPolicy Policy() => MeshTest.Bare() with { Retries = new RetryPolicy { Attempts = 0 } };

    private static Upstream Upstream(TestPod pod, int port) => new(pod.Network.PodId, "127.0.0.1", port, 1) { Pod = pod.Network };

    private static Task<TestPod> ServerPodAsync(string id, int port, string v) =>
        TestPod.StartAsync(id, [.. TestHttpServer.Command], new Dictionary<string, string> { ["PORT"] = $"{port}", ["V"] = v });

    /// <summary>The pitfall of entering pods: a thread inherits its creator's namespace, so a runtime thread started while
    /// one was in a pod would stay there. Every thread of this process must still be in the host namespace.</summary>
    private static void AssertEveryThreadInHostNamespace()
    {
        var host = new FileInfo("/proc/1/ns/net").LinkTarget ?? new FileInfo("/proc/self/ns/net").LinkTarget;
        var own = new FileInfo("/proc/self/ns/net").LinkTarget;
        Assert.Equal(host, own);
        foreach (var task in Directory.EnumerateDirectories("/proc/self/task"))
        {
            var ns = new FileInfo(Path.Combine(task, "ns", "net")).LinkTarget;
            Assert.True(ns is null || ns == own, $"thread {Path.GetFileName(task)} is in {ns}, not the host's {own}");
        }
    }
}
