using Prometheus;

namespace Berth.Mesh.Observability;

/// <summary>The mesh's Prometheus series, in a registry of its own (so several hosts in one process do not mix).</summary>
internal sealed class MeshMetrics
{
    private static readonly double[] LatencyBuckets =
        [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

    public MeshMetrics()
    {
        Registry = Metrics.NewCustomRegistry();
        var f = Metrics.WithCustomRegistry(Registry);
        Requests = f.CreateCounter("berth_mesh_requests_total", "Requests answered by a mesh listener, by final status.", ["service", "endpoint", "code"]);
        RequestDuration = f.CreateHistogram("berth_mesh_request_duration_seconds", "Time from request to response headers at the listener, retries included.",
            new HistogramConfiguration { LabelNames = ["service", "endpoint"], Buckets = LatencyBuckets });
        UpstreamRequests = f.CreateCounter("berth_mesh_upstream_requests_total", "Attempts sent to upstream replicas, by status (or 'error' for transport failures).", ["service", "endpoint", "upstream", "code"]);
        UpstreamDuration = f.CreateHistogram("berth_mesh_upstream_duration_seconds", "Time from sending an attempt to its response headers.",
            new HistogramConfiguration { LabelNames = ["service", "endpoint", "upstream"], Buckets = LatencyBuckets });
        Retries = f.CreateCounter("berth_mesh_retries_total", "Retries sent, by reason.", ["service", "endpoint", "reason"]);
        RetriesSkipped = f.CreateCounter("berth_mesh_retries_skipped_total", "Retriable failures not retried, by why (budget, method, body, attempts, deadline).", ["service", "endpoint", "why"]);
        Ejections = f.CreateCounter("berth_mesh_ejections_total", "Outlier ejections.", ["service", "endpoint", "upstream"]);
        Ejected = f.CreateGauge("berth_mesh_upstream_ejected", "1 while an upstream is ejected.", ["service", "endpoint", "upstream"]);
        Breaker = f.CreateGauge("berth_mesh_circuit_state", "Circuit breaker state: 0 closed, 1 open, 2 half-open.", ["service", "endpoint", "scope", "upstream"]);
        Rejections = f.CreateCounter("berth_mesh_rejected_total", "Requests failed fast by a breaker or a concurrency limit.", ["service", "endpoint", "reason"]);
        OpenConnections = f.CreateGauge("berth_mesh_open_connections", "Client connections open on a listener.", ["service", "endpoint"]);
        ActiveRequests = f.CreateGauge("berth_mesh_active_requests", "Requests in flight through a listener.", ["service", "endpoint"]);
        UpstreamConnections = f.CreateCounter("berth_mesh_tcp_connections_total", "TCP connections proxied, by upstream ('none' when every connect failed).", ["service", "endpoint", "upstream"]);
        Healthy = f.CreateGauge("berth_mesh_upstream_healthy", "1 while an upstream passes active health checks (always 1 without a probe).", ["service", "endpoint", "upstream"]);
        GrpcStatus = f.CreateCounter("berth_mesh_grpc_responses_total", "gRPC calls answered through a listener, by gRPC status code.", ["service", "endpoint", "grpc_status"]);
        ConnectFailures = f.CreateCounter("berth_mesh_connect_failures_total", "Failed connects to upstreams.", ["service", "endpoint", "upstream"]);
    }

    public CollectorRegistry Registry { get; }

    public Counter Requests { get; }

    public Histogram RequestDuration { get; }

    public Counter UpstreamRequests { get; }

    public Histogram UpstreamDuration { get; }

    public Counter Retries { get; }

    public Counter RetriesSkipped { get; }

    public Counter Ejections { get; }

    public Gauge Ejected { get; }

    public Gauge Breaker { get; }

    public Counter Rejections { get; }

    public Gauge OpenConnections { get; }

    public Gauge ActiveRequests { get; }

    public Counter UpstreamConnections { get; }

    public Counter ConnectFailures { get; }

    public Counter GrpcStatus { get; }

    public Gauge Healthy { get; }

    public Task WriteAsync(Stream stream, CancellationToken cancellationToken) => Registry.CollectAndExportAsTextAsync(stream, cancellationToken);
}
