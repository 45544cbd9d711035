using Berth.Core.Probing;
using Berth.Core.Routing;
using Berth.Mesh.Balancing;
using Berth.Mesh.Resilience;

namespace Berth.Mesh.Routing;

/// <summary>One upstream replica as the mesh tracks it: load, latency, passive health and its own breaker. Survives route updates.</summary>
internal sealed class EndpointState
{
    private int _active;

    public EndpointState(Upstream upstream, CircuitBreaker breaker, TimeProvider time)
    {
        Upstream = upstream;
        Breaker = breaker;
        Ewma = new PeakEwma(time);
        Uri = new Uri($"http://{FormatHost(upstream.Host)}:{upstream.Port}");
    }

    /// <summary>Identity across updates: the address (a replica id can be reused by a restarted replica on another port).</summary>
    public static string KeyOf(Upstream u) => $"{u.Host}:{u.Port}";

    public string Key => KeyOf(Upstream);

    public Upstream Upstream { get; set; }

    public Uri Uri { get; }

    public CircuitBreaker Breaker { get; set; }

    public OutlierState Outlier { get; } = new();

    public PeakEwma Ewma { get; }

    /// <summary>Active health (the readiness probe the mesh runs itself); healthy when no probe is configured.</summary>
    public ProbeThreshold Health { get; } = new(initiallyPassing: true);

    /// <summary>This upstream's metric series (set by the owning service state).</summary>
    public UpstreamSeries Series { get; set; } = null!;

    /// <summary>Requests (HTTP) or connections (TCP) in flight to this endpoint.</summary>
    public int Active => Volatile.Read(ref _active);

    public void Enter() => Interlocked.Increment(ref _active);

    public void Exit() => Interlocked.Decrement(ref _active);

    public override string ToString() => $"{Upstream.ReplicaId}@{Key}";

    private static string FormatHost(string host) => host.Contains(':') && !host.StartsWith('[') ? $"[{host}]" : host;
}
