using Berth.Core.Model;

namespace Berth.Mesh.Resilience;

/// <summary>
/// Linkerd's retry budget: retries may add <see cref="RetryPolicy.BudgetRatio"/> of the requests seen in the last
/// <see cref="RetryPolicy.BudgetWindow"/>, plus <see cref="RetryPolicy.BudgetMinPerSecond"/> per second regardless.
/// Unlike Linkerd (whose reserve is min × ttl), the per-second allowance is a token bucket holding one second's worth,
/// so over any span T retries stay ≤ ratio × requests + min × (T + 1s) and cannot amplify an outage.
/// </summary>
internal sealed class RetryBudget
{
    private const int Buckets = 10;

    private readonly double _ratio;
    private readonly double _minPerSecond;
    private readonly TimeProvider _time;
    private readonly Lock _lock = new();
    private readonly long _bucketTicks;
    private readonly long _windowTicks;
    private readonly long[] _bucketStart = new long[Buckets];
    private readonly int[] _requests = new int[Buckets];
    private readonly int[] _ratioRetries = new int[Buckets];

    private double _rateTokens;
    private long _rateRefilledAt;

    public RetryBudget(RetryPolicy policy, TimeProvider time)
    {
        _ratio = Math.Max(0, policy.BudgetRatio);
        _minPerSecond = Math.Max(0, policy.BudgetMinPerSecond);
        _time = time;
        _windowTicks = Math.Max(Buckets, policy.BudgetWindow.Ticks);
        _bucketTicks = _windowTicks / Buckets;
        Array.Fill(_bucketStart, long.MinValue);
        _rateTokens = _minPerSecond;
        _rateRefilledAt = time.GetUtcNow().UtcTicks;
    }

    /// <summary>Counts an original (non-retry) request: it deposits <c>ratio</c> of a retry.</summary>
    public void RecordRequest()
    {
        lock (_lock)
        {
            _requests[Bucket(_time.GetUtcNow().UtcTicks)]++;
        }
    }

    /// <summary>Takes one retry from the budget; false when it is spent.</summary>
    public bool TryWithdraw()
    {
        lock (_lock)
        {
            var now = _time.GetUtcNow().UtcTicks;
            var current = Bucket(now);
            int requests = 0, retries = 0;
            var oldest = now - _windowTicks;
            for (var b = 0; b < Buckets; b++)
            {
                if (_bucketStart[b] > oldest)
                {
                    requests += _requests[b];
                    retries += _ratioRetries[b];
                }
            }

            if (retries + 1 <= _ratio * requests)
            {
                _ratioRetries[current]++;
                return true;
            }

            _rateTokens = Math.Min(_minPerSecond, _rateTokens + (now - _rateRefilledAt) * _minPerSecond / TimeSpan.TicksPerSecond);
            _rateRefilledAt = now;
            if (_rateTokens >= 1)
            {
                _rateTokens -= 1;
                return true;
            }

            return false;
        }
    }

    private int Bucket(long now)
    {
        var start = now - (now % _bucketTicks);
        var i = (int)((now / _bucketTicks) % Buckets);
        if (_bucketStart[i] != start)
        {
            _bucketStart[i] = start;
            _requests[i] = 0;
            _ratioRetries[i] = 0;
        }

        return i;
    }
}
