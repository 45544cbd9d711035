using Berth.Core.Probing;
using Berth.Core.Routing;
using Berth.Mesh.Balancing;
using Berth.Mesh.Http;
using Berth.Mesh.Resilience;

namespace Berth.Mesh.Routing;

/// <summary>One upstream replica as the mesh tracks it: load, latency, passive health and its own breaker. Survives route updates.</summary>
internal sealed class EndpointState
{
    private int _active;

    /// <summary>The service failure streak in which this upstream last failed, plus one (see <see cref="ServiceState.ReportService"/>).</summary>
    internal long FailedInStreak;

    public EndpointState(Upstream upstream, CircuitBreaker breaker, TimeProvider time, TimeSpan? connectTimeout = null)
    {
        Upstream = upstream;
        Breaker = breaker;
        Ewma = new PeakEwma(time);
        HostHeader = $"{FormatHost(upstream.Host)}:{upstream.Port}";
        // HTTP/2 connections are pooled by the URI's authority: every pod has its own 127.0.0.1:port, so an upstream in a pod
        // gets an authority of its own (the pod's identity, hashed), never resolved — the h2c connect callback makes the
        // socket in the pod — and the request carries the real Host (see Http2Forwarder).
        Uri = new Uri(upstream.Pod is { } pod ? $"http://{PodAuthority(pod)}:{upstream.Port}" : $"http://{HostHeader}");
        Pool = new Http1ConnectionPool(upstream.Host, upstream.Port, connectTimeout ?? HttpProxy.ConnectTimeout, time) { Pod = upstream.Pod };
    }

    /// <summary>A host name standing for one pod in connection-pool keys: <c>pod-HASH.invalid</c> (RFC 6761: never resolves).</summary>
    public static string PodAuthority(PodNetwork pod) =>
        "pod-" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes($"{pod.PodId}\n{pod.NamespacePath}\n{pod.NamespaceInode}\n{pod.SocketHelper}")).AsSpan(0, 8)) + ".invalid";

    /// <summary>The Host header requests to this upstream carry (its address, as SocketsHttpHandler would set it).</summary>
    public string HostHeader { get; }

    /// <summary>This upstream's own HTTP/1.1 connections.</summary>
    public Http1ConnectionPool Pool { get; }

    /// <summary>Identity across updates: the address (a replica id can be reused by a restarted replica on another port), and
    /// for a replica in a pod the pod too (every pod has its own 127.0.0.1).</summary>
    public static string KeyOf(Upstream u) => u.Pod is { } pod ? $"{pod.PodId}/{u.Host}:{u.Port}" : $"{u.Host}:{u.Port}";

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
