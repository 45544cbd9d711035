using Berth.Core.Model;

namespace Berth.Mesh.Resilience;

/// <summary>What <see cref="CircuitBreaker.TryEnter"/> granted.</summary>
internal enum BreakerPermit
{
    Rejected,
    Allowed,

    /// <summary>A half-open probe: its outcome closes or re-opens the circuit.</summary>
    Probe,
}

/// <summary>Breaker states as exported in metrics (0 closed, 1 open, 2 half-open).</summary>
internal enum BreakerState
{
    Closed = 0,
    Open = 1,
    HalfOpen = 2,
}

/// <summary>
/// Closed → open after <see cref="CircuitBreakerPolicy.ConsecutiveFailures"/> failures in a row or a failure ratio over a
/// sampling window with a minimum throughput (as Polly's advanced breaker); open rejects for the break duration;
/// half-open admits a limited number of probes whose outcome closes or re-opens it.
/// </summary>
internal sealed class CircuitBreaker
{
    private const int Buckets = 10;

    private readonly CircuitBreakerPolicy _policy;
    private readonly TimeProvider _time;
    private readonly Lock _lock = new();
    private readonly long[] _bucketStart = new long[Buckets];
    private readonly int[] _bucketTotal = new int[Buckets];
    private readonly int[] _bucketFailures = new int[Buckets];
    private readonly long _bucketTicks;

    private volatile BreakerState _state;
    private int _consecutiveFailures;
    private DateTimeOffset _openUntil;
    private int _probesInFlight;

    public CircuitBreaker(CircuitBreakerPolicy policy, TimeProvider time)
    {
        _policy = policy;
        _time = time;
        _bucketTicks = Math.Max(1, policy.SamplingWindow.Ticks / Buckets);
        Array.Fill(_bucketStart, long.MinValue);
    }

    public CircuitBreakerPolicy Policy => _policy;

    /// <summary>Called with the new state whenever it changes (for metrics and logs).</summary>
    public Action<BreakerState>? StateChanged { get; init; }

    public BreakerState State
    {
        get
        {
            lock (_lock)
            {
                return _state == BreakerState.Open && _time.GetUtcNow() >= _openUntil ? BreakerState.HalfOpen : _state;
            }
        }
    }

    /// <summary>True unless open (or half-open with every probe slot taken): a cheap filter before <see cref="TryEnter"/>.</summary>
    public bool MayAdmit
    {
        get
        {
            if (!_policy.Enabled || _state == BreakerState.Closed)
            {
                return true;
            }

            lock (_lock)
            {
                return _state switch
                {
                    BreakerState.Closed => true,
                    BreakerState.Open => _time.GetUtcNow() >= _openUntil,
                    BreakerState.HalfOpen => _probesInFlight < _policy.HalfOpenRequests,
                };
            }
        }
    }

    public BreakerPermit TryEnter()
    {
        if (!_policy.Enabled)
        {
            return BreakerPermit.Allowed;
        }

        BreakerState? changed = null;
        BreakerPermit permit;
        lock (_lock)
        {
            if (_state == BreakerState.Closed)
            {
                return BreakerPermit.Allowed;
            }

            if (_state == BreakerState.Open)
            {
                if (_time.GetUtcNow() < _openUntil)
                {
                    return BreakerPermit.Rejected;
                }

                _state = BreakerState.HalfOpen;
                _probesInFlight = 0;
                changed = BreakerState.HalfOpen;
            }

            if (_probesInFlight < _policy.HalfOpenRequests)
            {
                _probesInFlight++;
                permit = BreakerPermit.Probe;
            }
            else
            {
                permit = BreakerPermit.Rejected;
            }
        }

        if (changed is { } s)
        {
            StateChanged?.Invoke(s);
        }

        return permit;
    }

    /// <summary>
    /// Reports the outcome of a request admitted with <paramref name="permit"/>; with <paramref name="consecutiveMayTrip"/>
    /// false a failure counts toward the failure ratio only (the service breaker, while not every upstream has failed).
    /// </summary>
    public void Report(BreakerPermit permit, bool success, bool consecutiveMayTrip = true)
    {
        if (!_policy.Enabled || permit == BreakerPermit.Rejected)
        {
            return;
        }

        BreakerState? changed = null;
        lock (_lock)
        {
            if (permit == BreakerPermit.Probe)
            {
                if (_state != BreakerState.HalfOpen)
                {
                    return;
                }

                _probesInFlight--;
                changed = success ? Close() : Open();
            }
            else if (_state == BreakerState.Closed)
            {
                // Outcomes of requests admitted before the circuit opened are ignored once it has.
                var now = _time.GetUtcNow().UtcTicks;
                var i = Bucket(now);
                _bucketTotal[i]++;
                if (success)
                {
                    _consecutiveFailures = 0;
                }
                else
                {
                    _bucketFailures[i]++;
                    _consecutiveFailures++;
                    if (ShouldTrip(now, consecutiveMayTrip))
                    {
                        changed = Open();
                    }
                }
            }
        }

        if (changed is { } s)
        {
            StateChanged?.Invoke(s);
        }
    }

    /// <summary>Gives back a permit whose request ended without an outcome (the client went away).</summary>
    public void Release(BreakerPermit permit)
    {
        if (permit != BreakerPermit.Probe)
        {
            return;
        }

        lock (_lock)
        {
            if (_state == BreakerState.HalfOpen && _probesInFlight > 0)
            {
                _probesInFlight--;
            }
        }
    }

    private bool ShouldTrip(long now, bool consecutiveMayTrip)
    {
        if (consecutiveMayTrip && _policy.ConsecutiveFailures > 0 && _consecutiveFailures >= _policy.ConsecutiveFailures)
        {
            return true;
        }

        if (_policy.FailureRatio <= 0)
        {
            return false;
        }

        int total = 0, failures = 0;
        var oldest = now - _policy.SamplingWindow.Ticks;
        for (var b = 0; b < Buckets; b++)
        {
            if (_bucketStart[b] > oldest)
            {
                total += _bucketTotal[b];
                failures += _bucketFailures[b];
            }
        }

        return total >= _policy.MinimumThroughput && failures >= _policy.FailureRatio * total;
    }

    private int Bucket(long now)
    {
        var start = now - (now % _bucketTicks);
        var i = (int)((now / _bucketTicks) % Buckets);
        if (_bucketStart[i] != start)
        {
            _bucketStart[i] = start;
            _bucketTotal[i] = 0;
            _bucketFailures[i] = 0;
        }

        return i;
    }

    private BreakerState Open()
    {
        _state = BreakerState.Open;
        _openUntil = _time.GetUtcNow() + _policy.BreakDuration;
        return BreakerState.Open;
    }

    private BreakerState Close()
    {
        _state = BreakerState.Closed;
        _consecutiveFailures = 0;
        Array.Fill(_bucketStart, long.MinValue);
        return BreakerState.Closed;
    }
}
