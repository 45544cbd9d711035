using Berth.Server;

namespace Berth.Server.Tests;

/// <summary>The one reader of the data plane's request counters, for <c>GET /v1/stats</c> and the autoscaler alike.</summary>
public sealed class MeshRequestCountsTests
{
    // As prometheus-net writes the mesh's counters (MeshMetrics): one series per label set.
    private const string Scrape = """
        # HELP berth_mesh_requests_total Requests answered by a mesh listener, by final status.
        # TYPE berth_mesh_requests_total counter
        berth_mesh_requests_total{service="web",endpoint="http",code="200"} 120
        berth_mesh_requests_total{service="web",endpoint="http",code="503"} 3
        berth_mesh_requests_total{service="web",endpoint="admin",code="200"} 7
        berth_mesh_requests_total{service="api",endpoint="http",code="200"} 5e1
        # TYPE berth_mesh_upstream_requests_total counter
        berth_mesh_upstream_requests_total{service="web",endpoint="http",upstream="web-1",code="200"} 60
        berth_mesh_upstream_requests_total{service="web",endpoint="http",upstream="web-1",code="error"} 2
        berth_mesh_upstream_requests_total{service="web",endpoint="http",upstream="web-2",code="200"} 61
        berth_mesh_upstream_requests_total{service="we\"b",endpoint="http",upstream="x-1",code="200"} 4
        berth_mesh_request_duration_seconds_count{service="web",endpoint="http"} 999
        """;

    [Fact]
    public void Parse_MeshCounters_SumsEachServiceOverEndpointsAndCodesAndEachReplicaOverCodes()
    {
        var counts = MeshRequestCounts.Parse(Scrape);

        Assert.Equal(130, counts.Service("web"));
        Assert.Equal(50, counts.Service("api"));
        Assert.Equal(62, counts.Replica("web", "web-1"));
        Assert.Equal(61, counts.Replica("web", "web-2"));
        Assert.Equal(4, counts.Replica("we\"b", "x-1"));
        Assert.Equal(0, counts.Service("db"));
        Assert.Equal(0, counts.Replica("api", "web-1"));
    }

    [Theory]
    [InlineData(100, 130, 2.0, 15)]
    [InlineData(130, 130, 1.0, 0)]
    [InlineData(500, 30, 3.0, 10)] // a counter that went down (a new data plane) counts from 0, as Prometheus' rate()
    [InlineData(0, 10, 0.0, 0)]
    public void Rate_TwoScrapes_PerSecondAsPrometheus(double before, double after, double seconds, double expected) =>
        Assert.Equal(expected, MeshRequestCounts.Rate(before, after, TimeSpan.FromSeconds(seconds)));
}
