
namespace Berth.Mesh.Tests.Support;

/// <summary>Builds routes and clients for functional tests.</summary>
internal static class MeshTest
{
    public static ServiceRoute Route(int port, MeshPolicy policy, params Upstream[] upstreams) =>
        new("api", new Endpoint { Name = "http", Port = port }, policy, [.. upstreams]);

    public static ServiceRoute TcpRoute(int port, MeshPolicy policy, params Upstream[] upstreams) =>
        new("db", new Endpoint { Name = "tcp", Port = port, Protocol = EndpointProtocol.Tcp }, policy, [.. upstreams]);

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
    public static async Task<ServedMesh> ServeAsync(Upstream upstream, MeshHostOptions? options = null, MeshPolicy? policy = null)
    {
        var mesh = new MeshHost(options);
        var port = Ports.Free();
        await mesh.UpdateAsync(Route(port, policy ?? MeshPolicy.Default, upstream), CancellationToken.None);
        return new ServedMesh(mesh, port);
    }

    /// <summary>A real mesh serving route <c>api</c> under <paramref name="policy"/> to <paramref name="upstreams"/> on a free
    /// loopback port.</summary>
    public static async Task<ServedMesh> ServeAsync(MeshPolicy policy, params Upstream[] upstreams)
    {
        var mesh = new MeshHost();
        var port = Ports.Free();
        await mesh.UpdateAsync(Route(port, policy, upstreams), CancellationToken.None);
        return new ServedMesh(mesh, port);
    }

    /// <summary>A real mesh serving the TCP route <c>db</c> under <paramref name="policy"/> to <paramref name="upstreams"/> on a
    /// free loopback port.</summary>
    public static async Task<ServedMesh> ServeTcpAsync(MeshPolicy policy, params Upstream[] upstreams)
    {
        var mesh = new MeshHost();
        var port = Ports.Free();
        await mesh.UpdateAsync(TcpRoute(port, policy, upstreams), CancellationToken.None);
        return new ServedMesh(mesh, port);
    }

    public static ImmutableArray<TrafficSplit> Split(params TrafficSplit[] splits) => [.. splits];
}

/// <summary>A real mesh serving one route on <see cref="Port"/>; disposing it stops the mesh.</summary>
internal sealed record ServedMesh(MeshHost Host, int Port) : IAsyncDisposable
{
    /// <summary>A client of the served port (see <see cref="MeshTest.Client"/>).</summary>
    public HttpClient Client() => MeshTest.Client(Port);

    public ValueTask DisposeAsync() => Host.DisposeAsync();
}
