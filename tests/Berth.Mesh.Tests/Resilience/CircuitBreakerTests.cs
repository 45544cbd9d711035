
namespace Berth.Mesh.Tests.Resilience;

public sealed class CircuitBreakerTests
{
    private readonly FakeTimeProvider _time = new();

    [Fact]
    public void Report_FiveConsecutiveFailures_Opens()
    {
        var breaker = new CircuitBreaker(CircuitBreakerPolicy.Default, _time);
        for (var i = 0; i < 4; i++)
        {
            breaker.Report(breaker.TryEnter(), success: false);
        }

        Assert.Equal(BreakerState.Closed, breaker.State);
        breaker.Report(breaker.TryEnter(), success: false);

        Assert.Equal(BreakerState.Open, breaker.State);
        Assert.Equal(BreakerPermit.Rejected, breaker.TryEnter());
    }

    [Fact]
    public void Report_ConsecutiveFailuresNotAllowedToTrip_StaysClosedUntilTheRatioRule()
    {
        var breaker = new CircuitBreaker(CircuitBreakerPolicy.Default with { MinimumThroughput = 20 }, _time);
        for (var i = 0; i < 19; i++)
        {
            breaker.Report(breaker.TryEnter(), success: false, consecutiveMayTrip: false);
        }

        Assert.Equal(BreakerState.Closed, breaker.State);
        breaker.Report(breaker.TryEnter(), success: false, consecutiveMayTrip: false);

        Assert.Equal(BreakerState.Open, breaker.State);
    }

    [Fact]
    public void Report_SuccessBetweenFailures_ResetsTheConsecutiveCount()
    {
        var breaker = new CircuitBreaker(CircuitBreakerPolicy.Default with { FailureRatio = 0 }, _time);
        for (var i = 0; i < 20; i++)
        {
            breaker.Report(breaker.TryEnter(), success: i % 4 == 0);
        }

        Assert.Equal(BreakerState.Closed, breaker.State);
    }

    [Fact]
    public void Report_FailureRatioReachedAboveMinimumThroughput_Opens()
    {
        var policy = CircuitBreakerPolicy.Default with { ConsecutiveFailures = 0, FailureRatio = 0.5, MinimumThroughput = 10 };
        var breaker = new CircuitBreaker(policy, _time);
        for (var i = 0; i < 9; i++)
        {
            breaker.Report(breaker.TryEnter(), success: i % 2 == 0);
        }

        Assert.Equal(BreakerState.Closed, breaker.State); // 4 of 9 failed, under the minimum throughput anyway

        breaker.Report(breaker.TryEnter(), success: false); // 5 of 10

        Assert.Equal(BreakerState.Open, breaker.State);
    }

    [Fact]
    public void Report_FailuresOlderThanSamplingWindow_DoNotCount()
    {
        var policy = CircuitBreakerPolicy.Default with { ConsecutiveFailures = 0, FailureRatio = 0.5, MinimumThroughput = 10, SamplingWindow = TimeSpan.FromSeconds(30) };
        var breaker = new CircuitBreaker(policy, _time);
        for (var i = 0; i < 8; i++)
        {
            breaker.Report(breaker.TryEnter(), success: false);
        }

        _time.Advance(TimeSpan.FromSeconds(31));
        for (var i = 0; i < 10; i++)
        {
            breaker.Report(breaker.TryEnter(), success: i < 6);
        }

        Assert.Equal(BreakerState.Closed, breaker.State);
    }

    [Fact]
    public void TryEnter_AfterBreakDuration_AdmitsOnlyHalfOpenProbes()
    {
        var breaker = Opened(CircuitBreakerPolicy.Default with { HalfOpenRequests = 2 });
        _time.Advance(TimeSpan.FromSeconds(4.9));
        Assert.Equal(BreakerPermit.Rejected, breaker.TryEnter());

        _time.Advance(TimeSpan.FromSeconds(0.1));

        Assert.Equal(BreakerState.HalfOpen, breaker.State);
        Assert.Equal(BreakerPermit.Probe, breaker.TryEnter());
        Assert.Equal(BreakerPermit.Probe, breaker.TryEnter());
        Assert.Equal(BreakerPermit.Rejected, breaker.TryEnter());
    }

    [Fact]
    public void Report_ProbeSucceeds_Closes()
    {
        var breaker = HalfOpenDue();

        breaker.Report(breaker.TryEnter(), success: true);

        Assert.Equal(BreakerState.Closed, breaker.State);
        Assert.Equal(BreakerPermit.Allowed, breaker.TryEnter());
    }

    [Fact]
    public void Report_ProbeFails_ReopensForAnotherBreakDuration()
    {
        var breaker = HalfOpenDue();

        breaker.Report(breaker.TryEnter(), success: false);

        Assert.Equal(BreakerState.Open, breaker.State);
        _time.Advance(TimeSpan.FromSeconds(4.9));
        Assert.Equal(BreakerPermit.Rejected, breaker.TryEnter());
        _time.Advance(TimeSpan.FromSeconds(0.1));
        Assert.Equal(BreakerPermit.Probe, breaker.TryEnter());
    }

    [Fact]
    public void Release_ProbeWithoutOutcome_FreesTheProbeSlot()
    {
        var breaker = HalfOpenDue();
        var probe = breaker.TryEnter();
        Assert.Equal(BreakerPermit.Rejected, breaker.TryEnter());

        breaker.Release(probe);

        Assert.Equal(BreakerPermit.Probe, breaker.TryEnter());
    }

    [Fact]
    public void TryEnter_Disabled_AlwaysAllows()
    {
        var breaker = new CircuitBreaker(CircuitBreakerPolicy.Default with { Enabled = false }, _time);
        for (var i = 0; i < 50; i++)
        {
            breaker.Report(breaker.TryEnter(), success: false);
        }

        Assert.Equal(BreakerPermit.Allowed, breaker.TryEnter());
    }

    [Fact]
    public void StateChanged_OpenHalfOpenClosed_ReportedInOrder()
    {
        var seen = new List<BreakerState>();
        var breaker = new CircuitBreaker(CircuitBreakerPolicy.Default, _time) { StateChanged = seen.Add };
        for (var i = 0; i < 5; i++)
        {
            breaker.Report(breaker.TryEnter(), success: false);
        }

        _time.Advance(CircuitBreakerPolicy.Default.BreakDuration);
        breaker.Report(breaker.TryEnter(), success: true);

        Assert.Equal([BreakerState.Open, BreakerState.HalfOpen, BreakerState.Closed], seen);
    }

    /// <summary>A default breaker opened by failures, its break duration over: its next TryEnter is a half-open probe.</summary>
    private CircuitBreaker HalfOpenDue()
    {
        var breaker = Opened(CircuitBreakerPolicy.Default);
        _time.Advance(CircuitBreakerPolicy.Default.BreakDuration);
        return breaker;
    }

    private CircuitBreaker Opened(CircuitBreakerPolicy policy)
    {
        var breaker = new CircuitBreaker(policy, _time);
        for (var i = 0; i < policy.ConsecutiveFailures; i++)
        {
            breaker.Report(breaker.TryEnter(), success: false);
        }

        Assert.Equal(BreakerState.Open, breaker.State);
        return breaker;
    }
}
