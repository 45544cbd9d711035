using Berth.Core.Model;
using Berth.Mesh.Tests.Support;

namespace Berth.Mesh.Tests.Functional;

/// <summary>
/// A request that kills the replica serving it (a query of death), against real replica processes: each delivery is
/// counted by the replica itself before it dies, so the test sees every send the mesh made, including any re-send.
/// </summary>
[Collection(SerialCollection.Name)]
public sealed class QueryOfDeathTests
{
    private const string Poison = "/poison";

    [Fact]
    public async Task Proxy_PoisonGetUnderDefaultPolicy_KillsExactlyOneReplica()
    {
        // Pooled, reused upstream connections: the case where an HTTP client re-sends a request on its own.
        await PoisonThreeReplicasAsync(MeshPolicy.Default with { LoadBalancing = LoadBalancing.RoundRobin }, async (client, delivered, dead) =>
        {
            Assert.Equal(1, delivered);
            Assert.Equal(1, dead);
            for (var i = 0; i < 6; i++)
            {
                Assert.Equal(200, (await MeshTest.GetAsync(client)).Status);
            }
        });
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    public async Task Proxy_PoisonGetWithResetRetriesConfigured_ExactlyOneDeliveryPerAttempt(int retries)
    {
        var policy = MeshTest.Bare() with
        {
            Retries = new RetryPolicy { Attempts = retries, On = ["connect-failure", "reset"], BackoffBase = TimeSpan.FromMilliseconds(1), BackoffMax = TimeSpan.FromMilliseconds(2) },
        };

        await PoisonThreeReplicasAsync(policy, (_, delivered, dead) =>
        {
            Assert.Equal(retries + 1, delivered);
            Assert.Equal(retries + 1, dead);
            return Task.CompletedTask;
        });
    }

    [Fact]
    public async Task Proxy_PoisonPostWithResetRetriesConfigured_NotRetriedBecauseNotIdempotent()
    {
        using var r1 = await UpstreamProcess.StartAsync("r1", Poison);
        using var r2 = await UpstreamProcess.StartAsync("r2", Poison);
        await using var mesh = new MeshHost();
        await mesh.StartAsync(CancellationToken.None);
        var port = Ports.Free();
        var policy = MeshTest.Bare() with { Retries = new RetryPolicy { Attempts = 2, On = ["connect-failure", "reset"] } };
        await mesh.UpdateAsync(MeshTest.Route(port, policy, r1.Upstream, r2.Upstream), CancellationToken.None);
        using var client = MeshTest.Client(port);

        using var posted = await client.PostAsync(Poison, new StringContent("order-17"));

        Assert.Equal(502, (int)posted.StatusCode);
        Assert.Equal((1, 1), await SettledAsync([r1, r2]));
        using var admin = new HttpClient { BaseAddress = mesh.AdminAddress };
        var metrics = await admin.GetStringAsync("/metrics");
        Assert.Matches("berth_mesh_retries_skipped_total\\{service=\"api\",endpoint=\"http\",why=\"method\"\\} 1", metrics);
        Assert.Matches("berth_mesh_upstream_requests_total\\{service=\"api\",endpoint=\"http\",upstream=\"r[12]\",code=\"reset\"\\} 1", metrics);
    }

    [Fact]
    public async Task Proxy_ReplicaGoneBeforeConnect_LabelledConnectFailureAndRetriedForPost()
    {
        using var dead = await UpstreamProcess.StartAsync("dead");
        using var live = await UpstreamProcess.StartAsync("live");
        dead.Kill();
        await using var mesh = new MeshHost();
        await mesh.StartAsync(CancellationToken.None);
        var port = Ports.Free();
        var policy = MeshTest.Bare() with { Retries = new RetryPolicy { Attempts = 1, On = ["connect-failure"] } };
        await mesh.UpdateAsync(MeshTest.Route(port, policy, dead.Upstream, live.Upstream), CancellationToken.None);
        using var client = MeshTest.Client(port);

        for (var i = 0; i < 4; i++)
        {
            using var posted = await client.PostAsync("/", new StringContent("order-17"));
            Assert.Equal(200, (int)posted.StatusCode);
            Assert.Equal("live", await posted.Content.ReadAsStringAsync());
        }

        using var admin = new HttpClient { BaseAddress = mesh.AdminAddress };
        var metrics = await admin.GetStringAsync("/metrics");
        var retried = Value(metrics, "berth_mesh_retries_total{service=\"api\",endpoint=\"http\",reason=\"connect-failure\"}");
        Assert.True(retried >= 1, "expected at least one POST to meet the dead replica first");
        Assert.Equal(retried, Value(metrics, "berth_mesh_upstream_requests_total{service=\"api\",endpoint=\"http\",upstream=\"dead\",code=\"connect-failure\"}"));
        Assert.Matches("berth_mesh_upstream_requests_total\\{service=\"api\",endpoint=\"http\",upstream=\"dead\",code=\"reset\"\\} 0", metrics);
    }

    /// <summary>Three poisonable replica processes behind a mesh listener with <paramref name="policy"/>: the poison GET after a
    /// warm-up, then <paramref name="check"/> with the client, the poison's deliveries and the dead replicas once settled (the
    /// replicas and the mesh still up).</summary>
    private static async Task PoisonThreeReplicasAsync(MeshPolicy policy, Func<HttpClient, int, int, Task> check)
    {
        using var r1 = await UpstreamProcess.StartAsync("r1", Poison);
        using var r2 = await UpstreamProcess.StartAsync("r2", Poison);
        using var r3 = await UpstreamProcess.StartAsync("r3", Poison);
        await using var mesh = await MeshTest.ServeAsync(policy, r1.Upstream, r2.Upstream, r3.Upstream);
        using var client = mesh.Client();

        await PoisonAfterWarmUpAsync(client);
        var (delivered, dead) = await SettledAsync([r1, r2, r3]);

        await check(client, delivered, dead);
    }

    /// <summary>Nine GETs over the pooled upstream connections (each 200), then the poison GET: a 502 upstream-reset.</summary>
    private static async Task PoisonAfterWarmUpAsync(HttpClient client)
    {
        for (var i = 0; i < 9; i++)
        {
            Assert.Equal(200, (await MeshTest.GetAsync(client)).Status);
        }

        var (status, _, response) = await MeshTest.GetAsync(client, Poison);

        Assert.Equal(502, status);
        Assert.Equal("upstream-reset", response.Headers.GetValues("x-berth-error").Single());
    }

    private static double Value(string metrics, string series)
    {
        var line = metrics.Split('\n').SingleOrDefault(l => l.StartsWith(series + " ", StringComparison.Ordinal))
            ?? throw new Xunit.Sdk.XunitException($"no series {series} in:\n{metrics}");
        return double.Parse(line[(series.Length + 1)..], System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// Poison deliveries and dead replicas once every dead replica's line has been read (each prints before it dies, and
    /// the mesh answered only after seeing each death, so nothing more can arrive). Polls with a 10 s deadline.
    /// </summary>
    private static async Task<(int Delivered, int Dead)> SettledAsync(UpstreamProcess[] replicas)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        while (true)
        {
            var dead = replicas.Count(r => r.HasExited);
            var delivered = replicas.Sum(r => r.Deliveries(Poison));
            if ((dead > 0 && dead == delivered) || deadline.IsCancellationRequested)
            {
                return (delivered, dead);
            }

            await Task.Delay(20, CancellationToken.None);
        }
    }
}
