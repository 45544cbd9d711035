using Berth.Mesh.Resilience;
using Berth.Mesh.Routing;

namespace Berth.Mesh.Observability;

/// <summary>
/// One finished request as a mesh listener saw it (for traces and request views). <c>Error</c> is the mesh's own
/// reason when it produced the answer (the <c>x-berth-error</c> value), else null. <c>TraceParent</c> is what the mesh sent
/// upstream (its own hop's span); <c>CallerTraceParent</c> what the caller sent, if anything (the hop's parent).
/// <c>Weight</c> is how many requests of the service this record stands for (more than 1 when the data plane sent only a
/// sample of them).
/// </summary>
public readonly record struct MeshRequestRecord(
    string Service,
    string Endpoint,
    string Method,
    string Path,
    int Status,
    string Upstream,
    int Attempts,
    DateTimeOffset Started,
    TimeSpan Elapsed,
    string? TraceParent,
    string? Error,
    string? CallerTraceParent = null,
    int Weight = 1);

/// <summary>Receives every finished request of every listener; called on the request path, so it must be quick and thread-safe.</summary>
public interface IMeshRequestObserver
{
    void OnRequest(in MeshRequestRecord request);

    /// <summary>
    /// Whether the finished request is wanted as a <see cref="MeshRequestRecord"/>: asked first, so an observer that keeps only a
    /// sample (the data plane sends 200 a second) spares the other requests the record's path string. Answering true
    /// promises that <see cref="OnRequest"/> follows for that request. Default: every request.
    /// </summary>
    bool Wants(string service, int status, bool failed) => true;
}

/// <summary>
/// A listener's request telemetry in one place: Prometheus series (children resolved once, so counting allocates
/// nothing), the access log, and the optional <see cref="IMeshRequestObserver"/> seam for traces.
/// </summary>
internal sealed class RequestTelemetry(ServiceState state, IMeshRequestObserver? observer)
{
    public void Rejected(string reason) =>
        state.Metrics.Rejections.WithLabels(state.Service, state.EndpointName, reason).Inc();

    public void AttemptAnswered(EndpointState e, int status, TimeSpan elapsed)
    {
        e.Series.Status(status).Inc();
        e.Series.Duration.Observe(elapsed.TotalSeconds);
    }

    public void AttemptFailed(EndpointState e, AttemptError error)
    {
        e.Series.Error(error).Inc();
        if (error == AttemptError.ConnectFailure)
        {
            e.Series.ConnectFailures.Inc();
        }
    }

    /// <summary>Counts a gRPC status (from a trailers-only answer, the final trailers, or the mesh's own answer).</summary>
    public void Grpc(int status) => state.GrpcStatus(status).Inc();

    public void Retried(string reason) => state.Metrics.Retries.WithLabels(state.Service, state.EndpointName, reason).Inc();

    public void RetrySkipped(string why) => state.Metrics.RetriesSkipped.WithLabels(state.Service, state.EndpointName, why).Inc();

    internal void Completed(Http.IProxyExchange x, int status, string upstream, int attempts, long startedTimestamp, TraceParent traceparent, string? error)
    {
        var time = state.Time;
        var elapsed = time.GetElapsedTime(startedTimestamp);
        state.Requests(status).Inc();
        state.RequestDuration.Observe(elapsed.TotalSeconds);
        var accessLog = state.Snapshot.Policy.AccessLog;
        var observed = observer is not null && observer.Wants(state.Service, status, error is not null);
        if (!accessLog && !observed)
        {
            return;
        }

        var path = x.Path;
        var sent = traceparent.Text();
        if (accessLog)
        {
            Log.Access(state.Logger, x.Method, path, status, upstream, elapsed.TotalMilliseconds, attempts, sent ?? "");
        }

        if (observed)
        {
            observer!.OnRequest(new MeshRequestRecord(state.Service, state.EndpointName, x.Method, path, status, upstream, attempts,
                time.GetUtcNow() - elapsed, elapsed, sent, error, x.Header(TraceContext.Header)));
        }
    }
}
