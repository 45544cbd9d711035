namespace Berth.Mesh.Resilience;

/// <summary>Exponential backoff with full jitter (AWS's "full jitter", Envoy's retry back-off): uniform in [0, min(cap, base × 2^n)].</summary>
internal static class Backoff
{
    /// <summary>The delay before retry number <c>retry</c> (0 for the first).</summary>
    public static TimeSpan FullJitter(int retry, TimeSpan baseDelay, TimeSpan cap, Random random)
    {
        var exp = Math.Min(30, Math.Max(0, retry));
        var ceiling = Math.Min(cap.Ticks, baseDelay.Ticks * (1L << exp));
        return ceiling <= 0 ? TimeSpan.Zero : TimeSpan.FromTicks((long)(random.NextDouble() * ceiling));
    }
}
