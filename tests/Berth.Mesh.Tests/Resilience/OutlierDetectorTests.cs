
namespace Berth.Mesh.Tests.Resilience;

public sealed class OutlierDetectorTests
{
    private readonly FakeTimeProvider _time = new();
    private readonly OutlierState[] _pool = [new(), new(), new(), new()];

    [Fact]
    public void Report_FourConsecutive5xx_DoesNotEjectTheFifthDoes()
    {
        var detector = new OutlierDetector(OutlierDetectionPolicy.Default, _time);
        for (var i = 0; i < 4; i++)
        {
            Assert.Null(detector.Report(_pool[0], AttemptOutcome.ServerError, _pool));
        }

        Assert.Equal(TimeSpan.FromSeconds(30), detector.Report(_pool[0], AttemptOutcome.ServerError, _pool));
        Assert.True(detector.IsEjected(_pool[0], out _));
    }

    [Fact]
    public void Report_SuccessInBetween_ResetsTheCount()
    {
        var detector = new OutlierDetector(OutlierDetectionPolicy.Default, _time);
        for (var i = 0; i < 20; i++)
        {
            detector.Report(_pool[0], i % 4 == 3 ? AttemptOutcome.Success : AttemptOutcome.GatewayError, _pool);
        }

        Assert.False(detector.IsEjected(_pool[0], out _));
    }

    [Fact]
    public void Report_GatewayErrorsWith5xxThresholdOff_EjectOnGatewayThreshold()
    {
        var detector = new OutlierDetector(OutlierDetectionPolicy.Default with { Consecutive5xx = 0, ConsecutiveGatewayErrors = 3 }, _time);
        detector.Report(_pool[0], AttemptOutcome.ServerError, _pool);
        detector.Report(_pool[0], AttemptOutcome.GatewayError, _pool);
        detector.Report(_pool[0], AttemptOutcome.GatewayError, _pool);
        Assert.False(detector.IsEjected(_pool[0], out _));

        detector.Report(_pool[0], AttemptOutcome.GatewayError, _pool);

        Assert.True(detector.IsEjected(_pool[0], out _));
    }

    [Fact]
    public void IsEjected_AfterEjectionTime_ReturnsTheEndpoint()
    {
        var detector = new OutlierDetector(OutlierDetectionPolicy.Default, _time);
        Eject(detector, _pool[0]);
        _time.Advance(TimeSpan.FromSeconds(29));
        Assert.True(detector.IsEjected(_pool[0], out var early));
        Assert.False(early);

        _time.Advance(TimeSpan.FromSeconds(1));

        Assert.False(detector.IsEjected(_pool[0], out var returned));
        Assert.True(returned);
    }

    [Fact]
    public void Report_RepeatedEjections_GrowByBaseAndCapAtMax()
    {
        var detector = new OutlierDetector(OutlierDetectionPolicy.Default with { Interval = TimeSpan.FromHours(1) }, _time);
        var durations = new List<TimeSpan>();
        for (var i = 0; i < 12; i++)
        {
            durations.Add(Eject(detector, _pool[0]));
            _time.Advance(durations[^1]);
            detector.IsEjected(_pool[0], out _);
        }

        Assert.Equal(
            [30, 60, 90, 120, 150, 180, 210, 240, 270, 300, 300, 300],
            durations.Select(d => (int)d.TotalSeconds));
    }

    [Fact]
    public void Report_HealthyForIntervals_DecaysTheMultiplier()
    {
        var detector = new OutlierDetector(OutlierDetectionPolicy.Default, _time);
        Eject(detector, _pool[0]);
        _time.Advance(TimeSpan.FromSeconds(30));
        detector.IsEjected(_pool[0], out _);
        Assert.Equal(TimeSpan.FromSeconds(60), Eject(detector, _pool[0]));
        _time.Advance(TimeSpan.FromSeconds(60));
        detector.IsEjected(_pool[0], out _);

        _time.Advance(TimeSpan.FromSeconds(20)); // two 10s intervals healthy: multiplier 2 → 0

        Assert.Equal(TimeSpan.FromSeconds(30), Eject(detector, _pool[0]));
    }

    [Fact]
    public void Report_MaxEjectionPercent_StopsEjectingAtTheCap()
    {
        var detector = new OutlierDetector(OutlierDetectionPolicy.Default, _time);
        Eject(detector, _pool[0]);
        Eject(detector, _pool[1]);

        for (var i = 0; i < 10; i++)
        {
            detector.Report(_pool[2], AttemptOutcome.GatewayError, _pool);
        }

        Assert.False(detector.IsEjected(_pool[2], out _)); // 2 of 4 = 50%: at the cap
    }

    [Fact]
    public void Report_TwoEndpointsBothFailing_AlwaysKeepsOne()
    {
        OutlierState[] pool = [new(), new()];
        var detector = new OutlierDetector(OutlierDetectionPolicy.Default with { MaxEjectionPercent = 100 }, _time);
        for (var i = 0; i < 10; i++)
        {
            detector.Report(pool[0], AttemptOutcome.GatewayError, pool);
            detector.Report(pool[1], AttemptOutcome.GatewayError, pool);
        }

        Assert.Equal(1, pool.Count(p => detector.IsEjected(p, out _)));
    }

    [Fact]
    public void Report_Disabled_NeverEjects()
    {
        var detector = new OutlierDetector(OutlierDetectionPolicy.Default with { Enabled = false }, _time);
        for (var i = 0; i < 10; i++)
        {
            Assert.Null(detector.Report(_pool[0], AttemptOutcome.GatewayError, _pool));
        }
    }

    private TimeSpan Eject(OutlierDetector detector, OutlierState state)
    {
        TimeSpan? ejected = null;
        for (var i = 0; i < 5 && ejected is null; i++)
        {
            ejected = detector.Report(state, AttemptOutcome.GatewayError, _pool);
        }

        return ejected ?? throw new Xunit.Sdk.XunitException("expected an ejection after 5 gateway errors");
    }
}
