using Berth.Core.Model;
using Berth.Core.Probing;
using Berth.Orchestration.Controllers;

namespace Berth.Orchestration.Tests.Controllers;

public sealed class RestartBackoffTests
{
    [Fact]
    public void Delay_ConsecutiveFailures_ImmediateThenOneSecondDoublingToFiveMinutes()
    {
        var delays = Enumerable.Range(0, 12).Select(n => RestartBackoff.Delay(RestartPolicy.Default, n).TotalSeconds);
        Assert.Equal([0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300], delays);
        Assert.Equal(TimeSpan.FromMinutes(5), RestartBackoff.Delay(RestartPolicy.Default, 10_000));
    }

    [Fact]
    public void StreakAfterRun_TenMinutesClean_ResetsToZero()
    {
        Assert.Equal(5, RestartBackoff.StreakAfterRun(RestartPolicy.Default, 5, TimeSpan.FromMinutes(9.9)));
        Assert.Equal(0, RestartBackoff.StreakAfterRun(RestartPolicy.Default, 5, TimeSpan.FromMinutes(10)));
    }

    [Theory]
    [InlineData(RestartMode.Always, false, true)]
    [InlineData(RestartMode.Always, true, true)]
    [InlineData(RestartMode.OnFailure, false, false)]
    [InlineData(RestartMode.OnFailure, true, true)]
    [InlineData(RestartMode.Never, true, false)]
    public void ShouldRestart_ByMode_FollowsPolicy(RestartMode mode, bool failed, bool expected) =>
        Assert.Equal(expected, RestartBackoff.ShouldRestart(mode, failed));
}

public sealed class ProbeTrackerTests
{
    private static readonly DateTimeOffset T0 = DateTimeOffset.UnixEpoch;

    [Fact]
    public void Record_ReadinessNeedsSuccessThreshold_ThenFailsAfterFailureThreshold()
    {
        var probe = new Probe { Kind = ProbeKind.Http, InitialDelay = TimeSpan.FromSeconds(3), Period = TimeSpan.FromSeconds(2), SuccessThreshold = 2, FailureThreshold = 3 };
        var t = new ProbeTracker(probe, ProbeRole.Readiness, T0);
        Assert.False(t.IsDue(T0.AddSeconds(2.9)));
        Assert.True(t.IsDue(T0.AddSeconds(3)));
        Assert.Equal(ProbeTransition.None, t.Record(true, "ok", T0.AddSeconds(3)));
        Assert.Equal(T0.AddSeconds(5), t.NextDue);
        Assert.Equal(ProbeTransition.Passed, t.Record(true, "ok", T0.AddSeconds(5)));
        Assert.Equal(ProbeTransition.None, t.Record(false, "500", T0.AddSeconds(7)));
        Assert.Equal(ProbeTransition.None, t.Record(false, "500", T0.AddSeconds(9)));
        Assert.True(t.Passing);
        Assert.Equal(ProbeTransition.Failed, t.Record(false, "500", T0.AddSeconds(11)));
        Assert.False(t.Passing);
    }

    [Fact]
    public void Record_ReadinessNeverPassed_RetriesFailuresSoonerThenKeepsThePeriod()
    {
        var t = new ProbeTracker(new Probe { Period = TimeSpan.FromSeconds(5) }, ProbeRole.Readiness, T0);
        t.Record(false, "refused", T0);
        Assert.Equal(T0 + ProbeTracker.FirstReadyRetry, t.NextDue);
        t.Record(true, "ok", T0.AddSeconds(1));
        Assert.Equal(T0.AddSeconds(6), t.NextDue);
        t.Record(false, "500", T0.AddSeconds(6));
        Assert.Equal(T0.AddSeconds(11), t.NextDue);
    }

    [Fact]
    public void Record_LivenessStartsPassing_FailureInBetweenResetsTheCount()
    {
        var t = new ProbeTracker(new Probe { FailureThreshold = 2 }, ProbeRole.Liveness, T0);
        Assert.True(t.Passing);
        Assert.Equal(ProbeTransition.None, t.Record(false, "x", T0));
        Assert.Equal(ProbeTransition.None, t.Record(true, "ok", T0));
        Assert.Equal(ProbeTransition.None, t.Record(false, "x", T0));
        Assert.Equal(ProbeTransition.Failed, t.Record(false, "x", T0));
    }
}
