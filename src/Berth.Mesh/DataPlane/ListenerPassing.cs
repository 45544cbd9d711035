using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;
using Berth.Core.Interop;
using Berth.Core.Routing;

namespace Berth.Mesh.DataPlane;

/// <summary>
/// Hands listening sockets from one data-plane process to the next, as Envoy's hot restart and HAProxy's seamless reload
/// do: the descriptors travel with SCM_RIGHTS over a Unix seqpacket socket, so both processes hold the same socket and
/// the port never closes — connections that arrive while the new process starts its listeners wait in the backlog.
/// The old process then lets go with <see cref="Detach"/> before its listeners stop, so nothing it does to its own socket
/// objects reaches the shared socket: a .NET dispose that finds the socket in use by a system call (an accept running at
/// that moment) unblocks it with <c>connect(AF_UNSPEC)</c>, which stops a listening socket for every process holding it.
/// (Measured: a dispose with only a pending async accept did not do that, 3 of 3 runs of ListenerPassingTests without the
/// detach; the detach closes the race rather than a certain failure.)
/// </summary>
internal static partial class ListenerPassing
{
    /// <summary>At most this many bytes of a record's text: a service and an endpoint name.</summary>
    public const int MaxRecord = 4096;

    /// <summary>The record that ends a hand-over.</summary>
    public const string End = "end";

    /// <summary>The descriptor of this process's listening TCP socket on <paramref name="endpoint"/> in this process's
    /// network namespace (Kestrel's, the TCP proxy's: whoever opened it), found in <c>/proc/self/fd</c>; null when none.</summary>
    public static int? FindListening(IPEndPoint endpoint)
    {
        var home = NamespaceInode("/proc/self/ns/net");
        foreach (var entry in Directory.EnumerateFileSystemEntries("/proc/self/fd"))
        {
            if (!int.TryParse(Path.GetFileName(entry), out var fd) || !IsSocket(entry) || !IsListening(fd) || LocalEndPoint(fd) is not { } local || !local.Equals(endpoint))
            {
                continue;
            }

            // A listener on the same address inside a pod (the mesh's outbound ones) is not this one.
            if (SocketNamespaceInode(fd) is { } ns && home is { } h && ns != h)
            {
                continue;
            }

            return fd;
        }

        return null;
    }

    /// <summary>Sends one record: <paramref name="text"/> and, unless it is -1, the descriptor <paramref name="fd"/>
    /// (duplicated into the receiver by the kernel; this process keeps its own).</summary>
    public static void Send(Socket channel, string text, int fd, TimeSpan timeout)
    {
        var data = Encoding.UTF8.GetBytes(text);
        var deadline = Environment.TickCount64 + (long)timeout.TotalMilliseconds;
        while (ScmRights.Send((int)channel.Handle, data, fd, ScmRights.MsgNoSignal) < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            if (errno is not (EAgain or EIntr) || Environment.TickCount64 > deadline)
            {
                throw new SocketException(errno, $"passing a listening socket failed: sendmsg errno {errno}");
            }

            channel.Poll(TimeSpan.FromMilliseconds(50), SelectMode.SelectWrite);
        }
    }

    /// <summary>The next record, waiting up to <paramref name="timeout"/>: its text and its descriptor (-1 when it has none;
    /// close-on-exec); null at the end of the stream.</summary>
    public static (string Text, int Fd)? Receive(Socket channel, TimeSpan timeout)
    {
        if (!channel.Poll(timeout, SelectMode.SelectRead))
        {
            throw new TimeoutException($"no listening socket came from the previous data plane within {timeout.TotalSeconds:0}s");
        }

        Span<byte> data = stackalloc byte[MaxRecord];
        nint got;
        int fd;
        while ((got = ScmRights.Receive((int)channel.Handle, data, out fd)) < 0 && Marshal.GetLastPInvokeError() == EIntr)
        {
        }

        if (got < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw new SocketException(errno, $"receiving a listening socket failed: recvmsg errno {errno}");
        }

        return got == 0 ? null : (Encoding.UTF8.GetString(data[..(int)got]), fd);
    }

    /// <summary>The process id of the peer of a connected Unix socket (SO_PEERCRED, set by the kernel, not the peer).</summary>
    public static int PeerPid(Socket channel)
    {
        Span<byte> credentials = stackalloc byte[12]; // struct ucred { pid_t pid; uid_t uid; gid_t gid; }
        channel.GetRawSocketOption(SolSocket, SoPeerCred, credentials);
        return BinaryPrimitives.ReadInt32LittleEndian(credentials);
    }

    /// <summary>
    /// Makes each of <paramref name="fds"/> name a listening socket of this process alone (a never-used one on an
    /// ephemeral loopback port), so stopping and closing what owns them (Kestrel, the TCP proxy) leaves the passed
    /// sockets listening in the process they were passed to. The owners' accepts then wait on a socket nobody connects to.
    /// </summary>
    public static void Detach(IEnumerable<int> fds)
    {
        using var dummy = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        dummy.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        dummy.Listen(1);
        dummy.Blocking = false; // the owners' sockets are non-blocking; the flag belongs to the socket, so the copy must be too
        foreach (var fd in fds)
        {
            if (Dup2((int)dummy.Handle, fd) < 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                throw new SocketException(errno, $"letting go of a passed listening socket failed: dup2 errno {errno}");
            }
        }
    }

    private static bool IsSocket(string fdLink)
    {
        try
        {
            return new FileInfo(fdLink).LinkTarget?.StartsWith("socket:", StringComparison.Ordinal) == true;
        }
        catch (IOException)
        {
            return false; // closed meanwhile
        }
    }

    private static unsafe bool IsListening(int fd)
    {
        int value = 0;
        var length = (uint)sizeof(int);
        return GetSockOpt(fd, SolSocket, SoAcceptConn, &value, &length) == 0 && value != 0;
    }

    private static unsafe IPEndPoint? LocalEndPoint(int fd)
    {
        var address = stackalloc byte[128];
        var length = 128u;
        if (GetSockName(fd, address, &length) != 0)
        {
            return null;
        }

        var span = new ReadOnlySpan<byte>(address, (int)length);
        var family = BinaryPrimitives.ReadUInt16LittleEndian(span);
        return family switch
        {
            2 when length >= 8 => new IPEndPoint(new IPAddress(span.Slice(4, 4)), BinaryPrimitives.ReadUInt16BigEndian(span[2..])),
            10 when length >= 24 => new IPEndPoint(new IPAddress(span.Slice(8, 16)), BinaryPrimitives.ReadUInt16BigEndian(span[2..])),
            _ => null,
        };
    }

    /// <summary>The inode of the network namespace socket <paramref name="fd"/> was made in (SIOCGSKNS); null when the
    /// kernel cannot tell.</summary>
    public static ulong? SocketNamespaceInode(int fd)
    {
        var ns = Ioctl(fd, SiocGskNs, 0);
        if (ns < 0)
        {
            return null; // kernel without SIOCGSKNS: the address alone decides
        }

        try
        {
            return NamespaceInode($"/proc/self/fd/{ns}");
        }
        finally
        {
            Close(ns);
        }
    }

    /// <summary>The inode a <c>net:[N]</c> link names (<see cref="PodSockets.InodeOf"/>); null when it cannot be read.</summary>
    private static ulong? NamespaceInode(string link) => PodSockets.InodeOf(link) is var inode and not 0 ? inode : null;

    private const int SolSocket = 1;
    private const int SoPeerCred = 17;
    private const int SoAcceptConn = 30;
    private const int EIntr = 4;
    private const int EAgain = 11;
    private const nint SiocGskNs = 0x894C;

    [LibraryImport("libc", EntryPoint = "getsockopt", SetLastError = true)]
    private static unsafe partial int GetSockOpt(int socket, int level, int name, void* value, uint* length);

    [LibraryImport("libc", EntryPoint = "getsockname", SetLastError = true)]
    private static unsafe partial int GetSockName(int socket, byte* address, uint* length);

    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    private static partial int Ioctl(int fd, nint request, nint argument);

    [LibraryImport("libc", EntryPoint = "dup2", SetLastError = true)]
    private static partial int Dup2(int from, int to);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int fd);
}
