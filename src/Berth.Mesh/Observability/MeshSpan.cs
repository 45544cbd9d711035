namespace Berth.Mesh.Observability;

/// <summary>One request a mesh listener proxied, as a span of the caller's trace (W3C trace context): the dashboard's
/// traces, service graph and request metrics are built from these.</summary>
/// <param name="TraceId">32 lowercase hex digits.</param>
/// <param name="SpanId">The mesh hop's span id: the parent id the upstream replica received in its traceparent.</param>
/// <param name="ParentSpanId">The caller's span id from its traceparent; null when the request came without one.</param>
/// <param name="Service">The service whose listener took the request (the callee).</param>
/// <param name="Endpoint">The callee's endpoint.</param>
/// <param name="Method">The HTTP method.</param>
/// <param name="Path">The request path, without the query (which may carry secrets).</param>
/// <param name="Status">The status the caller got; 499 when it went away first.</param>
/// <param name="Upstream">The replica that answered last, or "-" when none was tried.</param>
/// <param name="Attempts">Attempts sent to upstreams (retries are attempts − 1).</param>
/// <param name="Start">When the listener took the request.</param>
/// <param name="Duration">Until the response headers (or the failure), retries included.</param>
public sealed record MeshSpan(
    string TraceId,
    string SpanId,
    string? ParentSpanId,
    string Service,
    string Endpoint,
    string Method,
    string Path,
    int Status,
    string Upstream,
    int Attempts,
    DateTimeOffset Start,
    TimeSpan Duration);

/// <summary>Receives every proxied HTTP request once it is answered. Called on the request path: keep it cheap and never throw.</summary>
public interface IMeshSpanSink
{
    void Record(MeshSpan span);
}

internal static class MeshSpanRecording
{
    /// <summary>Records the span of a request the proxy answered; requests that never got a traceparent (rejected before
    /// forwarding) are not spans of anything and are left out.</summary>
    public static void Record(this IMeshSpanSink sink, Microsoft.AspNetCore.Http.HttpContext context, Routing.ServiceState state,
        int status, string upstream, int attempts, DateTimeOffset start, TimeSpan duration)
    {
        if (!context.Items.TryGetValue(TraceContext.Header, out var value) || value is not string sent || sent.Length < 52)
        {
            return;
        }

        var incoming = context.Request.Headers[TraceContext.Header].ToString();
        var parent = TraceContext.TryParse(incoming, out var traceId, out _) && traceId == sent.Substring(3, 32) ? incoming.Substring(36, 16) : null;
        try
        {
            sink.Record(new MeshSpan(sent.Substring(3, 32), sent.Substring(36, 16), parent, state.Service, state.EndpointName,
                context.Request.Method, context.Request.Path.Value ?? "/", status, upstream, attempts, start, duration));
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // A sink fault must never fail the request it describes.
        }
    }
}
