using Berth.Testing.ControlPlanes;

namespace Berth.Server.Tests;

/// <summary>Issue #3: where no cgroup hierarchy is usable the replica still runs, and GET /v1/app says plainly that its limits
/// are not enforced. A real process driver pointed at a cgroup root with nothing in it, a real replica, real HTTP.</summary>
[Collection("real processes")]
public sealed class DriverCapabilitiesApiTests : IAsyncLifetime
{
    // The process driver's folder and the empty cgroup root; the harness keeps the plane's state in a folder of its own.
    private readonly string _dir = Directory.CreateTempSubdirectory("berth-caps-").FullName;
    private readonly ProbeExecutor _prober = new();
    private ControlPlaneHarness _h = null!;
    private ApiServer _server = null!;
    private HttpClient _http = null!;

    private string NoCgroups => Path.Combine(_dir, "no-cgroups-here");

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(NoCgroups);
        var driver = new ProcessDriver(new ProcessDriverOptions { StateRoot = Path.Combine(_dir, "runtime"), CgroupRoot = NoCgroups });
        _h = await new ControlPlaneHarness("berth-caps-plane-", drivers: [driver], routes: new RoutingTable(), prober: _prober, realClock: true).StartAsync();
        await _h.Plane.ApplyAsync(new Application
        {
            Name = "shop",
            Services =
            [
                new Service
                {
                    Name = "api", Command = ["perl", "-e", "sleep 600"], StopGracePeriod = TimeSpan.FromSeconds(1),
                    Resources = new Resources { CpuLimit = CpuQuantity.Parse("500m"), MemoryLimit = ByteSize.Parse("256Mi") },
                },
                new Service { Name = "free", Command = ["perl", "-e", "sleep 600"], StopGracePeriod = TimeSpan.FromSeconds(1) },
            ],
        }, "up", CancellationToken.None);
        _server = await ApiServer.StartAsync(_h.Plane, new ApiServerOptions { StateDirectory = _h.Directory }, CancellationToken.None);
        _http = new HttpClient { BaseAddress = _server.Url };
        _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", File.ReadAllText(Path.Combine(_h.Directory, "api-token")));
    }

    public async Task DisposeAsync()
    {
        _http.Dispose();
        await _server.DisposeAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await _h.Plane.DownAsync(cts.Token);
        await _h.DisposeAsync();
        _prober.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    private string Expected => $"limits not enforced for api (cpu 500m, memory 256Mi): no cgroup hierarchy at {NoCgroups}; replicas run without CPU and memory limits; {LimitsCheck.ProcessFix}";

    [Fact]
    public async Task GetApp_ProcessDriverWithoutCgroups_ListsDriverAndWarnsForTheLimitedServiceWhileItRuns()
    {
        await Poll.UntilAsync(() => _h.Plane.Replicas.Count(r => r.Phase is ReplicaPhase.Running or ReplicaPhase.Ready) == 2, TimeSpan.FromSeconds(60), "both replicas running");

        using var doc = JsonDocument.Parse(await _http.GetStringAsync("/v1/app"));

        var driver = Assert.Single(doc.RootElement.GetProperty("drivers").EnumerateArray());
        Assert.Equal("process", driver.GetProperty("kind").GetString());
        Assert.True(driver.GetProperty("available").GetBoolean());
        Assert.False(driver.GetProperty("cpuLimitsEnforced").GetBoolean());
        Assert.False(driver.GetProperty("memoryLimitsEnforced").GetBoolean());
        Assert.Equal($"none: no cgroup hierarchy at {NoCgroups}; replicas run without CPU and memory limits", driver.GetProperty("limitsMechanism").GetString());
        var warning = Assert.Single(doc.RootElement.GetProperty("warnings").EnumerateArray());
        Assert.Equal("api", warning.GetProperty("service").GetString());
        Assert.Equal("process", warning.GetProperty("driver").GetString());
        Assert.Equal(Expected, warning.GetProperty("message").GetString());
    }

    [Fact]
    public async Task GetEvents_ProcessDriverWithoutCgroups_OneLimitsEventForTheLimitedService()
    {
        using var doc = JsonDocument.Parse(await _http.GetStringAsync("/v1/events?service=api"));

        var limits = doc.RootElement.EnumerateArray().Where(e => e.GetProperty("type").GetString() == "limits-not-enforced").ToList();
        Assert.Equal(Expected, Assert.Single(limits).GetProperty("message").GetString());
    }
}
