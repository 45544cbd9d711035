using Berth.Core.Model;
using Berth.Mesh.Observability;
using Berth.Mesh.Routing;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace Berth.Mesh.Http;

/// <summary>
/// One client request and its response as <see cref="HttpProxy"/> sees them, whoever parsed the request: Kestrel
/// (<see cref="KestrelExchange"/>: HTTP/2, gRPC and every HTTP/1.1 request the mesh's own server hands over) or the
/// mesh's own HTTP/1.1 server (<see cref="Http1ServerConnection"/>).
/// </summary>
internal interface IProxyExchange
{
    string Method { get; }

    /// <summary>The path for telemetry (only read when an access log or observer wants it).</summary>
    string Path { get; }

    CancellationToken Aborted { get; }

    bool ResponseStarted { get; }

    /// <summary>A request header's value (several lines joined with a comma), or null when absent or empty.</summary>
    string? Header(string name);

    string? Cookie(string name);

    /// <summary>The body as an attempt sends it (buffered for replay when the policy may retry); throws when reading the client's body fails.</summary>
    ValueTask<RequestBody> ReadBodyAsync(RouteSnapshot s, int maxAttempts, bool idempotent);

    void SetStatus(int status);

    void SetHeader(string name, string value);

    /// <summary>Forgets a status and headers set for a response not yet started.</summary>
    void ClearResponse();

    /// <summary>Breaks the client connection (the only honest signal once a response has started).</summary>
    void Abort();

    ValueTask<Attempt> SendHttp1Async(EndpointState e, RequestBody body, TraceParent traceparent, CancellationToken token);

    ValueTask CopyHttp1ResponseAsync(EndpointState e, Http1Connection connection, CancellationToken token);

    /// <summary>The request's timer (a connection serving requests one after another keeps one for all of them).</summary>
    RequestTimer Timer(TimeProvider time);
}

/// <summary>A request Kestrel parsed: the exchange over its <see cref="HttpContext"/>.</summary>
internal sealed class KestrelExchange(HttpContext context) : IProxyExchange
{
    public HttpContext Context { get; } = context;

    public string Method => Context.Request.Method;

    public string Path => Context.Request.Path.Value ?? "/";

    public CancellationToken Aborted => Context.RequestAborted;

    public bool ResponseStarted => Context.Response.HasStarted;

    public string? Header(string name) => Context.Request.Headers[name].ToString() is { Length: > 0 } v ? v : null;

    public string? Cookie(string name) => Context.Request.Cookies[name];

    public async ValueTask<RequestBody> ReadBodyAsync(RouteSnapshot s, int maxAttempts, bool idempotent)
    {
        var request = Context.Request;
        var policy = s.Policy;
        var hasBody = Context.Features.Get<IHttpRequestBodyDetectionFeature>()?.CanHaveBody ?? request.ContentLength > 0;
        if (!hasBody)
        {
            return RequestBody.None;
        }

        // A refused connect never reached the replica, so even a POST may go to another one: bodies are buffered for that too.
        if (maxAttempts > 1 && (idempotent || policy.Retries.NonIdempotent || s.Retry.ConnectFailure)
            && request.ContentLength is long length && length <= policy.Retries.MaxBufferedBody.Bytes)
        {
            var buffered = new byte[length];
            await request.Body.ReadExactlyAsync(buffered, Context.RequestAborted);
            return new RequestBody(buffered, false, length);
        }

        if (maxAttempts > 1 && request.ContentLength is null && s.Route.Endpoint.Protocol.IsHttp2() && s.Retry.GrpcStatuses.Count + s.Retry.Statuses.Count > 0)
        {
            // HTTP/2 bodies (gRPC calls) often come without a length: buffer up to the replay limit, else stream on.
            return await BufferUpToAsync(request.Body, policy.Retries.MaxBufferedBody.Bytes, Context.RequestAborted);
        }

        return new RequestBody(null, true, request.ContentLength);
    }

    public RequestTimer Timer(TimeProvider time) => new(time);

    public void SetStatus(int status) => Context.Response.StatusCode = status;

    public void SetHeader(string name, string value) => Context.Response.Headers[name] = value;

    public void ClearResponse() => Context.Response.Clear();

    public void Abort() => Context.Abort();

    public ValueTask<Attempt> SendHttp1Async(EndpointState e, RequestBody body, TraceParent traceparent, CancellationToken token) =>
        Http1Forwarder.SendAsync(Context, e, body, traceparent, null, token);

    public ValueTask CopyHttp1ResponseAsync(EndpointState e, Http1Connection connection, CancellationToken token) =>
        Http1Forwarder.CopyResponseAsync(Context, e, connection, token);

    private static async Task<RequestBody> BufferUpToAsync(Stream body, long limit, CancellationToken cancellationToken)
    {
        var buffer = new MemoryStream();
        var chunk = new byte[16 * 1024];
        while (true)
        {
            var n = await body.ReadAsync(chunk, cancellationToken);
            if (n == 0)
            {
                return new RequestBody(buffer.ToArray(), false, buffer.Length);
            }

            buffer.Write(chunk, 0, n);
            if (buffer.Length > limit)
            {
                buffer.Position = 0;
                return new RequestBody(null, true, null) { Source = new ConcatenatedStream(buffer, body) };
            }
        }
    }

    /// <summary>Reads <paramref name="first"/> then <paramref name="rest"/>: a body whose start was buffered and whose rest still streams.</summary>
    private sealed class ConcatenatedStream(Stream first, Stream rest) : Stream
    {
        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            var n = await first.ReadAsync(buffer, cancellationToken);
            return n > 0 ? n : await rest.ReadAsync(buffer, cancellationToken);
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
