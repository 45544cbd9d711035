namespace Berth.Mesh.Http;

/// <summary>
/// One cancellation source per request for the total timeout and each try's timeout (re-armed per attempt, renewed
/// only after a per-try timeout fired), instead of a linked source and timer per bound per attempt. A
/// <see cref="Reusable"/> timer (one per client connection of the mesh's own server) keeps its source and its
/// registration on the connection's abort token from one request to the next while neither fired.
/// </summary>
internal sealed class RequestTimer(TimeProvider time) : IDisposable
{
    private TimeSpan? _total;
    private CancellationToken _aborted;
    private long _started;
    private CancellationTokenSource? _cts;
    private CancellationTokenRegistration _registration;

    /// <summary>Kept for the next request by <see cref="Dispose"/> (then <see cref="Release"/> frees it).</summary>
    public bool Reusable { get; init; }

    public bool TotalExpired => _total is { } t && time.GetElapsedTime(_started) >= t;

    public bool ClientAborted => _aborted.IsCancellationRequested;

    /// <summary>Time left of the total bound (null: none).</summary>
    public TimeSpan? Remaining => _total is { } t ? t - time.GetElapsedTime(_started) : null;

    /// <summary>Starts a request's clock: <paramref name="total"/> bounds it all, <paramref name="aborted"/> is the client leaving.</summary>
    public RequestTimer Start(TimeSpan? total, CancellationToken aborted)
    {
        _total = total;
        _started = time.GetTimestamp();
        if (_cts is null || _aborted != aborted)
        {
            Renew(aborted);
        }

        return this;
    }

    /// <summary>A token cancelled at the earlier of the per-try bound and the total deadline, or when the client leaves.</summary>
    public CancellationToken Arm(TimeSpan? perTry)
    {
        if (_cts!.IsCancellationRequested && !_aborted.IsCancellationRequested)
        {
            Renew(_aborted);
        }

        TimeSpan? bound = perTry;
        if (_total is { } t)
        {
            var remaining = t - time.GetElapsedTime(_started);
            remaining = remaining < TimeSpan.Zero ? TimeSpan.Zero : remaining;
            bound = bound is { } b && b < remaining ? b : remaining;
        }

        _cts!.CancelAfter(bound ?? Timeout.InfiniteTimeSpan);
        return _cts.Token;
    }

    /// <summary>The request is over: a reusable timer whose source never fired is reset for the next one; any other is freed.</summary>
    public void Dispose()
    {
        if (!Reusable || _cts is not { } cts || !cts.TryReset())
        {
            Release();
        }
    }

    /// <summary>Frees the source and the registration.</summary>
    public void Release()
    {
        _registration.Dispose();
        _cts?.Dispose();
        _cts = null;
    }

    private void Renew(CancellationToken aborted)
    {
        Release();
        _aborted = aborted;
        _cts = new CancellationTokenSource(Timeout.InfiniteTimeSpan, time);
        _registration = aborted.UnsafeRegister(static state => ((CancellationTokenSource)state!).Cancel(), _cts);
    }
}
