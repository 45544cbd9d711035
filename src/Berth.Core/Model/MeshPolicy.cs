using System.Collections.Immutable;

namespace Berth.Core.Model;

public enum LoadBalancing
{
    /// <summary>Power of two choices over active requests (YARP's and Envoy's LEAST_REQUEST).</summary>
    LeastRequest,
    RoundRobin,

    /// <summary>Peak-EWMA latency, as Linkerd.</summary>
    PeakEwma,
    Random,

    /// <summary>Consistent hash of a header or cookie (session affinity).</summary>
    ConsistentHash,

    /// <summary>TCP only: fewest open connections.</summary>
    LeastConnections,
}

/// <summary>Traffic policy for a service's mesh listener: load balancing, timeouts, retries, breaking, ejection, split.</summary>
public sealed record MeshPolicy
{
    public static readonly MeshPolicy Default = new();

    public LoadBalancing LoadBalancing { get; init; } = LoadBalancing.LeastRequest;

    /// <summary>For consistent hash: <c>header:X-User</c> or <c>cookie:session</c>.</summary>
    public string? HashOn { get; init; }

    /// <summary><see cref="HashOn"/> parsed by the one parser the loader validates with; null when absent or malformed.</summary>
    public HashKey? HashKey => Model.HashKey.TryParse(HashOn);

    /// <summary>Total time for a request including retries; null: none (as Envoy's route timeout 15s is often surprising, we default to 30s).</summary>
    public TimeSpan? Timeout { get; init; } = MeshDefaults.Timeout;

    /// <summary>Time for each try; null: bounded only by <see cref="Timeout"/>.</summary>
    public TimeSpan? PerTryTimeout { get; init; }

    public RetryPolicy Retries { get; init; } = RetryPolicy.Default;

    public CircuitBreakerPolicy CircuitBreaker { get; init; } = CircuitBreakerPolicy.Default;

    public OutlierDetectionPolicy OutlierDetection { get; init; } = OutlierDetectionPolicy.Default;

    public ConnectionLimits Limits { get; init; } = ConnectionLimits.Default;

    /// <summary>Weighted or header-matched routes between versions (canaries). Empty: all to the current revision.</summary>
    public ImmutableArray<TrafficSplit> Split { get; init; } = [];

    public bool AccessLog { get; init; }
}

/// <summary>Mesh defaults, each named after the peer it follows.</summary>
public static class MeshDefaults
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);
}

/// <summary>Retries: which failures, how many, how spaced, and the budget that keeps them from amplifying an outage.</summary>
public sealed record RetryPolicy
{
    public static readonly RetryPolicy Default = new();

    /// <summary>Retries after the first try: 2 (Envoy's default num_retries is 1; Linkerd's budget allows more).</summary>
    public int Attempts { get; init; } = 2;

    /// <summary>
    /// What to retry: connect-failure, 502, 503, 504 — as Istio's default retryOn (connect-failure, refused-stream,
    /// retriable-status-codes 503). Not <c>reset</c>: a reset after the request was sent may mean the request killed the
    /// replica (a query of death), and retrying it would kill the next one; Envoy retries resets only when told to.
    /// </summary>
    public ImmutableArray<string> On { get; init; } = ["connect-failure", "502", "503", "504"];

    /// <summary><see cref="On"/> parsed by the one parser the loader validates with; null when an item is not a condition.</summary>
    public RetryConditions? Conditions => RetryConditions.TryParse(On, out _);

    /// <summary>Retry non-idempotent methods (POST, PATCH) too. Off: only GET, HEAD, OPTIONS, PUT, DELETE, TRACE.</summary>
    public bool NonIdempotent { get; init; }

    /// <summary>Request bodies up to this size are buffered so they can be replayed; larger ones are not retried.</summary>
    public ByteSize MaxBufferedBody { get; init; } = ByteSize.FromMebibytes(1);

    /// <summary>25ms, as Envoy's base_interval.</summary>
    public TimeSpan BackoffBase { get; init; } = TimeSpan.FromMilliseconds(25);

    /// <summary>250ms, as Envoy's max_interval (10 × base).</summary>
    public TimeSpan BackoffMax { get; init; } = TimeSpan.FromMilliseconds(250);

    /// <summary>Retries may add at most this fraction of requests: 0.2, as Linkerd's retryRatio.</summary>
    public double BudgetRatio { get; init; } = 0.2;

    /// <summary>Plus this many retries per second regardless: 10, as Linkerd's minRetriesPerSecond.</summary>
    public int BudgetMinPerSecond { get; init; } = 10;

    /// <summary>The window the budget counts over: 10s, as Linkerd's ttl.</summary>
    public TimeSpan BudgetWindow { get; init; } = TimeSpan.FromSeconds(10);
}

/// <summary>Circuit breaker: closed → open → half-open. Defaults follow the founding document and Polly.</summary>
public sealed record CircuitBreakerPolicy
{
    public static readonly CircuitBreakerPolicy Default = new();

    public bool Enabled { get; init; } = true;

    /// <summary>Open after this many consecutive failures: 5, the founding document's default.</summary>
    public int ConsecutiveFailures { get; init; } = 5;

    /// <summary>Or when the failure ratio in <see cref="SamplingWindow"/> reaches this (0 disables): Polly's 0.1 is too eager for a mesh, 0.5.</summary>
    public double FailureRatio { get; init; } = 0.5;

    /// <summary>30s, as Polly's SamplingDuration.</summary>
    public TimeSpan SamplingWindow { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>The ratio only counts with at least this many requests in the window: 100, as Polly's MinimumThroughput is 100.</summary>
    public int MinimumThroughput { get; init; } = 100;

    /// <summary>5s, as Polly's BreakDuration.</summary>
    public TimeSpan BreakDuration { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Probe requests let through while half-open: 1, as Polly.</summary>
    public int HalfOpenRequests { get; init; } = 1;
}

/// <summary>Passive outlier detection. Defaults are Envoy's.</summary>
public sealed record OutlierDetectionPolicy
{
    public static readonly OutlierDetectionPolicy Default = new();

    public bool Enabled { get; init; } = true;

    /// <summary>Eject after this many consecutive 5xx (including gateway errors and transport failures): 5, as Envoy.</summary>
    public int Consecutive5xx { get; init; } = 5;

    /// <summary>Eject after this many consecutive 502/503/504 or transport failures: 5 (Envoy's is off by default).</summary>
    public int ConsecutiveGatewayErrors { get; init; } = 5;

    /// <summary>30s, as Envoy's base_ejection_time; multiplied by the number of times ejected.</summary>
    public TimeSpan BaseEjectionTime { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>300s, as Envoy's max_ejection_time.</summary>
    public TimeSpan MaxEjectionTime { get; init; } = TimeSpan.FromSeconds(300);

    /// <summary>50%, an Envoy-style cap raised from Envoy's 10% as small local services have few replicas; one endpoint always stays.</summary>
    public int MaxEjectionPercent { get; init; } = 50;

    /// <summary>10s, as Envoy's interval: how often ejections are reconsidered.</summary>
    public TimeSpan Interval { get; init; } = TimeSpan.FromSeconds(10);
}

/// <summary>Concurrency limits that fail fast instead of queueing without bound. Defaults are Envoy's circuit-breaker thresholds.</summary>
public sealed record ConnectionLimits
{
    public static readonly ConnectionLimits Default = new();

    /// <summary>1024, as Envoy's max_connections.</summary>
    public int MaxConnections { get; init; } = 1024;

    /// <summary>1024, as Envoy's max_pending_requests.</summary>
    public int MaxPendingRequests { get; init; } = 1024;

    /// <summary>1024, as Envoy's max_requests.</summary>
    public int MaxRequests { get; init; } = 1024;
}

/// <summary>A route to one version: a weight, or a header match that sends matching requests there.</summary>
public sealed record TrafficSplit
{
    /// <summary>The version: a revision number (<c>3</c>) or a replica label value (<c>version=v2</c>).</summary>
    public required string Version { get; init; }

    /// <summary>Share of traffic in percent; all weights of a service sum to 100.</summary>
    public int Weight { get; init; }

    /// <summary>Requests with this header (<c>X-Canary: true</c>) go to this version regardless of weight.</summary>
    public string? HeaderName { get; init; }

    public string? HeaderValue { get; init; }
}
