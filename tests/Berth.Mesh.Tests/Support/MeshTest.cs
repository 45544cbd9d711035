
namespace Berth.Mesh.Tests.Support;

/// <summary>Builds routes and clients for functional tests.</summary>
internal static class MeshTest
{
    public static ServiceRoute Route(int port, MeshPolicy policy, params Upstream[] upstreams) =>
        new("api", new Endpoint { Name = "http", Port = port }, policy, [.. upstreams]);

    public static ServiceRoute TcpRoute(int port, MeshPolicy policy, params Upstream[] upstreams) =>
        new("db", new Endpoint { Name = "tcp", Port = port, Protocol = EndpointProtocol.Tcp }, policy, [.. upstreams]);

    public static ServiceRoute GrpcRoute(int port, MeshPolicy policy, params Upstream[] upstreams) =>
        new("api", new Endpoint { Name = "grpc", Port = port, Protocol = EndpointProtocol.Grpc }, policy, [.. upstreams]);

    /// <summary>No retries, no breaker, no ejection: each feature's test turns on only what it checks.</summary>
    public static MeshPolicy Bare(LoadBalancing lb = LoadBalancing.RoundRobin) => new()
    {
        LoadBalancing = lb,
        Retries = new RetryPolicy { Attempts = 0 },
        CircuitBreaker = new CircuitBreakerPolicy { Enabled = false },
        OutlierDetection = new OutlierDetectionPolicy { Enabled = false },
    };

    public static HttpClient Client(int port) => new(new SocketsHttpHandler { UseProxy = false, PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5) })
    {
        BaseAddress = new Uri($"http://127.0.0.1:{port}"),
        Timeout = TimeSpan.FromSeconds(30),
    };

    public static async Task<(int Status, string Body, HttpResponseMessage Response)> GetAsync(HttpClient client, string path = "/", Action<HttpRequestMessage>? configure = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        configure?.Invoke(request);
        var response = await client.SendAsync(request);
        return ((int)response.StatusCode, await response.Content.ReadAsStringAsync(), response);
    }

    /// <summary>A real mesh (with <paramref name="options"/>) serving route <c>api</c> to <paramref name="upstream"/> on a free
    /// loopback port, under <paramref name="policy"/> (default: <see cref="MeshPolicy.Default"/>).</summary>
    public static Task<ServedMesh> ServeAsync(Upstream upstream, MeshHostOptions? options = null, MeshPolicy? policy = null) =>
        ServeRouteAsync(port => Route(port, policy ?? MeshPolicy.Default, upstream), options);

    /// <summary>A real mesh serving route <c>api</c> under <paramref name="policy"/> to <paramref name="upstreams"/> on a free
    /// loopback port.</summary>
    public static Task<ServedMesh> ServeAsync(MeshPolicy policy, params Upstream[] upstreams) =>
        ServeRouteAsync(port => Route(port, policy, upstreams));

    /// <summary>A real mesh whose clock is <paramref name="time"/> (a FakeTimeProvider the test moves, for ejection and break
    /// times), serving route <c>api</c> under <paramref name="policy"/> to <paramref name="upstreams"/> on a free loopback port.</summary>
    public static Task<ServedMesh> ServeAsync(TimeProvider time, MeshPolicy policy, params Upstream[] upstreams) =>
        ServeRouteAsync(port => Route(port, policy, upstreams), new MeshHostOptions { TimeProvider = time });

    /// <summary>A real mesh serving the TCP route <c>db</c> under <paramref name="policy"/> to <paramref name="upstreams"/> on a
    /// free loopback port.</summary>
    public static Task<ServedMesh> ServeTcpAsync(MeshPolicy policy, params Upstream[] upstreams) =>
        ServeRouteAsync(port => TcpRoute(port, policy, upstreams));

    /// <summary>A real mesh serving the gRPC route <c>api</c> (endpoint <c>grpc</c>) under <paramref name="policy"/> to
    /// <paramref name="upstreams"/> on a free loopback port.</summary>
    public static Task<ServedMesh> ServeGrpcAsync(MeshPolicy policy, params Upstream[] upstreams) =>
        ServeRouteAsync(port => GrpcRoute(port, policy, upstreams));

    public static ImmutableArray<TrafficSplit> Split(params TrafficSplit[] splits) => [.. splits];

    // A new mesh (with options) given the route that route(port) makes for a free loopback port.
    private static async Task<ServedMesh> ServeRouteAsync(Func<int, ServiceRoute> route, MeshHostOptions? options = null)
    {
        var mesh = new MeshHost(options);
        var port = Ports.Free();
        await mesh.UpdateAsync(route(port), CancellationToken.None);
        return new ServedMesh(mesh, port);
    }
}

/// <summary>A real mesh serving one route on <see cref="Port"/>; disposing it stops the mesh.</summary>
internal sealed record ServedMesh(MeshHost Host, int Port) : IAsyncDisposable
{
    /// <summary>A client of the served port (see <see cref="MeshTest.Client"/>).</summary>
    public HttpClient Client() => MeshTest.Client(Port);

    public ValueTask DisposeAsync() => Host.DisposeAsync();
}
