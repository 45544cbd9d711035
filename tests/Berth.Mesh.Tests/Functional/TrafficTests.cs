
namespace Berth.Mesh.Tests.Functional;

/// <summary>Canary splits, replica loss under load, tracing and metrics, over real sockets.</summary>
public sealed partial class TrafficTests
{
    [Fact]
    public async Task Proxy_Split90To10_LandsWithin2PercentOver10000Requests()
    {
        await using var stable = await TestUpstream.StartAsync("v1");
        await using var canary = await TestUpstream.StartAsync("v2");
        var policy = MeshTest.Bare() with
        {
            Split = MeshTest.Split(new TrafficSplit { Version = "1", Weight = 90 }, new TrafficSplit { Version = "2", Weight = 10 }),
        };
        await using var mesh = await MeshTest.ServeAsync(policy, stable.Upstream(revision: 1), canary.Upstream(revision: 2));
        using var client = mesh.Client();

        const int total = 10_000;
        var next = 0;
        var toCanary = 0;
        var deadline = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, 8).Select(async _ =>
        {
            while (Interlocked.Increment(ref next) <= total && deadline.Elapsed < TimeSpan.FromSeconds(90))
            {
                var body = await client.GetStringAsync("/");
                if (body == "v2")
                {
                    Interlocked.Increment(ref toCanary);
                }
            }
        }));

        Assert.Equal(total, stable.Requests + canary.Requests);
        var share = (double)toCanary / total;
        Assert.InRange(share, 0.08, 0.12);
    }

    [Fact]
    public async Task Proxy_SplitHeaderMatch_SendsMatchingRequestsToThatVersionOnly()
    {
        await using var stable = await TestUpstream.StartAsync("v1");
        await using var canary = await TestUpstream.StartAsync("v2");
        var policy = MeshTest.Bare() with
        {
            Split = MeshTest.Split(
                new TrafficSplit { Version = "track=stable", Weight = 100 },
                new TrafficSplit { Version = "track=canary", Weight = 0, HeaderName = "X-Canary", HeaderValue = "true" }),
        };
        var labels = (string track) => System.Collections.Immutable.ImmutableSortedDictionary<string, string>.Empty.Add("track", track);
        await using var mesh = await MeshTest.ServeAsync(policy, stable.Upstream() with { Labels = labels("stable") }, canary.Upstream() with { Labels = labels("canary") });
        using var client = mesh.Client();

        for (var i = 0; i < 20; i++)
        {
            Assert.Equal("v2", (await MeshTest.GetAsync(client, "/", r => r.Headers.Add("X-Canary", "true"))).Body);
            Assert.Equal("v1", (await MeshTest.GetAsync(client)).Body);
        }
    }

    [Fact]
    public async Task Proxy_NoTraceparent_StartsOneAndContinuesAnIncomingTrace()
    {
        await using var a = await TestUpstream.StartAsync("a");
        await using var mesh = await MeshTest.ServeAsync(MeshTest.Bare(), a.Upstream());
        using var client = mesh.Client();

        await MeshTest.GetAsync(client);
        const string incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        await MeshTest.GetAsync(client, "/", r => r.Headers.Add("traceparent", incoming));

        var received = a.Received.Select(h => h["traceparent"].ToString()).ToArray();
        Assert.Matches(TraceParent(), received[0]);
        Assert.Matches(TraceParent(), received[1]);
        Assert.StartsWith("00-4bf92f3577b34da6a3ce929d0e0e4736-", received[1]);
        Assert.NotEqual(incoming, received[1]);
        Assert.EndsWith("-01", received[1]);
    }

    [Fact]
    public async Task Metrics_AfterTraffic_ExposesRequestsLatencyRetriesEjectionsBreakerAndConnections()
    {
        await using var a = await TestUpstream.StartAsync("a");
        var dead = new Berth.Core.Routing.Upstream("dead", "127.0.0.1", Ports.Free(), 1);
        await using var mesh = new MeshHost();
        await mesh.StartAsync(CancellationToken.None);
        var port = Ports.Free();
        await mesh.UpdateAsync(MeshTest.Route(port, MeshPolicy.Default with { LoadBalancing = LoadBalancing.RoundRobin }, a.Upstream(), dead), CancellationToken.None);
        using var client = MeshTest.Client(port);
        for (var i = 0; i < 20; i++)
        {
            await client.GetStringAsync("/");
        }

        using var admin = new HttpClient { BaseAddress = mesh.AdminAddress };
        var text = await admin.GetStringAsync("/metrics");

        Assert.Equal("127.0.0.1", mesh.AdminAddress!.Host);
        Assert.Contains("berth_mesh_requests_total{service=\"api\",endpoint=\"http\",code=\"200\"} 20", text);
        Assert.Contains("berth_mesh_upstream_requests_total{service=\"api\",endpoint=\"http\",upstream=\"a\",code=\"200\"} 20", text);
        Assert.Contains("berth_mesh_request_duration_seconds_bucket{service=\"api\",endpoint=\"http\",le=\"+Inf\"} 20", text);
        Assert.Matches("berth_mesh_retries_total\\{service=\"api\",endpoint=\"http\",reason=\"connect-failure\"\\} [1-9]", text);
        Assert.Contains("berth_mesh_ejections_total{service=\"api\",endpoint=\"http\",upstream=\"dead\"} 1", text);
        Assert.Contains("berth_mesh_upstream_ejected{service=\"api\",endpoint=\"http\",upstream=\"dead\"} 1", text);
        Assert.Contains("berth_mesh_circuit_state{service=\"api\",endpoint=\"http\",scope=\"service\",upstream=\"\"} 0", text);
        Assert.Contains("berth_mesh_open_connections{service=\"api\",endpoint=\"http\"} 1", text);
        Assert.Equal(HttpStatusCode.NotFound, (await admin.GetAsync("/nope")).StatusCode);
    }

    [Fact]
    public async Task AccessLog_On_LogsOneLinePerRequestWithoutTheQueryString()
    {
        await using var a = await TestUpstream.StartAsync("a");
        var logs = new CapturingLoggerFactory();
        await using var mesh = new MeshHost(new MeshHostOptions { LoggerFactory = logs });
        var port = Ports.Free();
        await mesh.UpdateAsync(MeshTest.Route(port, MeshTest.Bare() with { AccessLog = true }, a.Upstream()), CancellationToken.None);
        using var client = MeshTest.Client(port);

        await MeshTest.GetAsync(client, "/orders/7?token=s3cret");

        // The line is written once the exchange is over, which may be just after the client has read the answer.
        await Poll.UntilAsync(() => logs.Lines.Any(l => l.EventId == 6007), TimeSpan.FromSeconds(20), "the access log line");
        var line = Assert.Single(logs.Lines, l => l.EventId == 6007).Message;
        Assert.StartsWith("GET /orders/7 200 a ", line);
        Assert.Contains("attempts=1 traceparent=00-", line);
        Assert.DoesNotContain("s3cret", line);
    }

    [Fact]
    public async Task Metrics_UpstreamLeavesRoute_ItsSeriesAreDropped()
    {
        await using var a = await TestUpstream.StartAsync("a");
        await using var b = await TestUpstream.StartAsync("b");
        await using var mesh = new MeshHost();
        await mesh.StartAsync(CancellationToken.None);
        var port = Ports.Free();
        await mesh.UpdateAsync(MeshTest.Route(port, MeshTest.Bare(), a.Upstream(), b.Upstream()), CancellationToken.None);
        using var client = MeshTest.Client(port);
        for (var i = 0; i < 4; i++)
        {
            await client.GetStringAsync("/");
        }

        using var admin = new HttpClient { BaseAddress = mesh.AdminAddress };
        Assert.Contains("upstream=\"b\"", await admin.GetStringAsync("/metrics"));

        await mesh.UpdateAsync(MeshTest.Route(port, MeshTest.Bare(), a.Upstream()), CancellationToken.None);

        var text = await admin.GetStringAsync("/metrics");
        Assert.DoesNotContain("upstream=\"b\"", text);
        Assert.Contains("upstream=\"a\"", text);
    }

    [GeneratedRegex("^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")]
    private static partial Regex TraceParent();
}
