using System.Buffers;
using System.Buffers.Text;
using System.Collections.Concurrent;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Text;
using Berth.Mesh.Resilience;

using Berth.Mesh.Transport;

namespace Berth.Mesh.Http;

/// <summary>The upstream broke the exchange; <see cref="Error"/> says how, and so whether the request may have reached it.</summary>
internal sealed class UpstreamException(AttemptError error, string message, Exception? inner = null) : IOException(message, inner)
{
    public AttemptError Error { get; } = error;
}

/// <summary>Reading the client's request body failed (the client left or sent a bad body): not the upstream's fault.</summary>
internal sealed class ClientBodyException(Exception inner) : IOException("reading the client's request body failed: " + inner.Message, inner);

/// <summary>
/// Per-upstream pool of HTTP/1.1 connections the mesh owns. Owning them is what makes retries countable: the pool never
/// re-sends a request on its own (SocketsHttpHandler re-sends on a fresh connection when a reused one fails before the
/// response, which doubled the deliveries of a request that killed its replica). Idle connections are kept lock-free
/// and checked for a peer close before reuse, so a stale keep-alive is replaced rather than failing a request.
/// </summary>
internal sealed class Http1ConnectionPool : IDisposable
{
    private readonly EndPoint _endpoint;
    private readonly TimeProvider _time;
    private readonly ConcurrentQueue<Http1Connection> _idle = new();
    private ConcurrentQueue<Http1Connection>[]? _idleOnLoops;
    private readonly TimeSpan _connectTimeout;
    private int _idleCount;
    private volatile bool _disposed;

    public Http1ConnectionPool(string host, int port, TimeSpan connectTimeout, TimeProvider time)
    {
        _endpoint = IPAddress.TryParse(host, out var ip) ? new IPEndPoint(ip, port) : new DnsEndPoint(host, port);
        _connectTimeout = connectTimeout;
        _time = time;
    }

    /// <summary>The upstream's pod: connections are made from sockets created inside it. Null: the host network.</summary>
    public Berth.Core.Routing.PodNetwork? Pod { get; init; }

    /// <summary>Idle connections kept for reuse: 1024, as Envoy's max_connections (the listener's limit).</summary>
    public int MaxIdle { get; set; } = 1024;

    /// <summary>Idle connections are dropped after this: 30s (below Kestrel's 130s and nginx's 75s keep-alive, so the upstream rarely closes first).</summary>
    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>A live idle connection, or a new one; a failed connect throws <see cref="UpstreamException"/> with <see cref="AttemptError.ConnectFailure"/>.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<Http1Connection> RentAsync(CancellationToken cancellationToken)
    {
        // On one of the mesh's event loops (the loop transport): an idle connection of this loop, or a new one on it, so the
        // upstream's answer completes on the thread that serves the client.
        var loop = EventLoop.Current;
        var now = _time.GetTimestamp();
        while (TakeIdle(loop) is { } idle)
        {
            Interlocked.Decrement(ref _idleCount);
            if (_time.GetElapsedTime(idle.LastUsed, now) < IdleTimeout && idle.IsAlive())
            {
                return idle;
            }

            idle.Dispose();
        }

        Socket socket;
        try
        {
            socket = Pod is null ? new Socket(SocketType.Stream, ProtocolType.Tcp) : await Berth.Core.Routing.PodSockets.CreateAsync(Pod, AddressFamily.InterNetwork, cancellationToken);
            socket.NoDelay = true;
        }
        catch (SocketException e)
        {
            throw new UpstreamException(AttemptError.ConnectFailure, $"connect to {_endpoint} in pod {Pod?.PodId} failed: {e.Message}", e);
        }

        if (loop is not null && _endpoint is IPEndPoint ip)
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(_connectTimeout);
            try
            {
                return new Http1Connection(await LoopSocket.ConnectAsync(socket, ip, loop, timeout.Token));
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                throw new UpstreamException(AttemptError.ConnectFailure, $"connect to {_endpoint} timed out after {_connectTimeout.TotalSeconds:0.#}s");
            }
            catch (SocketException e)
            {
                throw new UpstreamException(AttemptError.ConnectFailure, $"connect to {_endpoint} failed: {e.SocketErrorCode}", e);
            }
        }

        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(_connectTimeout);
            try
            {
                await socket.ConnectAsync(_endpoint, timeout.Token);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                throw new UpstreamException(AttemptError.ConnectFailure, $"connect to {_endpoint} timed out after {_connectTimeout.TotalSeconds:0.#}s");
            }
        }
        catch (SocketException e)
        {
            socket.Dispose();
            throw new UpstreamException(AttemptError.ConnectFailure, $"connect to {_endpoint} failed: {e.SocketErrorCode}", e);
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        return new Http1Connection(socket);
    }

    /// <summary>Gives back a connection whose exchange completed cleanly: kept for reuse when it may be reused (and the pool
    /// has room), disposed otherwise.</summary>
    public void Return(Http1Connection connection)
    {
        if (!connection.Reusable)
        {
            connection.Dispose();
            return;
        }

        if (_disposed || Interlocked.Increment(ref _idleCount) > MaxIdle)
        {
            if (!_disposed)
            {
                Interlocked.Decrement(ref _idleCount);
            }

            connection.Dispose();
            return;
        }

        connection.LastUsed = _time.GetTimestamp();
        var queue = connection.Loop is { } loop ? IdleOn(loop) : _idle;
        queue.Enqueue(connection);
        if (_disposed && queue.TryDequeue(out var late))
        {
            late.Dispose();
        }
    }

    /// <summary>An idle connection for code on <paramref name="loop"/> (one of that loop's), or off the loops (any).</summary>
    private Http1Connection? TakeIdle(EventLoop? loop)
    {
        if (loop is not null)
        {
            return IdleOn(loop).TryDequeue(out var mine) ? mine : null;
        }

        if (_idle.TryDequeue(out var idle))
        {
            return idle;
        }

        foreach (var queue in _idleOnLoops ?? [])
        {
            if (queue.TryDequeue(out var other))
            {
                return other;
            }
        }

        return null;
    }

    private ConcurrentQueue<Http1Connection> IdleOn(EventLoop loop)
    {
        var queues = _idleOnLoops;
        if (queues is null)
        {
            Interlocked.CompareExchange(ref _idleOnLoops, [.. EventLoop.Shared.Select(_ => new ConcurrentQueue<Http1Connection>())], null);
            queues = _idleOnLoops;
        }

        return queues[loop.Index];
    }

    public void Dispose()
    {
        _disposed = true;
        foreach (var queue in (IEnumerable<ConcurrentQueue<Http1Connection>>)[_idle, .. _idleOnLoops ?? []])
        {
            while (queue.TryDequeue(out var c))
            {
                c.Dispose();
            }
        }
    }
}

/// <summary>One framed HTTP/1.1 response head: status and headers, and how its body is delimited.</summary>
internal sealed class ResponseHead
{
    public int Status;
    public long? ContentLength;
    public bool Chunked;
    public bool KeepAlive;
    public readonly List<KeyValuePair<string, string>> Headers = new(16);

    /// <summary>No body follows (HEAD, 1xx, 204, 304).</summary>
    public bool NoBody;

    /// <summary>Whether <see cref="Headers"/> is filled (the mesh's own HTTP/1.1 server copies the raw head instead, allocating nothing).</summary>
    public bool Collect = true;

    /// <summary>The body runs until the upstream closes the connection.</summary>
    public bool CloseDelimited => !NoBody && !Chunked && ContentLength is null;

    public void Clear()
    {
        Status = 0;
        ContentLength = null;
        Chunked = false;
        KeepAlive = true;
        NoBody = false;
        Headers.Clear();
    }
}

/// <summary>
/// One upstream HTTP/1.1 connection: writes a request head built in place, streams the body (Content-Length or chunked),
/// parses the response head from its own buffer and copies the body straight into the client's response pipe.
/// </summary>
internal sealed class Http1Connection : IDisposable
{
    /// <summary>A response head larger than this is a bad response: 64 KiB, as nginx's large_client_header_buffers order.</summary>
    public const int MaxResponseHead = 64 * 1024;

    private const int BufferSize = 16 * 1024;
    private static readonly byte[] HeadEnd = "\r\n\r\n"u8.ToArray();

    private readonly Socket? _socket;
    private readonly LoopSocket? _loop;
    private byte[] _buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
    private int _start;
    private int _end;
    private bool _disposed;

    public Http1Connection(Socket socket)
    {
        _socket = socket;
    }

    /// <summary>A connection on one of the mesh's event loops: its reads complete on the loop that serves the client.</summary>
    public Http1Connection(LoopSocket socket)
    {
        _loop = socket;
    }

    /// <summary>The event loop that serves this connection, or null (Kestrel's socket transport, .NET's socket engine).</summary>
    public EventLoop? Loop => _loop?.Loop;

    /// <summary>When the connection was last given back (a TimeProvider timestamp).</summary>
    public long LastUsed { get; set; }

    /// <summary>Whether it served a request before (a failure then may also be a keep-alive race).</summary>
    public bool Reused { get; private set; }

    /// <summary>Reusable after the current exchange (the upstream keeps it alive and every byte was consumed).</summary>
    public bool Reusable { get; private set; }

    public ResponseHead Head { get; } = new();

    /// <summary>The final response head as received (status line and header lines, without the blank line); valid until the body is read.</summary>
    public ReadOnlySpan<byte> RawHead => _buffer.AsSpan(_rawHeadStart, _rawHeadLength);

    private int _rawHeadStart;
    private int _rawHeadLength;

    /// <summary>An idle connection is usable unless the peer closed it (or sent bytes nobody asked for).</summary>
    public bool IsAlive()
    {
        try
        {
            return _loop?.IsIdleAndOpen() ?? !_socket!.Poll(0, SelectMode.SelectRead);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            return false;
        }
    }

    /// <summary>Writes request bytes; any failure means the request may have (partly) reached the upstream.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask SendAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        try
        {
            if (_loop is not null)
            {
                await _loop.SendAsync(data, cancellationToken);
                return;
            }

            while (data.Length > 0)
            {
                var n = await _socket!.SendAsync(data, SocketFlags.None, cancellationToken);
                data = data[n..];
            }
        }
        catch (SocketException e)
        {
            throw new UpstreamException(AttemptError.Reset, $"upstream connection broke while sending: {e.SocketErrorCode}", e);
        }
    }

    /// <summary>Reads the response head (skipping 1xx interim responses, whose body-less heads Kestrel already answered for).</summary>
    /// <remarks>
    /// One async method from the search for the head's end down to the socket's receive: every request waits here for the
    /// upstream, so each nested async method would be one more state-machine box per request (the pooling builder keeps one
    /// per thread and core, too few for tens of connections in flight) and one more continuation on the way back up.
    /// </remarks>
    [AsyncMethodBuilder(typeof(PooledValueTaskBuilder<>))]
    public async ValueTask<ResponseHead> ReadHeadAsync(bool isHead, CancellationToken cancellationToken, bool collectHeaders = true)
    {
        Reusable = false;
        var scanned = _start;
        while (true)
        {
            var from = Math.Max(_start, scanned - 3);
            var i = _buffer.AsSpan(from, _end - from).IndexOf(HeadEnd);
            if (i < 0)
            {
                scanned = _end;
                if (_end - _start >= MaxResponseHead)
                {
                    throw new UpstreamException(AttemptError.BadResponse, $"upstream response head is over {MaxResponseHead / 1024} KiB");
                }

                scanned -= MakeRoom();
                int n;
                try
                {
                    n = _loop is not null ? await _loop.ReceiveAsync(_buffer.AsMemory(_end), cancellationToken)
                        : await _socket!.ReceiveAsync(_buffer.AsMemory(_end), SocketFlags.None, cancellationToken);
                }
                catch (SocketException e)
                {
                    throw new UpstreamException(AttemptError.Reset, $"upstream connection broke: {e.SocketErrorCode}", e);
                }

                if (n == 0)
                {
                    throw new UpstreamException(AttemptError.Reset, "upstream closed the connection before a complete response");
                }

                _end += n;
                continue;
            }

            var end = from + i;
            var head = Head;
            head.Clear();
            head.Collect = collectHeaders;
            Parse(_buffer.AsSpan(_start, end - _start), head);
            _rawHeadStart = _start;
            _rawHeadLength = end - _start;
            _start = end + HeadEnd.Length;
            if (head.Status is >= 100 and < 200 && head.Status != 101)
            {
                scanned = _start;
                continue;
            }

            head.NoBody |= isHead || head.Status is 204 or 304 or 101;
            return head;
        }
    }

    /// <summary>
    /// Copies the response body into <paramref name="to"/>, decoding chunked framing, or with <paramref name="chunkedOut"/>
    /// framing it as chunks again (a chunked or close-delimited body on a keep-alive client connection); marks the
    /// connection reusable when done cleanly.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask CopyBodyAsync(PipeWriter to, CancellationToken cancellationToken, bool chunkedOut = false)
    {
        var head = Head;
        if (head.NoBody)
        {
        }
        else if (head.ContentLength is { } length)
        {
            await CopyExactlyAsync(length, to, cancellationToken);
        }
        else if (head.Chunked)
        {
            while (true)
            {
                var size = await ReadChunkSizeAsync(cancellationToken);
                if (chunkedOut)
                {
                    WriteChunkSize(to, size);
                }

                if (size == 0)
                {
                    // Trailers (dropped on HTTP/1.1) end with an empty line.
                    while (await ReadLineAsync(cancellationToken) > 0)
                    {
                    }

                    if (chunkedOut)
                    {
                        to.Write("\r\n"u8);
                    }

                    break;
                }

                await CopyExactlyAsync(size, to, cancellationToken);
                if (chunkedOut)
                {
                    to.Write("\r\n"u8);
                }

                if (await ReadLineAsync(cancellationToken) != 0)
                {
                    throw new UpstreamException(AttemptError.BadResponse, "upstream sent a chunk longer than its size");
                }
            }
        }
        else
        {
            // Close-delimited: everything until the upstream closes.
            if (chunkedOut)
            {
                await CopyUntilCloseAsChunksAsync(to, cancellationToken);
                return;
            }

            await FlushBufferedAsync(long.MaxValue, to, cancellationToken);
            while (true)
            {
                var n = await ReceiveIntoAsync(to.GetMemory(BufferSize), cancellationToken);
                if (n == 0)
                {
                    return;
                }

                to.Advance(n);
                await FlushClientAsync(to, cancellationToken);
            }
        }

        Reusable = head.KeepAlive && !head.CloseDelimited && _start == _end;
        Reused = true;
    }

    private static void WriteChunkSize(PipeWriter to, long size)
    {
        var span = to.GetSpan(20);
        size.TryFormat(span, out var n, "x", System.Globalization.CultureInfo.InvariantCulture);
        span[n++] = (byte)'\r';
        span[n++] = (byte)'\n';
        to.Advance(n);
    }

    private async ValueTask CopyUntilCloseAsChunksAsync(PipeWriter to, CancellationToken cancellationToken)
    {
        while (true)
        {
            if (_start == _end)
            {
                _start = _end = 0;
                var n = await ReceiveIntoAsync(_buffer, cancellationToken);
                if (n == 0)
                {
                    to.Write("0\r\n\r\n"u8);
                    await FlushClientAsync(to, cancellationToken);
                    return;
                }

                _end = n;
            }

            WriteChunkSize(to, _end - _start);
            to.Write(_buffer.AsSpan(_start, _end - _start));
            to.Write("\r\n"u8);
            _start = _end;
            await FlushClientAsync(to, cancellationToken);
        }
    }

    /// <summary>The bytes after the response head that are already buffered (the start of an upgraded stream).</summary>
    public ReadOnlyMemory<byte> TakeBuffered()
    {
        var data = _buffer.AsMemory(_start, _end - _start);
        _start = _end;
        return data;
    }

    /// <summary>The connection as a stream (an upgraded connection's splice); the connection still owns the socket.</summary>
    public Stream OpenStream() => _loop is not null ? new LoopSocketStream(_loop) : new NetworkStream(_socket!, ownsSocket: false);

    /// <summary>Breaks the connection both ways (the end of a splice).</summary>
    public void Shutdown()
    {
        if (_loop is not null)
        {
            _loop.Abort();
        }
        else
        {
            _socket!.Shutdown(SocketShutdown.Both);
        }
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        _socket?.Dispose();
        _loop?.Dispose();
        ArrayPool<byte>.Shared.Return(_buffer);
        _buffer = [];
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask CopyExactlyAsync(long remaining, PipeWriter to, CancellationToken cancellationToken)
    {
        remaining -= await FlushBufferedAsync(remaining, to, cancellationToken);
        while (remaining > 0)
        {
            var memory = to.GetMemory((int)Math.Min(remaining, BufferSize));
            if (memory.Length > remaining)
            {
                memory = memory[..(int)remaining];
            }

            var n = await ReceiveIntoAsync(memory, cancellationToken);
            if (n == 0)
            {
                throw new UpstreamException(AttemptError.Reset, $"upstream closed the connection with {remaining} body byte(s) still to come");
            }

            to.Advance(n);
            remaining -= n;
            await FlushClientAsync(to, cancellationToken);
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<long> FlushBufferedAsync(long max, PipeWriter to, CancellationToken cancellationToken)
    {
        var n = (int)Math.Min(max, _end - _start);
        if (n == 0)
        {
            return 0;
        }

        await to.WriteAsync(_buffer.AsMemory(_start, n), cancellationToken);
        _start += n;
        return n;
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private static async ValueTask FlushClientAsync(PipeWriter to, CancellationToken cancellationToken)
    {
        var result = await to.FlushAsync(cancellationToken);
        if (result.IsCompleted || result.IsCanceled)
        {
            throw new OperationCanceledException("the client stopped reading the response");
        }
    }

    private async ValueTask<long> ReadChunkSizeAsync(CancellationToken cancellationToken)
    {
        var length = await ReadLineAsync(cancellationToken);
        var line = _buffer.AsSpan(_start - length - 2, length);
        var semi = line.IndexOf((byte)';');
        if (semi >= 0)
        {
            line = line[..semi];
        }

        line = line.TrimEnd((byte)' ').TrimEnd((byte)'\t');
        if (line.Length is 0 or > 15 || !Utf8Parser.TryParse(line, out long size, out var consumed, 'x') || consumed != line.Length)
        {
            throw new UpstreamException(AttemptError.BadResponse, "upstream sent a malformed chunk size");
        }

        return size;
    }

    /// <summary>Consumes one CRLF-terminated line; returns its length (the line ends 2 bytes before <see cref="_start"/>).</summary>
    private async ValueTask<int> ReadLineAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            var i = _buffer.AsSpan(_start, _end - _start).IndexOf("\r\n"u8);
            if (i >= 0)
            {
                _start += i + 2;
                return i;
            }

            if (_end - _start >= 8 * 1024)
            {
                throw new UpstreamException(AttemptError.BadResponse, "upstream sent a chunk line over 8 KiB");
            }

            await FillAsync(cancellationToken);
        }
    }

    /// <summary>Reads more bytes into the buffer (compacting or growing it); EOF or reset is <see cref="AttemptError.Reset"/>.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask FillAsync(CancellationToken cancellationToken)
    {
        MakeRoom();
        var n = await ReceiveIntoAsync(_buffer.AsMemory(_end), cancellationToken);
        if (n == 0)
        {
            throw new UpstreamException(AttemptError.Reset, "upstream closed the connection before a complete response");
        }

        _end += n;
    }

    /// <summary>Moves the unread bytes to the buffer's start and grows it when full; returns how far the bytes moved back.</summary>
    private int MakeRoom()
    {
        var moved = _start;
        if (_start > 0)
        {
            Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
            _end -= _start;
            _start = 0;
        }

        if (_end == _buffer.Length)
        {
            var bigger = ArrayPool<byte>.Shared.Rent(_buffer.Length * 2);
            Buffer.BlockCopy(_buffer, 0, bigger, 0, _end);
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = bigger;
        }

        return moved;
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<int> ReceiveIntoAsync(Memory<byte> memory, CancellationToken cancellationToken)
    {
        try
        {
            return _loop is not null ? await _loop.ReceiveAsync(memory, cancellationToken)
                : await _socket!.ReceiveAsync(memory, SocketFlags.None, cancellationToken);
        }
        catch (SocketException e)
        {
            throw new UpstreamException(AttemptError.Reset, $"upstream connection broke: {e.SocketErrorCode}", e);
        }
    }

    private static void Parse(ReadOnlySpan<byte> head, ResponseHead into)
    {
        var eol = head.IndexOf("\r\n"u8);
        var statusLine = eol < 0 ? head : head[..eol];
        // HTTP/1.x SSS reason
        if (statusLine.Length < 12 || !statusLine.StartsWith("HTTP/1."u8) || statusLine[8] != (byte)' '
            || !Utf8Parser.TryParse(statusLine.Slice(9, 3), out int status, out var consumed) || consumed != 3 || status < 100 || status > 999)
        {
            throw new UpstreamException(AttemptError.BadResponse, "upstream did not answer with an HTTP/1.x status line");
        }

        into.Status = status;
        var http10 = statusLine[7] == (byte)'0';
        into.KeepAlive = !http10;
        var rest = eol < 0 ? [] : head[(eol + 2)..];
        var transferEncoding = false;
        while (rest.Length > 0)
        {
            var end = rest.IndexOf("\r\n"u8);
            var line = end < 0 ? rest : rest[..end];
            rest = end < 0 ? [] : rest[(end + 2)..];
            if (line.Length == 0)
            {
                continue;
            }

            if (line[0] is (byte)' ' or (byte)'\t')
            {
                throw new UpstreamException(AttemptError.BadResponse, "upstream sent an obsolete folded header line");
            }

            var colon = line.IndexOf((byte)':');
            if (colon <= 0)
            {
                throw new UpstreamException(AttemptError.BadResponse, "upstream sent a header line without a colon");
            }

            var name = line[..colon];
            if (name[^1] is (byte)' ' or (byte)'\t')
            {
                throw new UpstreamException(AttemptError.BadResponse, "upstream sent whitespace before a header colon");
            }

            var value = line[(colon + 1)..].Trim(" \t"u8);
            if (name.Length == 14 && Ascii.EqualsIgnoreCase(name, "Content-Length"u8))
            {
                if (!Utf8Parser.TryParse(value, out long length, out var used) || used != value.Length || length < 0
                    || (into.ContentLength is { } prior && prior != length))
                {
                    throw new UpstreamException(AttemptError.BadResponse, "upstream sent an invalid or conflicting Content-Length");
                }

                into.ContentLength = length;
                continue;
            }

            if (name.Length == 17 && Ascii.EqualsIgnoreCase(name, "Transfer-Encoding"u8))
            {
                // The last coding decides (RFC 9112 6.3); anything but chunked there is close-delimited.
                transferEncoding = true;
                var comma = value.LastIndexOf((byte)',');
                into.Chunked = Ascii.EqualsIgnoreCase(value[(comma + 1)..].Trim(" \t"u8), "chunked"u8);
                if (!into.Chunked)
                {
                    into.KeepAlive = false;
                }

                continue;
            }

            if (name.Length == 10 && Ascii.EqualsIgnoreCase(name, "Connection"u8))
            {
                if (ContainsToken(value, "close"u8))
                {
                    into.KeepAlive = false;
                }
                else if (http10 && ContainsToken(value, "keep-alive"u8))
                {
                    into.KeepAlive = true;
                }
            }

            if (into.Collect)
            {
                into.Headers.Add(new(HeaderNames.Intern(name), Encoding.Latin1.GetString(value)));
            }
        }

        if (transferEncoding)
        {
            // Transfer-Encoding wins over Content-Length (RFC 9112 6.3); a sender of both is not trusted with the connection after.
            into.KeepAlive &= into.ContentLength is null;
            into.ContentLength = null;
        }
    }

    /// <summary>True when the comma-separated <paramref name="list"/> holds <paramref name="token"/> (case-insensitive).</summary>
    internal static bool ContainsToken(ReadOnlySpan<byte> list, ReadOnlySpan<byte> token)
    {
        while (list.Length > 0)
        {
            var comma = list.IndexOf((byte)',');
            var item = (comma < 0 ? list : list[..comma]).Trim(" \t"u8);
            if (Ascii.EqualsIgnoreCase(item, token))
            {
                return true;
            }

            list = comma < 0 ? [] : list[(comma + 1)..];
        }

        return false;
    }
}
