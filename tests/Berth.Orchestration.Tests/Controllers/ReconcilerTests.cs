using Berth.Core.Model;
using Berth.Orchestration.Controllers;
using Berth.Orchestration.State;
using Berth.Runtime;

namespace Berth.Orchestration.Tests.Controllers;

/// <summary>The reconciler's decisions, called directly: no driver, no loop, no clock.</summary>
public sealed class ReconcilerTests
{
    private static readonly DateTimeOffset T0 = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    private static ReplicaRecord R(string id, ReplicaPhase phase, int secondsOld = 0, string service = "api") =>
        new() { Id = id, Service = service, Phase = phase, CreatedAt = T0.AddSeconds(-secondsOld) };

    private static ReplicaHandle Handle(string id) => new() { ReplicaId = id, App = "shop", Service = "api", Kind = RuntimeKind.Process };

    [Fact]
    public void Converge_TooMany_StopsLeastUsefulThenNewest()
    {
        var fresh = new[]
        {
            R("ready-old", ReplicaPhase.Ready, 30), R("ready-new", ReplicaPhase.Ready, 10), R("backoff", ReplicaPhase.BackOff, 50),
            R("pending", ReplicaPhase.Pending, 5), R("running", ReplicaPhase.Running, 40),
        };

        var plan = Reconciler.Converge(want: 2, fresh, new RolloutStep(2, []));

        Assert.Equal(0, plan.Create);
        Assert.Equal(["pending", "backoff", "running"], plan.Terminate.Select(r => r.Id));
    }

    [Fact]
    public void Converge_TooFew_CreatesUpToTheRolloutTargetAndRemovesTheOldItLetsGo()
    {
        var old = R("old", ReplicaPhase.Ready, 100);

        var plan = Reconciler.Converge(want: 3, [R("a", ReplicaPhase.Ready)], new RolloutStep(2, [old]));

        Assert.Equal(1, plan.Create);
        Assert.Equal(["old"], plan.Terminate.Select(r => r.Id));
    }

    [Fact]
    public void Counts_StoppingToStartAgain_StillCounts()
    {
        Assert.True(Reconciler.Counts(R("a", ReplicaPhase.Terminating), StopIntent.Restart));
        Assert.True(Reconciler.Counts(R("a", ReplicaPhase.Terminating), StopIntent.Unhealthy));
        Assert.False(Reconciler.Counts(R("a", ReplicaPhase.Terminating), StopIntent.None));
        Assert.False(Reconciler.Counts(R("a", ReplicaPhase.Ready), StopIntent.Remove));
        Assert.True(Reconciler.Counts(R("a", ReplicaPhase.Ready), StopIntent.None));
    }

    [Fact]
    public void Plan_BackOffsAndProbes_RestartsWhatIsDueAndWakesForTheRest()
    {
        var probe = new Probe { Kind = ProbeKind.Http, Period = TimeSpan.FromSeconds(10), InitialDelay = TimeSpan.FromSeconds(3) };
        var dueProbe = new ProbeTracker(probe, ProbeRole.Readiness, T0.AddSeconds(-5));
        var laterProbe = new ProbeTracker(probe, ProbeRole.Readiness, T0.AddSeconds(-1)); // due at T0+2s
        var replicas = new[]
        {
            R("late", ReplicaPhase.Pending, 1), R("early", ReplicaPhase.Pending, 9),
            R("due", ReplicaPhase.BackOff) with { NextRetryAt = T0 },
            R("waiting", ReplicaPhase.BackOff) with { NextRetryAt = T0.AddSeconds(4) },
            R("busy", ReplicaPhase.BackOff) with { NextRetryAt = T0.AddSeconds(-1) },
            R("probed", ReplicaPhase.Running) with { Handle = Handle("probed") },
            R("probed-later", ReplicaPhase.Ready) with { Handle = Handle("probed-later") },
        };
        var runtime = replicas.ToDictionary(r => r.Id, _ => new ReplicaRuntime());
        runtime["busy"].Busy = true;
        runtime["probed"].Probes.Add(dueProbe);
        runtime["probed-later"].Probes.Add(laterProbe);

        var plan = Reconciler.Plan(replicas, runtime, T0, T0.AddSeconds(1));

        Assert.Equal(["early", "late"], plan.Schedule);
        Assert.Equal(["due"], plan.Restart);
        Assert.Equal([("probed", dueProbe)], plan.Probe);
        Assert.Equal(T0.AddSeconds(1), plan.NextWake);
        Assert.Equal(T0.AddSeconds(2), Reconciler.Plan(replicas, runtime, T0, T0.AddSeconds(5)).NextWake);
    }

    [Fact]
    public void VictimOrder_Rank_OneRankingForScaleDownAndRollouts()
    {
        var order = new[] { ReplicaPhase.Ready, ReplicaPhase.Running, ReplicaPhase.Starting, ReplicaPhase.Failed, ReplicaPhase.BackOff, ReplicaPhase.Pending }
            .Select(p => R(p.ToString(), p)).OrderBy(VictimOrder.Rank).Select(r => r.Phase);

        Assert.Equal([ReplicaPhase.Pending, ReplicaPhase.BackOff, ReplicaPhase.Failed, ReplicaPhase.Starting, ReplicaPhase.Running, ReplicaPhase.Ready], order);
    }
}
