using Berth.Core.Model;

namespace Berth.Mesh.Http;

/// <summary>
/// A listener's concurrency limits and the counters they bound: requests in flight (<c>max_requests</c>) and requests
/// waiting for upstream response headers (<c>max_pending_requests</c>), as Envoy's cluster circuit breakers. Lock-free.
/// </summary>
internal sealed class AdmissionLimits
{
    private int _active;
    private int _pending;

    public int Active => Volatile.Read(ref _active);

    public int Pending => Volatile.Read(ref _pending);

    /// <summary>Admits a request, or names the limit that refused it; an admitted request must <see cref="Leave"/>.</summary>
    public string? TryEnter(ConnectionLimits limits)
    {
        if (Interlocked.Increment(ref _active) > limits.MaxRequests)
        {
            Interlocked.Decrement(ref _active);
            return "max-requests";
        }

        if (Volatile.Read(ref _pending) >= limits.MaxPendingRequests)
        {
            Interlocked.Decrement(ref _active);
            return "max-pending";
        }

        return null;
    }

    public void Leave() => Interlocked.Decrement(ref _active);

    public void EnterPending() => Interlocked.Increment(ref _pending);

    public void LeavePending() => Interlocked.Decrement(ref _pending);
}
