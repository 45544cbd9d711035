namespace Berth.Orchestration;

/// <summary>Control-plane defaults, each named after the peer it follows.</summary>
public static class OrchestratorDefaults
{
    /// <summary>10, as Kubernetes' revisionHistoryLimit.</summary>
    public const int RevisionHistoryLimit = 10;

    /// <summary>Full reconcile at least this often even without events: 1s. Kubernetes' informers resync every
    /// 10 hours and the kubelet's sync loop runs every 1s; a local control plane can afford the kubelet's.</summary>
    public static readonly TimeSpan ResyncPeriod = TimeSpan.FromSeconds(1);

    /// <summary>A scale request above this is refused: 10,000 replicas of one service is past what one machine runs
    /// (each is at least a process), and a typo such as 100000 would otherwise fill the store with Pending records.</summary>
    public const int MaxReplicasPerService = 10_000;

    /// <summary>Replicas started at once: 16. Kubernetes' kubelet starts pods in parallel without a cap; on a small
    /// machine a bounded number keeps the start storm from starving the probes.</summary>
    public const int StartConcurrency = 16;

    /// <summary>Events kept: the newest 10,000. Kubernetes keeps events for an hour (the API server's --event-ttl); a count
    /// bounds the store the same way whether the app is quiet or crash-looping.</summary>
    public const int EventRetention = 10_000;

    /// <summary>Rows one pruning statement deletes: 500, so a large backlog is trimmed in short steps that never hold the
    /// store for long (the reconciler writes through the same connection).</summary>
    public const int EventPruneBatch = 500;

    /// <summary>Removed replicas whose logs are kept per service, for <c>berth logs --previous</c>: 5. The kubelet keeps one
    /// dead container per container (what <c>kubectl logs --previous</c> reads); a service's replicas come and go with
    /// scaling and rollouts, so a few more are kept, each bounded by its log rotation.</summary>
    public const int TerminatedReplicasKept = 5;
}

/// <summary>How the control plane runs one app.</summary>
public sealed record OrchestratorOptions
{
    /// <summary>The app's state folder (default <c>.berth/</c> beside the spec): the store, replica logs, the API token.</summary>
    public required string StateDirectory { get; init; }

    /// <summary>See <see cref="OrchestratorDefaults.ResyncPeriod"/>.</summary>
    public TimeSpan ResyncPeriod { get; init; } = OrchestratorDefaults.ResyncPeriod;

    /// <summary>See <see cref="OrchestratorDefaults.StartConcurrency"/>.</summary>
    public int StartConcurrency { get; init; } = OrchestratorDefaults.StartConcurrency;

    /// <summary>See <see cref="OrchestratorDefaults.RevisionHistoryLimit"/>.</summary>
    public int RevisionHistoryLimit { get; init; } = OrchestratorDefaults.RevisionHistoryLimit;

    /// <summary>See <see cref="OrchestratorDefaults.TerminatedReplicasKept"/>; 0 keeps none.</summary>
    public int TerminatedReplicasKept { get; init; } = OrchestratorDefaults.TerminatedReplicasKept;

    /// <summary>See <see cref="OrchestratorDefaults.EventRetention"/>; at least 1.</summary>
    public int EventRetention { get; init; } = OrchestratorDefaults.EventRetention;

    /// <summary>Added to every replica's environment before the spec's own env (which wins): the OTLP exporter settings of
    /// the control plane's telemetry receiver. When it sets <c>OTEL_EXPORTER_OTLP_ENDPOINT</c>, each replica also gets
    /// <c>OTEL_SERVICE_NAME</c> and <c>OTEL_RESOURCE_ATTRIBUTES</c> naming its service, replica and revision, as Aspire does.</summary>
    public IReadOnlyDictionary<string, string> ReplicaEnvironment { get; init; } = new Dictionary<string, string>();

    /// <summary>Host that replica ports, probes and service URLs use: loopback.</summary>
    public string Host { get; init; } = "127.0.0.1";

    /// <summary>The runtimes whose replicas can run in pods here (the machine lets this user make network namespaces and the
    /// mesh enter them); a service asking for <c>network: isolated</c> on another runtime runs on the host network, and
    /// <see cref="PodsUnavailable"/> says why. Empty: pods are off (every replica on the host network).</summary>
    public IReadOnlySet<Core.Model.RuntimeKind> PodRuntimes { get; init; } = new HashSet<Core.Model.RuntimeKind>();

    /// <summary>Why pods cannot be made here and how to fix it, as the capability report says it; null when they can.</summary>
    public string? PodsUnavailable { get; init; }

    /// <summary>The userspace network helper that gives a process pod asking for <c>egress: true</c> a way out
    /// (slirp4netns, found on PATH at start-up); null when none is installed, and those pods keep only loopback.</summary>
    public string? EgressHelper { get; init; }
}
