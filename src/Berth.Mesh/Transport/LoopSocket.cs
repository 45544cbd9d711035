using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Threading.Tasks.Sources;

namespace Berth.Mesh.Transport;

/// <summary>
/// A non-blocking socket served by one <see cref="EventLoop"/>. A receive or send is tried at once on the calling
/// thread; only when the kernel says it would block does it wait for the socket's next readiness edge, and then it
/// completes on the loop's thread, running the awaiting code there (no thread-pool hop). Readiness is tracked the way
/// nginx tracks it: a receive that came back short (or would block) drained the socket, so the next receive waits for
/// an edge instead of asking the kernel first and being told EAGAIN — one system call fewer per request than .NET's
/// <see cref="Socket"/>, which always tries first. Each edge bumps a sequence number, so an edge that arrives between a
/// failed attempt and the wait is never lost. One receive and one send may be pending at a time (a connection's reader
/// and writer), from any threads.
/// </summary>
internal sealed class LoopSocket : IDisposable
{
    private static int s_generation;

    private readonly EventLoop _loop;
    private readonly bool _listening;
    private readonly Lock _gate = new();
    private readonly Operation _read;
    private readonly Operation _write;
    private int _fd;
    private int _readSeq, _readDrained = -1, _writeSeq;
    private bool _closed;
    private volatile bool _peerClosed;

    public LoopSocket(int fd, EventLoop loop, bool listening = false)
    {
        _fd = fd;
        _loop = loop;
        _listening = listening;
        _read = new Operation(this);
        _write = new Operation(this);
        Generation = (uint)Interlocked.Increment(ref s_generation) & 0x7FFFFFFF;
        loop.Register(this, fd);
    }

    internal uint Generation { get; }

    /// <summary>The loop's key for this socket's edges (its slot and generation), set by <see cref="EventLoop.Register"/>.</summary>
    internal ulong Token { get; set; }

    public int Descriptor => _fd;

    public EventLoop Loop => _loop;

    /// <summary>Receives at least one byte into <paramref name="buffer"/>, or 0 at the peer's end of stream.</summary>
    public ValueTask<int> ReceiveAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        while (true)
        {
            var seq = Volatile.Read(ref _readSeq);
            if (seq != Volatile.Read(ref _readDrained))
            {
                var n = TryRead(buffer.Span, seq, out var errno);
                if (n >= 0)
                {
                    return new ValueTask<int>(n);
                }

                if (errno != Epoll.EAgain)
                {
                    return ValueTask.FromException<int>(Failed(errno));
                }
            }

            lock (_gate)
            {
                if (_closed)
                {
                    return ValueTask.FromException<int>(new ObjectDisposedException(nameof(LoopSocket)));
                }

                if (_readSeq == seq)
                {
                    return _read.Wait(buffer, cancellationToken);
                }
            }
        }
    }

    /// <summary>Accepts a connection on a listening socket: its descriptor (non-blocking, close-on-exec), or -1 once closed.</summary>
    public ValueTask<int> AcceptAsync(CancellationToken cancellationToken = default) => ReceiveAsync(Memory<byte>.Empty, cancellationToken);

    /// <summary>Sends all of <paramref name="data"/>.</summary>
    public ValueTask SendAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default)
    {
        var sent = 0;
        while (true)
        {
            var seq = Volatile.Read(ref _writeSeq);
            if (SendAll(data.Span, ref sent, out var errno))
            {
                return ValueTask.CompletedTask;
            }

            if (errno != Epoll.EAgain)
            {
                return ValueTask.FromException(Failed(errno));
            }

            lock (_gate)
            {
                if (_closed)
                {
                    return ValueTask.FromException(new ObjectDisposedException(nameof(LoopSocket)));
                }

                if (_writeSeq == seq)
                {
                    return new ValueTask(_write.Wait(MemoryMarshal.AsMemory(data[sent..]), cancellationToken).AsTask());
                }
            }
        }
    }

    /// <summary>
    /// Connects a new non-blocking TCP socket (taken over from <paramref name="socket"/>, which may have been made in a pod) to
    /// <paramref name="endpoint"/> and registers it on <paramref name="loop"/>; the connect completes on the loop.
    /// </summary>
    public static async ValueTask<LoopSocket> ConnectAsync(Socket socket, IPEndPoint endpoint, EventLoop loop, CancellationToken cancellationToken)
    {
        socket.Blocking = false;
        var fd = (int)socket.SafeHandle.DangerousGetHandle();
        if (socket.AddressFamily == AddressFamily.InterNetworkV6 && endpoint.AddressFamily == AddressFamily.InterNetwork)
        {
            endpoint = new IPEndPoint(endpoint.Address.MapToIPv6(), endpoint.Port); // a dual-mode socket takes v4-mapped addresses
        }

        var errno = StartConnect(fd, endpoint);
        if (errno is not (0 or Epoll.EInProgress))
        {
            socket.Dispose();
            throw Failed(errno);
        }

        socket.SafeHandle.SetHandleAsInvalid(); // the loop socket owns the descriptor from here
        var connected = new LoopSocket(fd, loop);
        try
        {
            if (errno == Epoll.EInProgress)
            {
                await connected.WaitWritableAsync(cancellationToken);
                if (PendingError(fd) is not 0 and var error)
                {
                    throw Failed(error);
                }
            }
        }
        catch
        {
            connected.Dispose();
            throw;
        }

        return connected;
    }

    private static unsafe int StartConnect(int fd, IPEndPoint endpoint)
    {
        // sockaddr_in / sockaddr_in6 as Linux lays them out: family (host order), port (network order), address.
        var v6 = endpoint.AddressFamily == AddressFamily.InterNetworkV6;
        var size = v6 ? 28 : 16;
        var address = stackalloc byte[28];
        new Span<byte>(address, 28).Clear();
        *(ushort*)address = (ushort)(v6 ? 10 : 2);
        address[2] = (byte)(endpoint.Port >> 8);
        address[3] = (byte)endpoint.Port;
        endpoint.Address.TryWriteBytes(new Span<byte>(address + (v6 ? 8 : 4), v6 ? 16 : 4), out _);
        if (v6)
        {
            *(uint*)(address + 24) = (uint)endpoint.Address.ScopeId;
        }

        return Epoll.Connect(fd, address, size) < 0 ? Marshal.GetLastPInvokeError() : 0;
    }

    private static unsafe int PendingError(int fd)
    {
        var error = 0;
        var length = sizeof(int);
        Epoll.GetSocketOption(fd, 1 /* SOL_SOCKET */, 4 /* SO_ERROR */, &error, &length);
        return error;
    }

    /// <summary>Waits until the socket is writable (a connect in progress has finished, either way).</summary>
    private ValueTask WaitWritableAsync(CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            // Registered right after connect() said EINPROGRESS: any edge since means the connect is over.
            return _writeSeq != 0 ? ValueTask.CompletedTask : new ValueTask(_write.Wait(Memory<byte>.Empty, cancellationToken).AsTask());
        }
    }

    /// <summary>
    /// Whether an idle connection is still usable: nothing arrived since its last read drained it (no edge: no system call),
    /// else a peek says whether that was the peer's end of stream (or bytes nobody asked for).
    /// </summary>
    public unsafe bool IsIdleAndOpen()
    {
        var seq = Volatile.Read(ref _readSeq);
        if (seq == Volatile.Read(ref _readDrained))
        {
            return true;
        }

        var fd = Volatile.Read(ref _fd);
        if (fd < 0)
        {
            return false;
        }

        byte probe;
        var n = Epoll.Receive(fd, &probe, 1, 0x2 /* MSG_PEEK */ | 0x40 /* MSG_DONTWAIT */);
        if (n < 0 && Marshal.GetLastPInvokeError() == Epoll.EAgain)
        {
            Volatile.Write(ref _readDrained, seq);
            return true;
        }

        return false;
    }

    /// <summary>No more sends: the peer reads end of stream (a half-close, as the socket transport does when output completes).</summary>
    public void ShutdownWrite() => Epoll.Shutdown(_fd, Epoll.ShutWrite);

    /// <summary>
    /// Breaks the connection both ways from any thread; pending operations fail at once (a shut-down listening socket gets
    /// no readiness edge, so its pending accept would otherwise wait forever).
    /// </summary>
    public void Abort()
    {
        Epoll.Shutdown(Volatile.Read(ref _fd), Epoll.ShutBoth);
        _read.Fail(Failed(9));
        _write.Fail(Failed(9));
    }

    /// <summary>Unregisters and closes the descriptor; pending operations fail with <see cref="ObjectDisposedException"/>.</summary>
    public void Dispose()
    {
        int fd;
        lock (_gate)
        {
            if (_closed)
            {
                return;
            }

            _closed = true;
            fd = _fd;
            _fd = -1;
        }

        _loop.Unregister(Token, fd);
        Epoll.Shutdown(fd, Epoll.ShutBoth);
        _ = Epoll.Close(fd);
        _read.Fail(new ObjectDisposedException(nameof(LoopSocket)));
        _write.Fail(new ObjectDisposedException(nameof(LoopSocket)));
    }

    /// <summary>The loop's thread: readiness edges.</summary>
    internal void OnEvents(uint events)
    {
        if ((events & (Epoll.In | Epoll.RdHup | Epoll.Hup | Epoll.Err)) != 0)
        {
            bool pending;
            lock (_gate)
            {
                if ((events & (Epoll.RdHup | Epoll.Hup | Epoll.Err)) != 0)
                {
                    // The peer's end of stream (or an error) is pending behind the data: a short read no longer means drained,
                    // since no further edge will come (nginx's pending_eof).
                    _peerClosed = true;
                }

                _readSeq++;
                pending = _read.TakePending();
            }

            if (pending)
            {
                CompleteRead();
            }
        }

        if ((events & (Epoll.Out | Epoll.Hup | Epoll.Err)) != 0)
        {
            bool pending;
            lock (_gate)
            {
                _writeSeq++;
                pending = _write.TakePending();
            }

            if (pending)
            {
                CompleteWrite();
            }
        }
    }

    private void CompleteRead()
    {
        while (true)
        {
            var seq = Volatile.Read(ref _readSeq);
            var n = TryRead(_read.Buffer.Span, seq, out var errno);
            if (n >= 0)
            {
                _read.Complete(n);
                return;
            }

            if (errno != Epoll.EAgain)
            {
                _read.Complete(Failed(errno)); // taken from pending by the edge: this thread owns it
                return;
            }

            lock (_gate)
            {
                if (_readSeq == seq && !_closed)
                {
                    _read.Resume(); // a spurious edge: wait for the next one
                    return;
                }
            }
        }
    }

    private void CompleteWrite()
    {
        var data = _write.Buffer;
        var sent = 0;
        while (true)
        {
            var seq = Volatile.Read(ref _writeSeq);
            if (SendAll(data.Span, ref sent, out var errno))
            {
                _write.Complete(sent);
                return;
            }

            if (errno != Epoll.EAgain)
            {
                _write.Complete(Failed(errno));
                return;
            }

            lock (_gate)
            {
                if (_writeSeq == seq && !_closed)
                {
                    _write.Resume(data[sent..]);
                    return;
                }
            }
        }
    }

    /// <summary>One receive (or accept) attempt: the count (or descriptor), or -1 with errno.</summary>
    private unsafe int TryRead(Span<byte> buffer, int seq, out int errno)
    {
        while (true)
        {
            var fd = Volatile.Read(ref _fd);
            if (fd < 0)
            {
                errno = 9; // EBADF
                return -1;
            }

            nint n;
            if (_listening)
            {
                n = Epoll.Accept(fd, null, null, Epoll.NonBlock | Epoll.CloseOnExec);
            }
            else
            {
                fixed (byte* p = buffer)
                {
                    n = Epoll.Receive(fd, p, buffer.Length, 0);
                }
            }

            if (n >= 0)
            {
                errno = 0;
                if (!_listening && n > 0 && n < buffer.Length && !_peerClosed)
                {
                    Volatile.Write(ref _readDrained, seq); // short: the socket had no more
                }

                return (int)n;
            }

            errno = Marshal.GetLastPInvokeError();
            if (errno == Epoll.EIntr)
            {
                continue;
            }

            if (errno == Epoll.EAgain)
            {
                Volatile.Write(ref _readDrained, seq);
            }

            return -1;
        }
    }

    /// <summary>Sends from <paramref name="sent"/> on until all is sent (true) or the kernel refuses (false, with errno).</summary>
    private bool SendAll(ReadOnlySpan<byte> data, ref int sent, out int errno)
    {
        errno = 0;
        while (sent < data.Length)
        {
            var n = SendSome(data[sent..], out errno);
            if (n < 0)
            {
                return false;
            }

            sent += n;
        }

        return true;
    }

    private unsafe int SendSome(ReadOnlySpan<byte> data, out int errno)
    {
        while (true)
        {
            var fd = Volatile.Read(ref _fd);
            if (fd < 0)
            {
                errno = 9;
                return -1;
            }

            nint n;
            fixed (byte* p = data)
            {
                n = Epoll.Send(fd, p, data.Length, Epoll.MsgNoSignal);
            }

            if (n >= 0)
            {
                errno = 0;
                return (int)n;
            }

            errno = Marshal.GetLastPInvokeError();
            if (errno != Epoll.EIntr)
            {
                return -1;
            }
        }
    }

    private static SocketException Failed(int errno) => new(errno switch
    {
        9 => (int)SocketError.OperationAborted,
        32 => (int)SocketError.Shutdown, // EPIPE
        104 => (int)SocketError.ConnectionReset,
        110 => (int)SocketError.TimedOut,
        111 => (int)SocketError.ConnectionRefused,
        22 => (int)SocketError.OperationAborted, // EINVAL: a listening socket shut down
        _ => (int)SocketError.SocketError,
    });

    /// <summary>One direction's pending operation, reused for the socket's life (no allocation per wait).</summary>
    private sealed class Operation(LoopSocket owner) : IValueTaskSource<int>
    {
        private ManualResetValueTaskSourceCore<int> _core; // RunContinuationsAsynchronously false: the awaiting code runs on the loop
        private CancellationTokenRegistration _cancel;
        private bool _pending;

        public Memory<byte> Buffer { get; private set; }

        /// <summary>Under the owner's gate: becomes the pending operation.</summary>
        public ValueTask<int> Wait(Memory<byte> buffer, CancellationToken cancellationToken)
        {
            _core.Reset();
            Buffer = buffer;
            _pending = true;
            if (cancellationToken.CanBeCanceled)
            {
                _cancel = cancellationToken.UnsafeRegister(static (s, token) => ((Operation)s!).Cancel(token), this);
            }

            return new ValueTask<int>(this, _core.Version);
        }

        /// <summary>Under the owner's gate: whether an edge should complete this operation now (it stops being pending).</summary>
        public bool TakePending()
        {
            var was = _pending;
            _pending = false;
            return was;
        }

        /// <summary>Under the owner's gate: pending again (after a spurious edge, or a partial send).</summary>
        public void Resume(Memory<byte>? rest = null)
        {
            if (rest is { } r)
            {
                Buffer = r;
            }

            _pending = true;
        }

        /// <summary>Completes the operation its caller took from pending (an edge's handler).</summary>
        public void Complete(int result)
        {
            _cancel.Unregister();
            _cancel = default;
            Buffer = default;
            _core.SetResult(result);
        }

        /// <summary>Fails the operation its caller took from pending (an edge's handler).</summary>
        public void Complete(Exception error)
        {
            _cancel.Unregister();
            _cancel = default;
            Buffer = default;
            _core.SetException(error);
        }

        /// <summary>Fails the operation if it is still pending (cancellation, abort, dispose: from any thread).</summary>
        public void Fail(Exception error)
        {
            bool was;
            lock (owner._gate)
            {
                was = TakePending();
            }

            if (was)
            {
                Complete(error);
            }
        }

        private void Cancel(CancellationToken token) => Fail(new OperationCanceledException(token));

        public int GetResult(short token) => _core.GetResult(token);

        public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

        public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
            _core.OnCompleted(continuation, state, token, flags);
    }
}
