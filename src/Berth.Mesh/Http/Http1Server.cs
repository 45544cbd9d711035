using System.Runtime.CompilerServices;
using System.Buffers;
using System.Collections.Concurrent;
using System.Globalization;
using System.IO.Pipelines;
using System.Net;
using System.Text;
using Berth.Mesh.Observability;
using Berth.Mesh.Routing;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;

namespace Berth.Mesh.Http;

/// <summary>
/// The mesh's own HTTP/1.1 server for plain HTTP listeners, as Kestrel connection middleware: it reads requests straight
/// from the connection's pipe, parses the head in place and forwards it through <see cref="HttpProxy"/> with no
/// <c>HttpContext</c>, header dictionary or per-request Kestrel state. It owns only requests it can read whole and without
/// doubt (origin-form HTTP/1.1, a complete head within Kestrel's limits, no Transfer-Encoding, Expect or Upgrade, a
/// Content-Length body already received); at the first request it does not own, it hands the connection, with that
/// request unread, to Kestrel, which answers it as before (400, 414, 431, chunked bodies, 100-continue, WebSocket,
/// header timeouts) and keeps the connection.
/// </summary>
internal sealed class Http1Server : IDisposable
{
    /// <summary>8 KiB, Kestrel's MaxRequestLineSize (longer: handed to Kestrel, which answers 414).</summary>
    public const int MaxRequestLine = 8 * 1024;

    /// <summary>32 KiB, Kestrel's MaxRequestHeadersTotalSize (larger: handed to Kestrel, which answers 431).</summary>
    public const int MaxHeadersTotal = 32 * 1024;

    /// <summary>100, Kestrel's MaxRequestHeaderCount.</summary>
    public const int MaxHeaderCount = 100;

    /// <summary>Request bodies up to 64 KiB that have fully arrived with their head are owned; larger or later ones go to Kestrel.</summary>
    public const int MaxOwnedBody = 64 * 1024;

    private readonly ConcurrentDictionary<Http1ServerConnection, byte> _open = new();
    private readonly ITimer _heartbeat;
    private byte[] _date = [];
    private long _dateSecond = -1;

    /// <param name="proxy">The listener's request path.</param>
    /// <param name="state">The listener's state (time, snapshot).</param>
    /// <param name="firstRequestTimeout">How long a new connection may send nothing (a partial head is Kestrel's, with the same bound).</param>
    /// <param name="keepAliveTimeout">How long a connection may idle between requests.</param>
    public Http1Server(HttpProxy proxy, ServiceState state, TimeSpan firstRequestTimeout, TimeSpan keepAliveTimeout)
    {
        Proxy = proxy;
        State = state;
        FirstRequestTimeout = firstRequestTimeout;
        KeepAliveTimeout = keepAliveTimeout;
        _heartbeat = state.Time.CreateTimer(_ => Heartbeat(), null, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1));
    }

    public HttpProxy Proxy { get; }

    public ServiceState State { get; }

    public TimeSpan FirstRequestTimeout { get; }

    public TimeSpan KeepAliveTimeout { get; }

    /// <summary>Kestrel connection middleware: serves what it owns, then passes the connection on to Kestrel's HTTP stack (or ends it).</summary>
    public ConnectionDelegate Middleware(ConnectionDelegate next) => async connection =>
    {
        var c = new Http1ServerConnection(this, connection);
        _open[c] = 0;
        bool handOver;
        try
        {
            handOver = await c.ServeAsync();
        }
        finally
        {
            _open.TryRemove(c, out _);
            c.Dispose();
        }

        if (handOver)
        {
            await next(connection);
        }
    };

    /// <summary>The <c>Date</c> header line, formatted once a second (RFC 9110 6.6.1: an origin with a clock sends it; Kestrel always does).</summary>
    public byte[] DateLine()
    {
        var now = State.Time.GetUtcNow();
        var second = now.ToUnixTimeSeconds();
        if (second != Volatile.Read(ref _dateSecond))
        {
            Volatile.Write(ref _date, Encoding.ASCII.GetBytes("Date: " + now.ToString("r", CultureInfo.InvariantCulture) + "\r\n"));
            Volatile.Write(ref _dateSecond, second);
        }

        return Volatile.Read(ref _date);
    }

    public void Dispose() => _heartbeat.Dispose();

    private void Heartbeat()
    {
        var now = State.Time.GetTimestamp();
        foreach (var (c, _) in _open)
        {
            c.CheckIdle(now);
        }
    }
}

/// <summary>One client connection of <see cref="Http1Server"/>, and the exchange of the request it is serving (one at a time, in order).</summary>
internal sealed class Http1ServerConnection : IProxyExchange, IDisposable
{
    private static readonly SearchValues<byte> TokenChars = SearchValues.Create("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"u8);

    // An origin-form target as RFC 3986 allows it (pchar, "/", "?", and %-escapes); anything else goes to Kestrel to judge.
    private static readonly SearchValues<byte> TargetChars = SearchValues.Create("!$&'()*+,-./0123456789:;=?@ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz~%"u8);
    private static readonly SearchValues<byte> HostChars = SearchValues.Create("-.0123456789:ABCDEFGHIJKLMNOPQRSTUVWXYZ[]_abcdefghijklmnopqrstuvwxyz"u8);
    private static readonly SearchValues<byte> ValueChars = SearchValues.Create(Enumerable.Range(0x20, 0x7f - 0x20).Select(b => (byte)b).Append((byte)'\t').ToArray());
    private static readonly byte[] HeadEnd = "\r\n\r\n"u8.ToArray();

    private readonly Http1Server _server;
    private readonly ConnectionContext _connection;
    private readonly PipeReader _input;
    private readonly PipeWriter _output;
    private readonly CancellationTokenRegistration _closeRequest;

    // The request head being served: [name start, name length, value start, value length, kind] per header line, into _head.
    private readonly int[] _headers = new int[Http1Server.MaxHeaderCount * 5];
    private int _headerCount;
    private ReadOnlyMemory<byte> _head;
    private byte[]? _copy;
    private int _targetStart;
    private int _targetLength;
    private int _host = -1;
    private bool _hasConnectionHeader;
    private bool _hasContentLength;
    private bool _hasForwardedHost;
    private bool _hasForwardedProto;
    private bool _hasCookie;
    private byte[]? _body;
    private string _method = "";
    private byte[]? _remote;
    private RequestTimer? _timer;

    // The response: started once the upstream's head is written; otherwise the mesh's own answer, written when the request ends.
    private bool _started;
    private int _status;
    private readonly List<KeyValuePair<string, string>> _answerHeaders = [];
    private bool _close;
    private volatile bool _closeRequested;
    private volatile bool _timedOut;
    private long _idleSince;
    private volatile bool _idle;
    private bool _first = true;

    public Http1ServerConnection(Http1Server server, ConnectionContext connection)
    {
        _server = server;
        _connection = connection;
        _input = connection.Transport.Input;
        _output = connection.Transport.Output;
        if (connection.Features.Get<IConnectionLifetimeNotificationFeature>() is { } lifetime)
        {
            // The listener is stopping: finish the request in flight, then close (an idle connection closes at once).
            _closeRequest = lifetime.ConnectionClosedRequested.UnsafeRegister(static state =>
            {
                var self = (Http1ServerConnection)state!;
                self._closeRequested = true;
                self._input.CancelPendingRead();
            }, this);
        }
    }

    public string Method => _method;

    public string Path
    {
        get
        {
            var target = _head.Span.Slice(_targetStart, _targetLength);
            var query = target.IndexOf((byte)'?');
            return Encoding.ASCII.GetString(query < 0 ? target : target[..query]);
        }
    }

    public CancellationToken Aborted => _connection.ConnectionClosed;

    public bool ResponseStarted => _started;

    /// <summary>Serves requests until the connection ends (false) or a request it does not own arrives (true: Kestrel takes over from that request).</summary>
    public async Task<bool> ServeAsync()
    {
        while (true)
        {
            _idleSince = _server.State.Time.GetTimestamp();
            _idle = true;
            ReadResult read;
            try
            {
                read = await _input.ReadAsync();
            }
            catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException or InvalidOperationException)
            {
                return false;
            }
            finally
            {
                _idle = false;
            }

            var buffer = read.Buffer;
            if (_timedOut || (_closeRequested && buffer.IsEmpty))
            {
                _input.AdvanceTo(buffer.End);
                return false;
            }

            if (buffer.IsEmpty)
            {
                _input.AdvanceTo(buffer.End);
                if (read.IsCompleted)
                {
                    return false;
                }

                continue;
            }

            var length = Parse(buffer);
            if (length < 0)
            {
                // Nothing examined: Kestrel reads this request from its first byte.
                _input.AdvanceTo(buffer.Start, buffer.Start);
                return true;
            }

            _first = false;
            await _server.Proxy.RunAsync(this);
            var keepOpen = await FinishAsync();
            _input.AdvanceTo(buffer.GetPosition(length));
            ResetRequest();
            if (!keepOpen)
            {
                return false;
            }
        }
    }

    /// <summary>Closes a connection idle past its bound (called from the listener's heartbeat).</summary>
    public void CheckIdle(long now)
    {
        if (_idle && _server.State.Time.GetElapsedTime(_idleSince, now) > (_first ? _server.FirstRequestTimeout : _server.KeepAliveTimeout))
        {
            _timedOut = true;
            _input.CancelPendingRead();
        }
    }

    public string? Header(string name)
    {
        var head = _head.Span;
        string? found = null;
        for (var i = 0; i < _headerCount; i++)
        {
            var h = _headers.AsSpan(i * 5, 5);
            if (h[1] == name.Length && Ascii.EqualsIgnoreCase(head.Slice(h[0], h[1]), name) && h[3] > 0)
            {
                var value = Encoding.ASCII.GetString(head.Slice(h[2], h[3]));
                found = found is null ? value : found + "," + value;
            }
        }

        return found;
    }

    public string? Cookie(string name)
    {
        if (Header("Cookie") is not { } cookies)
        {
            return null;
        }

        foreach (var range in cookies.AsSpan().Split(';'))
        {
            var pair = cookies.AsSpan()[range].Trim();
            var eq = pair.IndexOf('=');
            if (eq > 0 && pair[..eq].Trim().Equals(name, StringComparison.Ordinal))
            {
                return pair[(eq + 1)..].Trim().Trim('"').ToString();
            }
        }

        return null;
    }

    public ValueTask<RequestBody> ReadBodyAsync(RouteSnapshot s, int maxAttempts, bool idempotent) =>
        ValueTask.FromResult(_body is { } b ? new RequestBody(b, false, b.Length) : RequestBody.None);

    public RequestTimer Timer(TimeProvider time) => _timer ??= new RequestTimer(time) { Reusable = true };

    public void SetStatus(int status) => _status = status;

    public void SetHeader(string name, string value)
    {
        for (var i = 0; i < _answerHeaders.Count; i++)
        {
            if (_answerHeaders[i].Key.Equals(name, StringComparison.OrdinalIgnoreCase))
            {
                _answerHeaders[i] = new(name, value);
                return;
            }
        }

        _answerHeaders.Add(new(name, value));
    }

    public void ClearResponse()
    {
        _status = 0;
        _answerHeaders.Clear();
    }

    public void Abort()
    {
        _close = true;
        _connection.Abort(new ConnectionAbortedException("berth mesh: the upstream response broke off"));
    }

    public ValueTask<Attempt> SendHttp1Async(EndpointState e, RequestBody body, TraceParent traceparent, CancellationToken token)
    {
        var head = _head.Span;
        var w = new Http1Forwarder.HeadWriter(ArrayPool<byte>.Shared.Rent(4096 + (body.Buffered?.Length ?? 0)));
        w.Append(head[..(_targetStart + _targetLength)]);
        w.Append(" HTTP/1.1\r\nHost: "u8);
        w.Append(e.HostHeader);
        w.Append("\r\n"u8);
        ReadOnlySpan<byte> forwardedFor = default;
        string? forwardedForJoined = null;
        for (var i = 0; i < _headerCount; i++)
        {
            var h = _headers.AsSpan(i * 5, 5);
            var name = head.Slice(h[0], h[1]);
            switch ((Kind)h[4])
            {
                case Kind.Other when _hasConnectionHeader && NamedByConnection(head, name):
                    continue;
                case Kind.Other or Kind.ForwardedHost or Kind.ForwardedProto:
                    w.Header(name, head.Slice(h[2], h[3]));
                    break;
                case Kind.ForwardedFor:
                    if (forwardedFor.IsEmpty && forwardedForJoined is null)
                    {
                        forwardedFor = head.Slice(h[2], h[3]);
                    }
                    else
                    {
                        forwardedForJoined = (forwardedForJoined ?? Encoding.ASCII.GetString(forwardedFor)) + "," + Encoding.ASCII.GetString(head.Slice(h[2], h[3]));
                    }

                    break;
                case Kind.Host or Kind.ContentLength or Kind.Connection or Kind.HopByHop or Kind.TraceParent or Kind.Cookie or Kind.Refused:
                    break;
            }
        }

        w.Header(traceparent);
        _remote ??= Encoding.ASCII.GetBytes((_connection.RemoteEndPoint as IPEndPoint)?.Address.ToString() ?? "");
        var hasPrior = !forwardedFor.IsEmpty || forwardedForJoined is not null;
        if (hasPrior || _remote.Length > 0)
        {
            // The caller's chain, then the address the mesh saw (as the Kestrel path and nginx's $proxy_add_x_forwarded_for).
            w.Append("X-Forwarded-For: "u8);
            if (forwardedForJoined is not null)
            {
                w.Append(forwardedForJoined);
            }
            else
            {
                w.Append(forwardedFor);
            }

            if (hasPrior && _remote.Length > 0)
            {
                w.Append(", "u8);
            }

            w.Append(_remote);
            w.Append("\r\n"u8);
        }
        if (!_hasForwardedHost && _host >= 0 && _headers[(_host * 5) + 3] > 0)
        {
            w.Header("X-Forwarded-Host"u8, head.Slice(_headers[(_host * 5) + 2], _headers[(_host * 5) + 3]));
        }

        if (!_hasForwardedProto)
        {
            w.Append("X-Forwarded-Proto: http\r\n"u8);
        }

        if (body.Buffered is { } buffered)
        {
            w.Header("Content-Length", buffered.Length.ToString(CultureInfo.InvariantCulture));
        }
        else if (_hasContentLength || _method is "POST" or "PUT" or "PATCH")
        {
            w.Append("Content-Length: 0\r\n"u8);
        }

        w.Append("\r\n"u8);
        return Http1Forwarder.SendAsync(e, w.Buffer, w.Length, body, null, false, _method == "HEAD", false, Aborted, token);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask CopyHttp1ResponseAsync(EndpointState e, Http1Connection connection, CancellationToken token)
    {
        var head = connection.Head;
        _started = true;
        var chunkedOut = !head.NoBody && head.ContentLength is null;
        WriteResponseHead(connection.RawHead, head, chunkedOut);
        try
        {
            await connection.CopyBodyAsync(_output, token, chunkedOut);
            await FlushAsync(token);
        }
        catch (Exception ex) when (ex is IOException || (ex is OperationCanceledException && !Aborted.IsCancellationRequested))
        {
            // Headers may be out: the only honest signal left for a broken upstream body is a broken client response.
            connection.Dispose();
            Abort();
            return;
        }
        catch
        {
            connection.Dispose();
            throw;
        }

        e.Pool.Return(connection);
    }

    public void Dispose()
    {
        _closeRequest.Dispose();
        _timer?.Release();
    }

    /// <summary>The status line and end-to-end headers as the upstream sent them, then the framing (and Date, Connection: close) the mesh owns.</summary>
    private void WriteResponseHead(ReadOnlySpan<byte> raw, ResponseHead head, bool chunkedOut)
    {
        var eol = raw.IndexOf("\r\n"u8);
        var statusLine = eol < 0 ? raw : raw[..eol];
        var rest = eol < 0 ? [] : raw[(eol + 2)..];
        ReadOnlySpan<byte> connectionValue = default;
        var connectionHeaders = 0;
        for (var lines = rest; lines.Length > 0;)
        {
            var end = lines.IndexOf("\r\n"u8);
            var line = end < 0 ? lines : lines[..end];
            lines = end < 0 ? [] : lines[(end + 2)..];
            if (line.Length > 11 && Ascii.EqualsIgnoreCase(line[..11], "Connection:"u8))
            {
                connectionValue = line[11..];
                connectionHeaders++;
            }
        }

        Write("HTTP/1.1 "u8);
        Write(statusLine[9..]);
        Write("\r\n"u8);
        var sawDate = false;
        for (var lines = rest; lines.Length > 0;)
        {
            var end = lines.IndexOf("\r\n"u8);
            var line = end < 0 ? lines : lines[..end];
            lines = end < 0 ? [] : lines[(end + 2)..];
            var colon = line.IndexOf((byte)':');
            if (colon <= 0)
            {
                continue;
            }

            var name = line[..colon];
            if (IsResponseHopByHop(name) || (connectionHeaders == 1 && Http1Connection.ContainsToken(connectionValue, name))
                || (connectionHeaders > 1 && NamedByResponseConnection(rest, name)))
            {
                continue;
            }

            sawDate |= name.Length == 4 && Ascii.EqualsIgnoreCase(name, "Date"u8);
            Write(line);
            Write("\r\n"u8);
        }

        if (head.ContentLength is { } length && head.Status != 204)
        {
            Write("Content-Length: "u8);
            var span = _output.GetSpan(20);
            length.TryFormat(span, out var n, default, CultureInfo.InvariantCulture);
            _output.Advance(n);
            Write("\r\n"u8);
        }
        else if (chunkedOut)
        {
            Write("Transfer-Encoding: chunked\r\n"u8);
        }

        if (!sawDate)
        {
            Write(_server.DateLine());
        }

        if (_close || _closeRequested)
        {
            _close = true;
            Write("Connection: close\r\n"u8);
        }

        Write("\r\n"u8);
    }

    /// <summary>Writes the mesh's own answer when no upstream response was copied, then flushes; false when the connection must close.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<bool> FinishAsync()
    {
        if (!_started && !_connection.ConnectionClosed.IsCancellationRequested)
        {
            var status = _status == 0 ? 502 : _status;
            Write("HTTP/1.1 "u8);
            Write(Encoding.ASCII.GetBytes(status.ToString(CultureInfo.InvariantCulture) + " " + Microsoft.AspNetCore.WebUtilities.ReasonPhrases.GetReasonPhrase(status) + "\r\n"));
            foreach (var (name, value) in _answerHeaders)
            {
                Write(Encoding.ASCII.GetBytes(name + ": " + value + "\r\n"));
            }

            Write("Content-Length: 0\r\n"u8);
            Write(_server.DateLine());
            if (_close || _closeRequested)
            {
                _close = true;
                Write("Connection: close\r\n"u8);
            }

            Write("\r\n"u8);
            try
            {
                await FlushAsync(CancellationToken.None);
            }
            catch (Exception e) when (e is IOException or OperationCanceledException)
            {
                return false;
            }
        }

        return !_close && !_closeRequested && !_connection.ConnectionClosed.IsCancellationRequested;
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask FlushAsync(CancellationToken token)
    {
        if (_output.CanGetUnflushedBytes && _output.UnflushedBytes == 0)
        {
            return;
        }

        var result = await _output.FlushAsync(token);
        if (result.IsCompleted || result.IsCanceled)
        {
            throw new OperationCanceledException("the client stopped reading the response");
        }
    }

    private void Write(ReadOnlySpan<byte> bytes) => _output.Write(bytes);

    private void ResetRequest()
    {
        _started = false;
        _status = 0;
        _answerHeaders.Clear();
        _body = null;
        _headerCount = 0;
        _host = -1;
        _hasConnectionHeader = _hasContentLength = _hasForwardedHost = _hasForwardedProto = _hasCookie = false;
        _head = default;
    }

    /// <summary>The length of the request at the start of <paramref name="buffer"/> (head and body) when this server owns it; -1 when Kestrel must.</summary>
    private long Parse(in ReadOnlySequence<byte> buffer)
    {
        const int Limit = Http1Server.MaxRequestLine + Http1Server.MaxHeadersTotal;
        ReadOnlyMemory<byte> data = buffer.First;
        var end = data.Span.IndexOf(HeadEnd);
        if (end < 0 && !buffer.IsSingleSegment)
        {
            // A head across pipe segments (rare): one copy, bounded by the limits.
            var n = (int)Math.Min(buffer.Length, Limit);
            if (_copy is null || _copy.Length < n)
            {
                _copy = new byte[Math.Max(n, 4096)];
            }

            buffer.Slice(0, n).CopyTo(_copy);
            data = _copy.AsMemory(0, n);
            end = data.Span.IndexOf(HeadEnd);
        }

        if (end < 0 || end > Limit)
        {
            return -1;
        }

        _head = data[..(end + 2)];
        if (!ParseHead(_head.Span))
        {
            return -1;
        }

        var headLength = end + 4;
        if (_body is null && _hasContentLength && ContentLength > 0)
        {
            if (ContentLength > Math.Min(Http1Server.MaxOwnedBody, _server.State.Snapshot.Policy.Retries.MaxBufferedBody.Bytes) || buffer.Length < headLength + ContentLength)
            {
                return -1;
            }

            _body = new byte[ContentLength];
            buffer.Slice(headLength, ContentLength).CopyTo(_body);
        }

        return headLength + (_hasContentLength ? ContentLength : 0);
    }

    private long ContentLength { get; set; }

    private bool ParseHead(ReadOnlySpan<byte> head)
    {
        var eol = head.IndexOf("\r\n"u8);
        if (eol > Http1Server.MaxRequestLine || head.Length - eol - 2 > Http1Server.MaxHeadersTotal)
        {
            return false;
        }

        // method SP origin-form SP HTTP/1.1 (RFC 9112 3)
        var line = head[..eol];
        var sp = line.IndexOf((byte)' ');
        if (sp <= 0 || line[..sp].ContainsAnyExcept(TokenChars))
        {
            return false;
        }

        var method = line[..sp];
        var target = line[(sp + 1)..];
        var sp2 = target.IndexOf((byte)' ');
        if (sp2 <= 0 || target[0] != (byte)'/' || !target[(sp2 + 1)..].SequenceEqual("HTTP/1.1"u8) || target[..sp2].ContainsAnyExcept(TargetChars))
        {
            return false;
        }

        _method = KnownMethod(method) ?? Encoding.ASCII.GetString(method);
        if (_method == "CONNECT")
        {
            return false;
        }

        _targetStart = sp + 1;
        _targetLength = sp2;
        ContentLength = 0;
        var pos = eol + 2;
        var closeNamed = false;
        while (pos < head.Length)
        {
            var rest = head[pos..];
            var end = rest.IndexOf("\r\n"u8);
            var headerLine = rest[..end];
            if (_headerCount == Http1Server.MaxHeaderCount || headerLine.Length == 0 || headerLine[0] is (byte)' ' or (byte)'\t')
            {
                // Too many headers, or obs-fold (RFC 9112 5.2): Kestrel's answer.
                return false;
            }

            var colon = headerLine.IndexOf((byte)':');
            if (colon <= 0 || headerLine[..colon].ContainsAnyExcept(TokenChars))
            {
                return false;
            }

            var valueStart = colon + 1;
            var valueEnd = headerLine.Length;
            while (valueStart < valueEnd && headerLine[valueStart] is (byte)' ' or (byte)'\t')
            {
                valueStart++;
            }

            while (valueEnd > valueStart && headerLine[valueEnd - 1] is (byte)' ' or (byte)'\t')
            {
                valueEnd--;
            }

            var value = headerLine[valueStart..valueEnd];
            if (value.ContainsAnyExcept(ValueChars))
            {
                return false;
            }

            var name = headerLine[..colon];
            var kind = KindOf(name);
            switch (kind)
            {
                case Kind.Host:
                    if (_host >= 0 || value.ContainsAnyExcept(HostChars))
                    {
                        return false;
                    }

                    _host = _headerCount;
                    break;
                case Kind.ContentLength:
                    if (_hasContentLength || value.Length is 0 or > 18 || value.ContainsAnyExceptInRange((byte)'0', (byte)'9'))
                    {
                        return false;
                    }

                    _hasContentLength = true;
                    ContentLength = long.Parse(value, CultureInfo.InvariantCulture);
                    break;
                case Kind.Refused:
                    return false;
                case Kind.Connection:
                    _hasConnectionHeader = true;
                    if (Http1Connection.ContainsToken(value, "upgrade"u8))
                    {
                        return false;
                    }

                    closeNamed |= Http1Connection.ContainsToken(value, "close"u8);
                    break;
                case Kind.ForwardedHost:
                    _hasForwardedHost = true;
                    break;
                case Kind.ForwardedProto:
                    _hasForwardedProto = true;
                    break;
                case Kind.Cookie:
                    if (_hasCookie)
                    {
                        // A second Cookie line: Kestrel's path joins them with "; " (RFC 9113 8.2.3).
                        return false;
                    }

                    _hasCookie = true;
                    break;
                case Kind.Other or Kind.HopByHop or Kind.TraceParent or Kind.ForwardedFor:
                    break;
            }

            var h = _headers.AsSpan(_headerCount * 5, 5);
            h[0] = pos;
            h[1] = colon;
            h[2] = pos + valueStart;
            h[3] = valueEnd - valueStart;
            h[4] = (int)(kind == Kind.Cookie ? Kind.Other : kind);
            _headerCount++;
            pos += end + 2;
        }

        // HTTP/1.1 requires exactly one Host (RFC 9112 3.2); Kestrel answers 400 without one.
        _close = closeNamed;
        return _host >= 0;
    }

    private bool NamedByConnection(ReadOnlySpan<byte> head, ReadOnlySpan<byte> name)
    {
        for (var i = 0; i < _headerCount; i++)
        {
            var h = _headers.AsSpan(i * 5, 5);
            if ((Kind)h[4] == Kind.Connection && Http1Connection.ContainsToken(head.Slice(h[2], h[3]), name))
            {
                return true;
            }
        }

        return false;
    }

    private static bool NamedByResponseConnection(ReadOnlySpan<byte> lines, ReadOnlySpan<byte> name)
    {
        while (lines.Length > 0)
        {
            var end = lines.IndexOf("\r\n"u8);
            var line = end < 0 ? lines : lines[..end];
            lines = end < 0 ? [] : lines[(end + 2)..];
            if (line.Length > 11 && Ascii.EqualsIgnoreCase(line[..11], "Connection:"u8) && Http1Connection.ContainsToken(line[11..], name))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Response headers that end at this hop (RFC 9110 7.6.1), plus the framing the mesh writes itself.</summary>
    private static bool IsResponseHopByHop(ReadOnlySpan<byte> name) => name.Length switch
    {
        2 => Ascii.EqualsIgnoreCase(name, "TE"u8),
        7 => Ascii.EqualsIgnoreCase(name, "Trailer"u8) || Ascii.EqualsIgnoreCase(name, "Upgrade"u8),
        10 => Ascii.EqualsIgnoreCase(name, "Connection"u8) || Ascii.EqualsIgnoreCase(name, "Keep-Alive"u8),
        14 => Ascii.EqualsIgnoreCase(name, "Content-Length"u8),
        16 => Ascii.EqualsIgnoreCase(name, "Proxy-Connection"u8),
        17 => Ascii.EqualsIgnoreCase(name, "Transfer-Encoding"u8),
        _ => false,
    };

    private static string? KnownMethod(ReadOnlySpan<byte> method) => method.Length switch
    {
        3 when method.SequenceEqual("GET"u8) => "GET",
        3 when method.SequenceEqual("PUT"u8) => "PUT",
        4 when method.SequenceEqual("HEAD"u8) => "HEAD",
        4 when method.SequenceEqual("POST"u8) => "POST",
        5 when method.SequenceEqual("PATCH"u8) => "PATCH",
        5 when method.SequenceEqual("TRACE"u8) => "TRACE",
        6 when method.SequenceEqual("DELETE"u8) => "DELETE",
        7 when method.SequenceEqual("OPTIONS"u8) => "OPTIONS",
        7 when method.SequenceEqual("CONNECT"u8) => "CONNECT",
        _ => null,
    };

    private static Kind KindOf(ReadOnlySpan<byte> name) => name.Length switch
    {
        2 when Ascii.EqualsIgnoreCase(name, "TE"u8) => Kind.HopByHop,
        4 when Ascii.EqualsIgnoreCase(name, "Host"u8) => Kind.Host,
        6 when Ascii.EqualsIgnoreCase(name, "Expect"u8) => Kind.Refused,
        6 when Ascii.EqualsIgnoreCase(name, "Cookie"u8) => Kind.Cookie,
        7 when Ascii.EqualsIgnoreCase(name, "Trailer"u8) => Kind.HopByHop,
        7 when Ascii.EqualsIgnoreCase(name, "Upgrade"u8) => Kind.HopByHop,
        10 when Ascii.EqualsIgnoreCase(name, "Connection"u8) => Kind.Connection,
        10 when Ascii.EqualsIgnoreCase(name, "Keep-Alive"u8) => Kind.HopByHop,
        11 when Ascii.EqualsIgnoreCase(name, "traceparent"u8) => Kind.TraceParent,
        14 when Ascii.EqualsIgnoreCase(name, "Content-Length"u8) => Kind.ContentLength,
        15 when Ascii.EqualsIgnoreCase(name, "X-Forwarded-For"u8) => Kind.ForwardedFor,
        16 when Ascii.EqualsIgnoreCase(name, "Proxy-Connection"u8) => Kind.HopByHop,
        16 when Ascii.EqualsIgnoreCase(name, "X-Forwarded-Host"u8) => Kind.ForwardedHost,
        17 when Ascii.EqualsIgnoreCase(name, "Transfer-Encoding"u8) => Kind.Refused,
        17 when Ascii.EqualsIgnoreCase(name, "X-Forwarded-Proto"u8) => Kind.ForwardedProto,
        _ => Kind.Other,
    };

    /// <summary>What a request header means to the mesh's server.</summary>
    private enum Kind
    {
        /// <summary>End to end: copied upstream.</summary>
        Other,
        Host,
        ContentLength,
        Connection,

        /// <summary>Ends at this hop: not copied.</summary>
        HopByHop,
        TraceParent,
        ForwardedFor,
        ForwardedHost,
        ForwardedProto,
        Cookie,

        /// <summary>Transfer-Encoding or Expect: the request is Kestrel's to read.</summary>
        Refused,
    }
}
