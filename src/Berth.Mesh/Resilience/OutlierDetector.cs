using Berth.Core.Model;

namespace Berth.Mesh.Resilience;

/// <summary>How one upstream attempt ended, as far as health is concerned.</summary>
internal enum AttemptOutcome
{
    Success,

    /// <summary>500, 501, 505… — a 5xx that is not a gateway error.</summary>
    ServerError,

    /// <summary>502, 503, 504, or a transport failure (refused, reset, timeout) — counts toward both thresholds.</summary>
    GatewayError,
}

/// <summary>Per-endpoint passive health: consecutive-error counters and the ejection clock.</summary>
internal sealed class OutlierState
{
    internal int Consecutive5xx;
    internal int ConsecutiveGateway;
    internal int Multiplier;
    internal DateTimeOffset EjectedUntil;
    internal DateTimeOffset ReturnedAt;
    internal bool Ejected;
}

/// <summary>
/// Passive outlier detection as Envoy's: eject an endpoint after N consecutive 5xx or gateway errors (transport
/// failures included — YARP's passive policy counts only those), for base × times-ejected capped at the max, never
/// past the max ejection percent and never the last endpoint. The multiplier decays by one per interval healthy.
/// </summary>
internal sealed class OutlierDetector
{
    private readonly OutlierDetectionPolicy _policy;
    private readonly TimeProvider _time;
    private readonly Lock _lock = new();

    public OutlierDetector(OutlierDetectionPolicy policy, TimeProvider time)
    {
        _policy = policy;
        _time = time;
    }

    public OutlierDetectionPolicy Policy => _policy;

    /// <summary>True while ejected; an ejection that has run out is lifted here (lazily, on the next look).</summary>
    public bool IsEjected(OutlierState state, out bool returned)
    {
        returned = false;
        if (!state.Ejected)
        {
            return false;
        }

        lock (_lock)
        {
            if (!state.Ejected)
            {
                return false;
            }

            var now = _time.GetUtcNow();
            if (now < state.EjectedUntil)
            {
                return true;
            }

            state.Ejected = false;
            state.ReturnedAt = now;
            state.Consecutive5xx = 0;
            state.ConsecutiveGateway = 0;
            returned = true;
            return false;
        }
    }

    /// <summary>Records an outcome; returns the ejection time when this outcome ejected the endpoint.</summary>
    public TimeSpan? Report(OutlierState state, AttemptOutcome outcome, IReadOnlyList<OutlierState> pool)
    {
        if (!_policy.Enabled)
        {
            return null;
        }

        if (outcome == AttemptOutcome.Success)
        {
            if (state.Consecutive5xx != 0 || state.ConsecutiveGateway != 0)
            {
                lock (_lock)
                {
                    state.Consecutive5xx = 0;
                    state.ConsecutiveGateway = 0;
                }
            }

            return null;
        }

        lock (_lock)
        {
            if (state.Ejected)
            {
                return null;
            }

            state.Consecutive5xx++;
            if (outcome == AttemptOutcome.GatewayError)
            {
                state.ConsecutiveGateway++;
            }

            var tripped = (_policy.Consecutive5xx > 0 && state.Consecutive5xx >= _policy.Consecutive5xx)
                || (_policy.ConsecutiveGatewayErrors > 0 && state.ConsecutiveGateway >= _policy.ConsecutiveGatewayErrors);
            if (!tripped || !MayEject(pool))
            {
                return null;
            }

            var now = _time.GetUtcNow();
            if (state.Multiplier > 0 && _policy.Interval > TimeSpan.Zero)
            {
                var healthy = (now - state.ReturnedAt).Ticks / _policy.Interval.Ticks;
                state.Multiplier = (int)Math.Max(0, state.Multiplier - healthy);
            }

            state.Multiplier++;
            var ticks = Math.Min(_policy.MaxEjectionTime.Ticks, _policy.BaseEjectionTime.Ticks * state.Multiplier);
            var duration = TimeSpan.FromTicks(ticks);
            state.Ejected = true;
            state.EjectedUntil = now + duration;
            state.Consecutive5xx = 0;
            state.ConsecutiveGateway = 0;
            return duration;
        }
    }

    private bool MayEject(IReadOnlyList<OutlierState> pool)
    {
        var now = _time.GetUtcNow();
        var ejected = 0;
        foreach (var s in pool)
        {
            if (s.Ejected && now < s.EjectedUntil)
            {
                ejected++;
            }
        }

        // As Envoy: eject while the ejected share is below the cap (so at least one host can go), but always keep one.
        return ejected + 1 < pool.Count && ejected * 100 < _policy.MaxEjectionPercent * pool.Count;
    }
}
