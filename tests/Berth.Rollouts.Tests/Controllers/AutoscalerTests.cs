namespace Berth.Rollouts.Tests.Controllers;

/// <summary>The autoscaler's decisions over the in-memory driver, scripted metrics and a fake clock.</summary>
public sealed class AutoscalerTests : IAsyncLifetime
{
    private readonly ControlPlaneHarness _h = new("berth-hpa-");
    private readonly ScriptedMetrics _metrics = new();
    private Autoscaler _autoscaler = null!;

    public async Task InitializeAsync()
    {
        await _h.StartAsync();
        _autoscaler = new Autoscaler(_h.Plane, _metrics, _h.Time);
    }

    public async Task DisposeAsync() => await _h.DisposeAsync();

    private static Service Api(AutoscalePolicy policy) => new()
    {
        Name = "api", Command = ["api"], Replicas = 1,
        Endpoints = [new Endpoint { Name = "http" }],
        Resources = new Resources { CpuRequest = CpuQuantity.Parse("500m") },
        Autoscale = policy,
    };

    private int Ready => _h.Plane.Replicas.Count(r => r.Service == "api" && r.Phase == ReplicaPhase.Ready);

    private Task ReadyAsync(int n) => Poll.UntilAsync(() =>
    {
        _h.Time.Advance(TimeSpan.FromMilliseconds(100));
        return Ready == n && _h.Plane.Replicas.Count(r => r.Service == "api") == n;
    }, ControlPlaneHarness.Wait, $"{n} Ready api replicas");

    [Theory]
    [InlineData(1, 300, 50, 5, 6)]
    [InlineData(4, 54, 50, 10, 4)]
    [InlineData(4, 44, 50, 10, 4)]
    [InlineData(4, 40, 50, 10, 4)]
    [InlineData(4, 30, 50, 10, 3)]
    [InlineData(3, 0, 50, 10, 1)]
    public void Desired_KubernetesFormula_WithinToleranceKeepsCountElseCeilClamped(int current, double metric, double target, int max, int expected)
    {
        Assert.Equal(Math.Min(expected, max), AutoscaleMath.Desired(current, metric, target, 0.1, 1, max));
    }

    [Fact]
    public async Task Evaluate_CpuAboveTarget_ScalesUpAtOnceAndDownOnlyAfterWindow()
    {
        await _h.Plane.ApplyAsync(new Application { Name = "shop", Services = [Api(new AutoscalePolicy { Min = 1, Max = 5, TargetCpuPercent = 50 })] }, "up", CancellationToken.None);
        await ReadyAsync(1);

        _metrics.Cpu = 75; // 75% of a core = 150% of the 500m request: ceil(1 × 150 / 50) = 3
        var up = Assert.Single(await _autoscaler.EvaluateAsync(CancellationToken.None));
        Assert.Equal((1, 3), (up.From, up.To));
        Assert.Equal("1 → 3 replicas: cpu 150% of the CPU request across 1 ready, target 50% of the CPU request; ceil(1 × 150 / 50) = 3 (min 1, max 5)", up.Message);
        await ReadyAsync(3);
        var e = _h.Store.ListEvents().Last(x => x.Type == RolloutEvents.Autoscaled);
        Assert.Equal(up.Message, e.Message);
        // A count is not a pod template: written into the current revision, as Kubernetes' HPA makes no ReplicaSet.
        Assert.Equal(3, Assert.Single(_h.Store.ListRevisions()).Application.FindService("api")!.Replicas);

        _metrics.Cpu = 2;
        _h.Time.Advance(TimeSpan.FromMinutes(1));
        Assert.Empty(await _autoscaler.EvaluateAsync(CancellationToken.None));
        _h.Time.Advance(TimeSpan.FromMinutes(3.9));
        Assert.Empty(await _autoscaler.EvaluateAsync(CancellationToken.None));
        Assert.Equal(3, _h.Plane.Current!.Application.FindService("api")!.Replicas);

        _h.Time.Advance(TimeSpan.FromMinutes(0.2)); // the 3-replica recommendation is now older than 5 minutes
        var down = Assert.Single(await _autoscaler.EvaluateAsync(CancellationToken.None));
        Assert.Equal((3, 1), (down.From, down.To));
        Assert.Equal("3 → 1 replicas: cpu 4% of the CPU request across 3 ready, target 50% of the CPU request; ceil(3 × 4 / 50) = 1; highest recommendation over the last 5m: 1", down.Message);
        await ReadyAsync(1);
    }

    [Fact]
    public async Task Evaluate_RequestsPerSecondWithinTolerance_NoChangeThenScalesToMax()
    {
        await _h.Plane.ApplyAsync(new Application { Name = "shop", Services = [Api(new AutoscalePolicy { Min = 1, Max = 2, TargetRequestsPerSecond = 100 })] }, "up", CancellationToken.None);
        await ReadyAsync(1);

        _metrics.Rps = 105;
        Assert.Empty(await _autoscaler.EvaluateAsync(CancellationToken.None));
        _metrics.Rps = 450;
        var up = Assert.Single(await _autoscaler.EvaluateAsync(CancellationToken.None));
        Assert.Equal((1, 2), (up.From, up.To));
        Assert.StartsWith("1 → 2 replicas: requests/s per replica 450 across 1 ready, target 100; ceil(1 × 450 / 100) = 2 (min 1, max 2)", up.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Apply_AutoscaledService_KeepsTheAutoscaledCountWithinNewBounds()
    {
        var app = new Application { Name = "shop", Services = [Api(new AutoscalePolicy { Min = 1, Max = 5, TargetCpuPercent = 50 })] };
        await _h.Plane.ApplyAsync(app, "up", CancellationToken.None);
        await ReadyAsync(1);
        _metrics.Cpu = 100; // 200% of the request: ceil(1 × 200 / 50) = 4
        Assert.Equal(4, Assert.Single(await _autoscaler.EvaluateAsync(CancellationToken.None)).To);

        await _h.Plane.ApplyAsync(app, "apply", CancellationToken.None);
        Assert.Equal(4, _h.Plane.Current!.Application.FindService("api")!.Replicas);
        var narrower = app with { Services = [Api(new AutoscalePolicy { Min = 1, Max = 3, TargetCpuPercent = 50 })] };
        await _h.Plane.ApplyAsync(narrower, "apply", CancellationToken.None);
        Assert.Equal(3, _h.Plane.Current!.Application.FindService("api")!.Replicas);
    }

    private sealed class ScriptedMetrics : IAutoscaleMetrics
    {
        public double? Cpu { get; set; }

        public double? Rps { get; set; }

        public ConcurrentQueue<string> Asked { get; } = new();

        public Task<double?> CpuPercentAsync(ReplicaRecord replica, CancellationToken cancellationToken)
        {
            Asked.Enqueue(replica.Id);
            return Task.FromResult(Cpu);
        }

        public Task<double?> RequestsPerSecondAsync(string service, CancellationToken cancellationToken) => Task.FromResult(Rps);
    }
}
