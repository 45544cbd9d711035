using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;

/// <summary>
/// The floor of a proxy written in C# on this machine (bench/mesh's <c>floor</c> row): nginx's design, not Berth's. One
/// epoll loop per core (a thread each, <c>EPOLLEXCLUSIVE</c> on the one listening socket), raw non-blocking sockets
/// through libc, no Kestrel, no thread pool, no async; a client connection and the upstream connection serving its
/// request belong to the same loop, which keeps its own idle upstream connections per upstream (round-robin). HTTP/1.1
/// only as far as the benchmark needs: a request with no body or a Content-Length body, an answer with a
/// Content-Length, pipelining; anything else closes the connection. No retries, breakers, timeouts, metrics or
/// tracing: it measures what C# and the runtime cost next to nginx's C doing the same four socket calls per request, so
/// that the distance between this row and Berth's is the price of Berth's design, and the distance between this row and
/// nginx's the price of the language. Not a product path.
/// </summary>
internal static unsafe partial class Floor
{
    private const uint EpollIn = 0x1, EpollOut = 0x4, EpollErr = 0x8, EpollHup = 0x10, EpollRdHup = 0x2000, EpollExclusive = 1u << 28;
    private const int CtlAdd = 1, CtlDel = 2, CtlMod = 3;
    private const int EAgain = 11, EInProgress = 115;
    private const int SockNonBlock = 0x800, SockCloExec = 0x80000;
    private static readonly byte[] Forwarded = "X-Forwarded-For: 127.0.0.1\r\n"u8.ToArray();
    private static readonly byte[] BadGateway = "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"u8.ToArray();

    [StructLayout(LayoutKind.Sequential, Pack = 1)]
    private struct EpollEvent
    {
        public uint Events;
        public ulong Data;
    }

    [LibraryImport("libc", SetLastError = true)] private static partial int epoll_create1(int flags);
    [LibraryImport("libc", SetLastError = true)] private static partial int epoll_ctl(int epfd, int op, int fd, EpollEvent* ev);
    [LibraryImport("libc", SetLastError = true)] private static partial int epoll_wait(int epfd, EpollEvent* events, int max, int timeout);
    [LibraryImport("libc", SetLastError = true)] private static partial int accept4(int fd, void* addr, void* len, int flags);
    [LibraryImport("libc", SetLastError = true)] private static partial nint recv(int fd, byte* buf, nint len, int flags);
    [LibraryImport("libc", SetLastError = true)] private static partial nint send(int fd, byte* buf, nint len, int flags);
    [LibraryImport("libc", SetLastError = true)] private static partial int socket(int domain, int type, int protocol);
    [LibraryImport("libc", SetLastError = true)] private static partial int connect(int fd, byte* addr, int len);
    [LibraryImport("libc", SetLastError = true)] private static partial int setsockopt(int fd, int level, int name, int* val, int len);
    [LibraryImport("libc", SetLastError = true)] private static partial int close(int fd);

    private static Socket? s_listener;

    public static void Run(int port, string[] upstreams, int threads)
    {
        var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, port));
        listener.Listen(4096);
        listener.Blocking = false;
        var addresses = upstreams.Select(Address).ToArray();
        var loops = Enumerable.Range(0, threads).Select(i => new Loop((int)listener.Handle, addresses)).ToArray();
        foreach (var loop in loops)
        {
            new Thread(loop.Run) { IsBackground = true, Name = "floor loop" }.Start();
        }

        s_listener = listener; // the loops use its descriptor; its finalizer must never close it
    }

    private static byte[] Address(string upstream)
    {
        var parts = upstream.Split(':');
        var address = new byte[16];
        address[0] = (byte)AddressFamily.InterNetwork;
        BinaryPrimitives.WriteUInt16BigEndian(address.AsSpan(2), ushort.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture));
        IPAddress.Parse(parts[0]).TryWriteBytes(address.AsSpan(4), out _);
        return address;
    }

    private sealed class Conn(int fd, bool upstream)
    {
        public readonly int Fd = fd;
        public readonly bool Upstream = upstream;
        public readonly byte[] In = new byte[16384];
        public int InLength;
        public byte[] Out = new byte[16384];
        public int OutOffset, OutLength;
        public Conn? Peer;
        public int Pool = -1;
        public bool Connecting, Closed, Watching;
    }

    private sealed class Loop(int listenFd, byte[][] upstreams)
    {
        private readonly int _epoll = epoll_create1(0);
        private readonly Dictionary<int, Conn> _conns = [];
        private readonly Stack<Conn>[] _idle = [.. upstreams.Select(_ => new Stack<Conn>())];
        private int _next;

        public void Run()
        {
            var listen = new EpollEvent { Events = EpollIn | EpollExclusive, Data = (ulong)listenFd };
            Check(epoll_ctl(_epoll, CtlAdd, listenFd, &listen));
            var events = stackalloc EpollEvent[256];
            while (true)
            {
                var n = epoll_wait(_epoll, events, 256, -1);
                for (var i = 0; i < n; i++)
                {
                    var fd = (int)events[i].Data;
                    if (fd == listenFd)
                    {
                        Accept();
                    }
                    else if (_conns.TryGetValue(fd, out var conn))
                    {
                        var ev = events[i].Events;
                        if ((ev & EpollOut) != 0)
                        {
                            Writable(conn);
                        }

                        if ((ev & (EpollIn | EpollRdHup | EpollHup | EpollErr)) != 0 && !conn.Closed)
                        {
                            Readable(conn);
                        }
                    }
                }
            }
        }

        private void Accept()
        {
            while (true)
            {
                var fd = accept4(listenFd, null, null, SockNonBlock | SockCloExec);
                if (fd < 0)
                {
                    return;
                }

                NoDelay(fd);
                Register(new Conn(fd, upstream: false));
            }
        }

        private void Register(Conn conn)
        {
            _conns[conn.Fd] = conn;
            var ev = new EpollEvent { Events = EpollIn | EpollRdHup, Data = (ulong)conn.Fd };
            Check(epoll_ctl(_epoll, CtlAdd, conn.Fd, &ev));
        }

        private void Watch(Conn conn, bool write)
        {
            if (conn.Watching == write)
            {
                return;
            }

            conn.Watching = write;
            var ev = new EpollEvent { Events = EpollIn | EpollRdHup | (write ? EpollOut : 0), Data = (ulong)conn.Fd };
            Check(epoll_ctl(_epoll, CtlMod, conn.Fd, &ev));
        }

        private void Readable(Conn conn)
        {
            while (true)
            {
                if (conn.InLength == conn.In.Length)
                {
                    Close(conn); // a head or answer larger than the buffer: out of this row's scope
                    return;
                }

                nint n;
                fixed (byte* buffer = conn.In)
                {
                    n = recv(conn.Fd, buffer + conn.InLength, conn.In.Length - conn.InLength, 0);
                }

                if (n > 0)
                {
                    conn.InLength += (int)n;
                    if (conn.InLength < conn.In.Length)
                    {
                        break; // a short read drained the socket (nginx's assumption too)
                    }

                    continue;
                }

                if (n < 0 && Marshal.GetLastPInvokeError() == EAgain)
                {
                    break;
                }

                Close(conn);
                return;
            }

            if (conn.Upstream)
            {
                Answered(conn);
            }
            else if (conn.Peer is null)
            {
                Dispatch(conn);
            }
        }

        private void Dispatch(Conn client)
        {
            var data = client.In.AsSpan(0, client.InLength);
            var head = data.IndexOf("\r\n\r\n"u8);
            if (head < 0)
            {
                return;
            }

            var total = head + 4 + ContentLength(data[..head]);
            if (client.InLength < total)
            {
                return;
            }

            var pool = _next++ % upstreams.Length;
            var upstream = Acquire(pool);
            if (upstream is null)
            {
                Send(client, BadGateway);
                Close(client);
                return;
            }

            // The request line and headers as they came, X-Forwarded-For added, then the body.
            var firstLine = data.IndexOf("\r\n"u8) + 2;
            var length = total + Forwarded.Length;
            if (upstream.Out.Length < length)
            {
                upstream.Out = new byte[length];
            }

            data[..firstLine].CopyTo(upstream.Out);
            Forwarded.CopyTo(upstream.Out, firstLine);
            data[firstLine..total].CopyTo(upstream.Out.AsSpan(firstLine + Forwarded.Length));
            upstream.OutOffset = 0;
            upstream.OutLength = length;
            data[total..].CopyTo(client.In);
            client.InLength -= total;
            client.Peer = upstream;
            upstream.Peer = client;
            if (!upstream.Connecting)
            {
                Flush(upstream);
            }
        }

        private void Answered(Conn upstream)
        {
            if (upstream.Peer is not { } client)
            {
                Close(upstream); // an idle pooled connection said something or closed
                return;
            }

            var data = upstream.In.AsSpan(0, upstream.InLength);
            var head = data.IndexOf("\r\n\r\n"u8);
            if (head < 0)
            {
                return;
            }

            var total = head + 4 + ContentLength(data[..head]);
            if (upstream.InLength < total)
            {
                return;
            }

            var closing = IndexOfIgnoreCase(data[..head], "\r\nconnection: close"u8) >= 0;
            Send(client, data[..total]);
            upstream.InLength = 0;
            upstream.Peer = null;
            client.Peer = null;
            if (closing)
            {
                Close(upstream); // nginx closes after keepalive_requests and says so
            }
            else
            {
                _idle[upstream.Pool].Push(upstream);
            }

            if (!client.Closed && client.InLength > 0)
            {
                Dispatch(client); // pipelined
            }
        }

        private Conn? Acquire(int pool)
        {
            while (_idle[pool].TryPop(out var idle))
            {
                if (!idle.Closed)
                {
                    return idle;
                }
            }

            var fd = socket((int)AddressFamily.InterNetwork, (int)SocketType.Stream | SockNonBlock | SockCloExec, 0);
            if (fd < 0)
            {
                return null;
            }

            NoDelay(fd);
            var conn = new Conn(fd, upstream: true) { Pool = pool };
            int result;
            fixed (byte* address = upstreams[pool])
            {
                result = connect(fd, address, 16);
            }

            if (result < 0 && Marshal.GetLastPInvokeError() != EInProgress)
            {
                close(fd);
                return null;
            }

            Register(conn);
            if (result < 0)
            {
                conn.Connecting = true;
                Watch(conn, write: true);
            }

            return conn;
        }

        private void Send(Conn conn, ReadOnlySpan<byte> bytes)
        {
            if (conn.OutLength - conn.OutOffset == 0)
            {
                conn.OutOffset = conn.OutLength = 0;
            }

            if (conn.Out.Length - conn.OutLength < bytes.Length)
            {
                Array.Resize(ref conn.Out, conn.OutLength + bytes.Length);
            }

            bytes.CopyTo(conn.Out.AsSpan(conn.OutLength));
            conn.OutLength += bytes.Length;
            Flush(conn);
        }

        private void Writable(Conn conn)
        {
            conn.Connecting = false;
            Flush(conn);
        }

        private void Flush(Conn conn)
        {
            while (conn.OutOffset < conn.OutLength)
            {
                nint n;
                fixed (byte* buffer = conn.Out)
                {
                    n = send(conn.Fd, buffer + conn.OutOffset, conn.OutLength - conn.OutOffset, 0x4000 /* MSG_NOSIGNAL */);
                }

                if (n < 0)
                {
                    if (Marshal.GetLastPInvokeError() == EAgain)
                    {
                        Watch(conn, write: true);
                        return;
                    }

                    Close(conn);
                    return;
                }

                conn.OutOffset += (int)n;
            }

            conn.OutOffset = conn.OutLength = 0;
            Watch(conn, write: false);
        }

        private void Close(Conn conn)
        {
            if (conn.Closed)
            {
                return;
            }

            conn.Closed = true;
            _conns.Remove(conn.Fd);
            epoll_ctl(_epoll, CtlDel, conn.Fd, null);
            close(conn.Fd);
            if (conn.Peer is { } peer)
            {
                conn.Peer = null;
                peer.Peer = null;
                if (conn.Upstream)
                {
                    Send(peer, BadGateway);
                }

                Close(peer);
            }
        }

        private static int ContentLength(ReadOnlySpan<byte> head)
        {
            var at = IndexOfIgnoreCase(head, "\r\ncontent-length:"u8);
            if (at < 0)
            {
                return 0;
            }

            var value = head[(at + 17)..];
            var end = value.IndexOf("\r\n"u8);
            var text = Encoding.ASCII.GetString(end < 0 ? value : value[..end]).Trim();
            return int.Parse(text, System.Globalization.CultureInfo.InvariantCulture);
        }

        private static int IndexOfIgnoreCase(ReadOnlySpan<byte> text, ReadOnlySpan<byte> lower)
        {
            for (var i = 0; i + lower.Length <= text.Length; i++)
            {
                var j = 0;
                while (j < lower.Length && (text[i + j] is >= (byte)'A' and <= (byte)'Z' ? text[i + j] | 0x20 : text[i + j]) == lower[j])
                {
                    j++;
                }

                if (j == lower.Length)
                {
                    return i;
                }
            }

            return -1;
        }

        private static void NoDelay(int fd)
        {
            var one = 1;
            setsockopt(fd, 6 /* IPPROTO_TCP */, 1 /* TCP_NODELAY */, &one, sizeof(int));
        }

        private static void Check(int result)
        {
            if (result < 0)
            {
                throw new InvalidOperationException($"epoll_ctl failed: errno {Marshal.GetLastPInvokeError()}");
            }
        }
    }
}
