
namespace Berth.Rollouts.Tests.Acceptance;

/// <summary>The autoscaler against real processes that burn CPU per request, measured by the real process driver, under
/// a bounded load through the real mesh. The stabilization window runs on a fake clock (waiting 5 real minutes would be
/// slow); CPU is real.</summary>
[Collection("real processes")]
public sealed class AutoscalerAcceptanceTests : IAsyncLifetime
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(90);
    private readonly FakeTimeProvider _clock = new(DateTimeOffset.UtcNow);
    private MeshedPlane _m = null!;

    public async Task InitializeAsync() => _m = await MeshedPlane.StartAsync("berth-autoscaler-");

    public Task DisposeAsync() => _m.DisposeAsync().AsTask();

    private int Desired => _m.Plane.Current!.Application.FindService("burn")!.Replicas;

    private int Ready => _m.Plane.Replicas.Count(r => r.Service == "burn" && r.Phase == ReplicaPhase.Ready);

    [Fact]
    public async Task Evaluate_CpuBurningLoad_ScalesOneUpToMaxThenDownAfterWindowOnceLoadStops()
    {
        var burn = new Service
        {
            Name = "burn",
            Command = TestHttpServer.Command,
            Env = ImmutableSortedDictionary<string, string>.Empty.Add("BURN_MS", "40"),
            Endpoints = [new Endpoint { Name = "http" }],
            Readiness = new Probe { Kind = ProbeKind.Http, Path = "/healthz", Period = TimeSpan.FromMilliseconds(500) },
            Resources = new Resources { CpuRequest = CpuQuantity.Parse("100m") },
            Autoscale = new AutoscalePolicy { Min = 1, Max = 3, TargetCpuPercent = 50 },
            StopGracePeriod = TimeSpan.FromSeconds(2),
        };
        await _m.Plane.ApplyAsync(new Application { Name = "hpaacc", Services = [burn] }, "up", CancellationToken.None);
        await Poll.UntilAsync(() => Ready == 1, Wait, "1 Ready burn replica");
        var autoscaler = new Autoscaler(_m.Plane, new DriverAutoscaleMetrics(_m.Plane), _clock);

        // Bounded load: two clients, at most 5 000 requests or 2 minutes; each request spins the replica's CPU for 40 ms.
        var load = LoopbackLoad.Start(_m.Plane.StablePorts[("burn", "http")], new LoopbackLoadOptions { Pace = TimeSpan.Zero, MaxRequests = 5_000, MaxTime = TimeSpan.FromMinutes(2) });
        var decisions = new List<AutoscaleDecision>();
        await Poll.UntilAsync(async () =>
        {
            decisions.AddRange(await autoscaler.EvaluateAsync(CancellationToken.None));
            _clock.Advance(TimeSpan.FromSeconds(15));
            return Desired == 3;
        }, Wait, "scaled up to max 3 under the burning load");
        Assert.False(load.Capped, $"the load hit its cap ({load.Total} requests) before the scale-up, which then did not happen under load");
        await Poll.UntilAsync(() => Ready == 3, Wait, "3 Ready burn replicas");
        Assert.All(decisions, d => Assert.True(d.To > d.From && d.Metric == "cpu" && d.Value > 55, d.Message));

        await load.StopAsync();
        await load.DisposeAsync();
        var stoppedAt = _clock.GetUtcNow();
        var down = new List<AutoscaleDecision>();
        var passes = 0;
        var firstDownAt = DateTimeOffset.MinValue;
        try
        {
            await Poll.UntilAsync(async () =>
            {
                passes++;
                var made = await autoscaler.EvaluateAsync(CancellationToken.None);
                if (made.Count > 0 && down.Count == 0)
                {
                    firstDownAt = _clock.GetUtcNow();
                }

                down.AddRange(made);
                _clock.Advance(TimeSpan.FromSeconds(30));
                return Desired == 1;
            }, Wait, "scaled back down to 1 once the load stopped and the window passed");
        }
        catch (TimeoutException e)
        {
            var metrics = new DriverAutoscaleMetrics(_m.Plane);
            var cpu = new List<string>();
            foreach (var r in _m.Plane.Replicas)
            {
                cpu.Add($"{r.Id}:{r.Phase}:{await metrics.CpuPercentAsync(r, CancellationToken.None)}");
            }

            throw new TimeoutException($"{e.Message}; cpu now {string.Join(", ", cpu)}; desired {Desired}; {passes} passes over {_clock.GetUtcNow() - stoppedAt}; decisions {string.Join(" | ", decisions.Concat(down).Select(d => d.Message))}", e);
        }

        // Down only once the window has passed since the last high recommendation (taken one 15 s pass before the stop);
        // it may go in steps when a pass during the wind-down recommended an intermediate count.
        Assert.True(firstDownAt - stoppedAt >= TimeSpan.FromMinutes(5) - TimeSpan.FromSeconds(15), $"first scale-down {firstDownAt - stoppedAt} after the load stopped");
        Assert.All(down, d => Assert.True(d.To < d.From && d.Metric == "cpu", d.Message));
        Assert.Equal(1, down[^1].To);
        Assert.Contains("highest recommendation over the last 5m: ", down[0].Message, StringComparison.Ordinal);
        Assert.Equal(decisions.Count + down.Count, _m.Store.ListEvents().Count(e => e.Type == RolloutEvents.Autoscaled));
        await Poll.UntilAsync(() => _m.Plane.Replicas.Count(r => r.Service == "burn") == 1, Wait, "back to one burn replica");
    }
}
