namespace Berth.Mesh.Balancing;

/// <summary>
/// Linkerd's peak-EWMA latency estimate: a slower sample replaces the average at once (the peak), a faster one decays
/// into it with a 10 s time constant. Cost = estimate × (in-flight + 1), so a slow or busy endpoint is avoided quickly.
/// </summary>
internal sealed class PeakEwma
{
    /// <summary>10s, as Linkerd's decay.</summary>
    public static readonly TimeSpan Decay = TimeSpan.FromSeconds(10);

    /// <summary>30ms, as Linkerd's default RTT before any sample.</summary>
    public static readonly TimeSpan DefaultRtt = TimeSpan.FromMilliseconds(30);

    private readonly TimeProvider _time;
    private readonly Lock _lock = new();
    private double _estimateTicks = DefaultRtt.Ticks;
    private long _stamp;

    public PeakEwma(TimeProvider time)
    {
        _time = time;
        _stamp = time.GetTimestamp();
    }

    public double EstimateTicks
    {
        get
        {
            lock (_lock)
            {
                return _estimateTicks;
            }
        }
    }

    public void Observe(TimeSpan rtt)
    {
        lock (_lock)
        {
            var now = _time.GetTimestamp();
            var elapsed = _time.GetElapsedTime(_stamp, now);
            _stamp = now;
            if (rtt.Ticks > _estimateTicks)
            {
                _estimateTicks = rtt.Ticks;
            }
            else
            {
                var w = Math.Exp(-elapsed.TotalSeconds / Decay.TotalSeconds);
                _estimateTicks = (_estimateTicks * w) + (rtt.Ticks * (1 - w));
            }
        }
    }
}
