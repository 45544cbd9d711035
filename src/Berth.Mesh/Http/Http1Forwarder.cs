using System.Buffers;
using System.Globalization;
using System.IO.Pipelines;
using System.Runtime.CompilerServices;
using System.Text;
using Berth.Mesh.Observability;
using Berth.Mesh.Resilience;
using Berth.Mesh.Routing;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Primitives;

namespace Berth.Mesh.Http;

/// <summary>The request body as an attempt sends it: none, a buffered copy (replayable), or the client's stream (once).</summary>
internal readonly record struct RequestBody(byte[]? Buffered, bool Streamed, long? Length)
{
    /// <summary>For a streamed body whose start was already read (an h2 body that outgrew the replay buffer): read this instead of the request body.</summary>
    public Stream? Source { get; init; }

    public static readonly RequestBody None = new(null, false, null);
}

/// <summary>
/// One attempt's outcome: an error, or a response whose body is still to copy — on an HTTP/1.1 connection the mesh
/// owns (<see cref="Connection"/>) or an HTTP/2 stream (<see cref="Response"/>).
/// </summary>
internal readonly record struct Attempt(AttemptError Error, Http1Connection? Connection, string? Detail)
{
    public HttpResponseMessage? Response { get; init; }

    public int Status => Connection?.Head.Status ?? (Response is { } r ? (int)r.StatusCode : 0);

    /// <summary>The gRPC status when the upstream answered in headers only (how gRPC servers report most failures).</summary>
    public int? GrpcStatus => Response is { } r ? Http2Forwarder.GrpcStatus(r) : null;

    public void Dispose()
    {
        Connection?.Dispose();
        if (Response is { } r)
        {
            r.RequestMessage?.Dispose();
            r.Dispose();
        }
    }
}

/// <summary>
/// Sends one attempt to one upstream over a connection the mesh owns, and says precisely how it ended: connect
/// failure (never reached), reset after sending (may have been processed), timeout, bad response, or a response head.
/// It never re-sends anything itself; retrying is the caller's decision (<see cref="RetryDecision"/>).
/// </summary>
internal static class Http1Forwarder
{
    private static readonly HashSet<string> SkipRequestHeaders = new(StringComparer.OrdinalIgnoreCase)
    {
        // Hop-by-hop (RFC 9110 7.6.1) plus what the mesh writes itself (Host, framing, trace, forwarding).
        "Host", "Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "TE", "Trailer", "Upgrade", "Expect",
        "Content-Length", TraceContext.Header, "X-Forwarded-For",
    };

    /// <summary>Response headers never copied to the client (hop-by-hop; Kestrel frames the body itself).</summary>
    internal static readonly HashSet<string> SkipResponseHeaders = new(StringComparer.OrdinalIgnoreCase)
    {
        "Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "TE", "Trailer", "Upgrade",
    };

    private static readonly byte[] Crlf = "\r\n"u8.ToArray();
    private static readonly byte[] LastChunk = "0\r\n\r\n"u8.ToArray();

    public static ValueTask<Attempt> SendAsync(HttpContext context, EndpointState e, RequestBody body, TraceParent traceparent, string? upgrade,
        CancellationToken token)
    {
        var chunked = body.Streamed && body.Length is null;
        var head = WriteHead(context, e, body, chunked, traceparent, upgrade, out var headLength);
        return SendAsync(e, head, headLength, body, body.Streamed ? context.Request.BodyReader : null, chunked, HttpMethods.IsHead(context.Request.Method), true,
            context.RequestAborted, token);
    }

    /// <summary>
    /// Sends a request head already written into <paramref name="head"/> (a pooled buffer this takes over) and its body,
    /// then reads the response head. <paramref name="collectHeaders"/> false leaves the head's header list empty (the caller
    /// copies <see cref="Http1Connection.RawHead"/>).
    /// </summary>
    [AsyncMethodBuilder(typeof(PooledValueTaskBuilder<>))]
    public static async ValueTask<Attempt> SendAsync(EndpointState e, byte[] head, int headLength, RequestBody body, PipeReader? streamedBody, bool chunked,
        bool isHead, bool collectHeaders, CancellationToken aborted, CancellationToken token)
    {
        Http1Connection connection;
        try
        {
            connection = await e.Pool.RentAsync(token);
        }
        catch (UpstreamException ex)
        {
            ArrayPool<byte>.Shared.Return(head);
            return new Attempt(ex.Error, null, ex.Message);
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested && !aborted.IsCancellationRequested)
        {
            // The bound ran out while connecting: nothing was sent.
            ArrayPool<byte>.Shared.Return(head);
            return new Attempt(AttemptError.ConnectFailure, null, "connect did not finish within the request's time bound");
        }
        catch
        {
            ArrayPool<byte>.Shared.Return(head);
            throw;
        }

        try
        {
            if (body.Buffered is { Length: > 0 } b && headLength + b.Length <= head.Length)
            {
                // A small replayable body goes in the same packet as the head.
                b.CopyTo(head, headLength);
                await connection.SendAsync(head.AsMemory(0, headLength + b.Length), token);
            }
            else
            {
                await connection.SendAsync(head.AsMemory(0, headLength), token);
                if (body.Buffered is { Length: > 0 } big)
                {
                    await connection.SendAsync(big, token);
                }
                else if (streamedBody is not null)
                {
                    await SendStreamedBodyAsync(streamedBody, connection, chunked, token);
                }
            }

            ArrayPool<byte>.Shared.Return(head);
            head = [];
            await connection.ReadHeadAsync(isHead, token, collectHeaders);
            return new Attempt(AttemptError.None, connection, null);
        }
        catch (UpstreamException ex)
        {
            connection.Dispose();
            return new Attempt(ex.Error, null, ex.Message);
        }
        catch (ClientBodyException ex)
        {
            connection.Dispose();
            return new Attempt(AttemptError.ClientBody, null, ex.Message);
        }
        catch (OperationCanceledException) when (!aborted.IsCancellationRequested)
        {
            connection.Dispose();
            return new Attempt(AttemptError.PerTryTimeout, null, "no response within the time bound");
        }
        catch
        {
            connection.Dispose();
            throw;
        }
        finally
        {
            if (head.Length > 0)
            {
                ArrayPool<byte>.Shared.Return(head);
            }
        }
    }

    /// <summary>Copies the response (status, end-to-end headers, body) to the client and returns the connection to the pool when clean.</summary>
    public static async ValueTask CopyResponseAsync(HttpContext context, EndpointState e, Http1Connection connection, CancellationToken token)
    {
        var response = context.Response;
        var head = connection.Head;
        response.StatusCode = head.Status;
        CopyHeaders(head, response.Headers);
        if (head.ContentLength is { } length)
        {
            response.ContentLength = length;
        }

        try
        {
            await connection.CopyBodyAsync(response.BodyWriter, token);
        }
        catch (Exception ex) when (ex is IOException || (ex is OperationCanceledException && !context.RequestAborted.IsCancellationRequested))
        {
            // Headers may be out: the only honest signal left for a broken upstream body is a broken client response.
            connection.Dispose();
            context.Abort();
            return;
        }
        catch
        {
            connection.Dispose();
            throw;
        }

        e.Pool.Return(connection);
    }

    /// <summary>Copies end-to-end response headers: hop-by-hop ones and those the upstream's Connection header names are dropped.</summary>
    internal static void CopyHeaders(ResponseHead head, IHeaderDictionary to)
    {
        string? connection = null;
        foreach (var (name, value) in head.Headers)
        {
            if (name.Equals("Connection", StringComparison.OrdinalIgnoreCase))
            {
                connection = connection is null ? value : connection + "," + value;
            }
        }

        foreach (var (name, value) in head.Headers)
        {
            if (SkipResponseHeaders.Contains(name) || (connection is not null && Named(connection, name)))
            {
                continue;
            }

            var existing = to[name];
            to[name] = existing.Count == 0 ? new StringValues(value) : StringValues.Concat(existing, value);
        }
    }

    private static async ValueTask SendStreamedBodyAsync(PipeReader reader, Http1Connection connection, bool chunked, CancellationToken token)
    {
        var sizeLine = new byte[20];
        while (true)
        {
            ReadResult read;
            try
            {
                read = await reader.ReadAsync(token);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                throw new ClientBodyException(ex);
            }

            var buffer = read.Buffer;
            foreach (var segment in buffer)
            {
                if (segment.Length == 0)
                {
                    continue;
                }

                if (chunked)
                {
                    Utf8Formatter(segment.Length, sizeLine, out var n);
                    await connection.SendAsync(sizeLine.AsMemory(0, n), token);
                }

                await connection.SendAsync(segment, token);
                if (chunked)
                {
                    await connection.SendAsync(Crlf, token);
                }
            }

            reader.AdvanceTo(buffer.End);
            if (read.IsCompleted)
            {
                break;
            }
        }

        if (chunked)
        {
            await connection.SendAsync(LastChunk, token);
        }
    }

    private static void Utf8Formatter(int size, byte[] into, out int written)
    {
        size.TryFormat(into, out written, "x", CultureInfo.InvariantCulture);
        into[written++] = (byte)'\r';
        into[written++] = (byte)'\n';
    }

    /// <summary>The request head, written in place into a pooled buffer: request line, Host, end-to-end headers, trace and forwarding headers, framing.</summary>
    private static byte[] WriteHead(HttpContext context, EndpointState e, RequestBody body, bool chunked, TraceParent traceparent, string? upgrade, out int length)
    {
        var request = context.Request;
        var raw = context.Features.Get<IHttpRequestFeature>()?.RawTarget;
        var target = raw is { Length: > 0 } && raw[0] == '/' ? raw : request.Path.ToUriComponent() + request.QueryString.ToUriComponent();
        var w = new HeadWriter(ArrayPool<byte>.Shared.Rent(4096 + (body.Buffered?.Length ?? 0)));
        w.Append(request.Method);
        w.Append(" ");
        w.Append(target);
        w.Append(" HTTP/1.1\r\nHost: ");
        w.Append(e.HostHeader);
        w.Append("\r\n");

        var headers = request.Headers;
        var connection = headers.Connection;
        var named = connection.Count == 0 ? null : connection.ToString();
        string? cookie = null;
        foreach (var (name, values) in headers)
        {
            if (SkipRequestHeaders.Contains(name) || (named is not null && Named(named, name)))
            {
                continue;
            }

            if (name.Equals("Cookie", StringComparison.OrdinalIgnoreCase) && values.Count > 1)
            {
                // HTTP/2 sends cookie crumbs separately; HTTP/1.1 wants one line joined with "; " (RFC 9113 8.2.3).
                cookie = string.Join("; ", values.ToArray());
                w.Header(name, cookie);
                continue;
            }

            foreach (var value in values)
            {
                w.Header(name, value ?? "");
            }
        }

        w.Header(traceparent);
        var remote = context.Connection.RemoteIpAddress?.ToString();
        var prior = headers["X-Forwarded-For"];
        if (remote is not null)
        {
            w.Header("X-Forwarded-For", prior.Count > 0 ? prior.ToString() + ", " + remote : remote);
        }
        else if (prior.Count > 0)
        {
            w.Header("X-Forwarded-For", prior.ToString());
        }

        if (!headers.ContainsKey("X-Forwarded-Host") && request.Host.HasValue)
        {
            w.Header("X-Forwarded-Host", request.Host.Value);
        }

        if (!headers.ContainsKey("X-Forwarded-Proto"))
        {
            w.Header("X-Forwarded-Proto", request.Scheme);
        }

        if (upgrade is not null)
        {
            w.Append("Connection: Upgrade\r\nUpgrade: ");
            w.Append(upgrade);
            w.Append("\r\n");
        }

        if (body.Buffered is { } buffered)
        {
            w.Header("Content-Length", buffered.Length.ToString(CultureInfo.InvariantCulture));
        }
        else if (chunked)
        {
            w.Append("Transfer-Encoding: chunked\r\n");
        }
        else if (body.Length is { } n)
        {
            w.Header("Content-Length", n.ToString(CultureInfo.InvariantCulture));
        }
        else if (request.ContentLength == 0 || (!HttpMethods.IsGet(request.Method) && !HttpMethods.IsHead(request.Method) && request.ContentLength is null && !body.Streamed
            && (HttpMethods.IsPost(request.Method) || HttpMethods.IsPut(request.Method) || HttpMethods.IsPatch(request.Method))))
        {
            w.Append("Content-Length: 0\r\n");
        }

        w.Append("\r\n");
        length = w.Length;
        return w.Buffer;
    }

    /// <summary>True when <paramref name="name"/> is one of the comma-separated tokens of a Connection header.</summary>
    internal static bool Named(string connection, string name)
    {
        foreach (var range in connection.AsSpan().Split(','))
        {
            if (connection.AsSpan()[range].Trim().Equals(name, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Appends Latin-1 text or raw bytes to a pooled buffer, growing it from the pool.</summary>
    internal struct HeadWriter(byte[] buffer)
    {
        public byte[] Buffer = buffer;
        public int Length;

        public void Append(string text)
        {
            Ensure(text.Length);
            Length += Encoding.Latin1.GetBytes(text, Buffer.AsSpan(Length));
        }

        public void Header(string name, string value)
        {
            Ensure(name.Length + value.Length + 4);
            var span = Buffer.AsSpan(Length);
            var n = Encoding.Latin1.GetBytes(name, span);
            span[n++] = (byte)':';
            span[n++] = (byte)' ';
            n += Encoding.Latin1.GetBytes(value, span[n..]);
            span[n++] = (byte)'\r';
            span[n++] = (byte)'\n';
            Length += n;
        }

        /// <summary>The <c>traceparent</c> header line, written from its parts (no string).</summary>
        public void Header(TraceParent traceparent)
        {
            Ensure(TraceContext.Header.Length + TraceParent.Length + 4);
            Append("traceparent: "u8);
            traceparent.WriteTo(Buffer.AsSpan(Length));
            Length += TraceParent.Length;
            Append("\r\n"u8);
        }

        public void Append(ReadOnlySpan<byte> bytes)
        {
            Ensure(bytes.Length);
            bytes.CopyTo(Buffer.AsSpan(Length));
            Length += bytes.Length;
        }

        public void Header(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value)
        {
            Ensure(name.Length + value.Length + 4);
            var span = Buffer.AsSpan(Length);
            name.CopyTo(span);
            var n = name.Length;
            span[n++] = (byte)':';
            span[n++] = (byte)' ';
            value.CopyTo(span[n..]);
            n += value.Length;
            span[n++] = (byte)'\r';
            span[n++] = (byte)'\n';
            Length += n;
        }

        private void Ensure(int more)
        {
            if (Length + more <= Buffer.Length)
            {
                return;
            }

            var bigger = ArrayPool<byte>.Shared.Rent(Math.Max(Buffer.Length * 2, Length + more));
            Buffer.AsSpan(0, Length).CopyTo(bigger);
            ArrayPool<byte>.Shared.Return(Buffer);
            Buffer = bigger;
        }
    }
}
