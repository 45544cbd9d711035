
namespace Berth.Server.Tests;

/// <summary>Issue #3: where no cgroup hierarchy is usable the replica still runs, and GET /v1/app says plainly that its limits
/// are not enforced. A real process driver pointed at a cgroup root with nothing in it, a real replica, real HTTP.</summary>
[Collection("real processes")]
public sealed class DriverCapabilitiesApiTests : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("berth-caps-").FullName;
    private string NoCgroups => Path.Combine(_dir, "no-cgroups-here");
    private StateStore _store = null!;
    private ControlPlane _plane = null!;
    private ProbeExecutor _prober = null!;
    private ApiServer _server = null!;
    private HttpClient _http = null!;

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(NoCgroups);
        _store = StateStore.Open(_dir);
        _prober = new ProbeExecutor();
        var driver = new ProcessDriver(new ProcessDriverOptions { StateRoot = Path.Combine(_dir, "runtime"), CgroupRoot = NoCgroups });
        _plane = new ControlPlane(new OrchestratorOptions { StateDirectory = _dir }, _store, [driver], new RoutingTable(), _prober);
        await _plane.StartAsync(CancellationToken.None);
        await _plane.ApplyAsync(new Application
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
        _server = await ApiServer.StartAsync(_plane, new ApiServerOptions { StateDirectory = _dir }, CancellationToken.None);
        _http = new HttpClient { BaseAddress = _server.Url };
        _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", File.ReadAllText(Path.Combine(_dir, "api-token")));
    }

    public async Task DisposeAsync()
    {
        _http.Dispose();
        await _server.DisposeAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await _plane.DownAsync(cts.Token);
        await _plane.DisposeAsync();
        _prober.Dispose();
        _store.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    private string Expected => $"limits not enforced for api (cpu 500m, memory 256Mi): no cgroup hierarchy at {NoCgroups}; replicas run without CPU and memory limits; {LimitsCheck.ProcessFix}";

    [Fact]
    public async Task GetApp_ProcessDriverWithoutCgroups_ListsDriverAndWarnsForTheLimitedServiceWhileItRuns()
    {
        await Poll.UntilAsync(() => _plane.Replicas.Count(r => r.Phase is ReplicaPhase.Running or ReplicaPhase.Ready) == 2, TimeSpan.FromSeconds(60), "both replicas running");

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
