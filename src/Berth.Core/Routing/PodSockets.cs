using System.Collections.Concurrent;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Berth.Core.Interop;

namespace Berth.Core.Routing;

/// <summary>
/// Makes TCP sockets inside a pod's network namespace; the caller then connects (inbound: 127.0.0.1:targetPort in the
/// pod) or binds and listens (outbound: a service's virtual address in the pod) from any thread, because a socket keeps
/// the namespace it was made in. As root, one dedicated thread enters the pod with <c>setns</c>, makes the socket with a
/// raw <c>socket()</c> call (nothing of the .NET runtime runs in the pod, so no runtime thread is ever started there, and
/// threads inherit their creator's namespace) and goes back to the host namespace before anything else. Without root
/// (the pod is owned by another user namespace, which a multithreaded process cannot enter) the pod's helper makes it
/// and passes it back with SCM_RIGHTS (<see cref="PodNetwork.SocketHelper"/>).
/// </summary>
public static partial class PodSockets
{
    private static readonly Lazy<NamespaceThread> Thread = new(() => new NamespaceThread());

    /// <summary>A new unconnected TCP socket inside <paramref name="pod"/>. Throws <see cref="SocketException"/> when the pod is gone.</summary>
    public static Task<Socket> CreateAsync(PodNetwork pod, AddressFamily family, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(pod);
        if (family is not (AddressFamily.InterNetwork or AddressFamily.InterNetworkV6))
        {
            throw new ArgumentOutOfRangeException(nameof(family), family, "only IPv4 and IPv6 TCP sockets are made in pods");
        }

        return pod.SocketHelper is { } helper
            ? FromHelperAsync(pod, helper, family, cancellationToken)
            : Thread.Value.Run(pod, family, cancellationToken);
    }

    /// <summary>The namespace inode a <c>/proc/…/ns/net</c> link names (<c>net:[4026532175]</c>), or 0 when it cannot be read.</summary>
    public static ulong InodeOf(string namespacePath)
    {
        try
        {
            var target = new FileInfo(namespacePath).LinkTarget;
            return target is not null && target.StartsWith("net:[", StringComparison.Ordinal) && ulong.TryParse(target.AsSpan(5, target.Length - 6), out var inode) ? inode : 0;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return 0;
        }
    }

    private static async Task<Socket> FromHelperAsync(PodNetwork pod, string helper, AddressFamily family, CancellationToken cancellationToken)
    {
        using var channel = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            await channel.ConnectAsync(new UnixDomainSocketEndPoint(helper), cancellationToken).ConfigureAwait(false);
            await channel.SendAsync(new[] { (byte)(family == AddressFamily.InterNetworkV6 ? '6' : '4') }, SocketFlags.None, cancellationToken).ConfigureAwait(false);

            // The answer is one byte with the descriptor attached; wait for it to arrive, then take both with recvmsg.
            await channel.ReceiveAsync(Memory<byte>.Empty, SocketFlags.Peek, cancellationToken).ConfigureAwait(false);
        }
        catch (SocketException e)
        {
            throw new SocketException((int)e.SocketErrorCode, $"pod {pod.PodId}: its socket helper at {helper} did not answer ({e.Message}); the pod is gone or its supervisor was killed");
        }

        var fd = ReceiveDescriptor(channel.Handle);
        if (fd < 0)
        {
            throw new SocketException((int)SocketError.SocketError, $"pod {pod.PodId}: its socket helper at {helper} could not make a socket");
        }

        return new Socket(new SafeSocketHandle(fd, ownsHandle: true));
    }

    private static int ReceiveDescriptor(nint channel)
    {
        Span<byte> data = stackalloc byte[1];
        var got = ScmRights.Receive((int)channel, data, out var fd);
        if (got > 0 && data[0] == (byte)'k')
        {
            return fd;
        }

        if (fd >= 0)
        {
            Close(fd);
        }

        return -1;
    }

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int fd);

    /// <summary>The one thread that enters pods. It stays in the host's namespace except between a <c>setns</c> into a pod and
    /// the <c>setns</c> back, where it makes only raw system calls.</summary>
    private sealed partial class NamespaceThread
    {
        private const int CloneNewNet = 0x40000000;
        private const int ORdOnly = 0;
        private const int OCloexec = 0x80000;
        private const int SockStream = 1;
        private const int SockCloexec = 0x80000;

        private readonly BlockingCollection<Request> _requests = [];
        private readonly int _home;
        private string? _broken;

        public NamespaceThread()
        {
            // Opened on the creating thread, which is in the host namespace like every thread of this process.
            _home = Open("/proc/thread-self/ns/net", ORdOnly | OCloexec);
            if (_home < 0)
            {
                _broken = $"cannot open /proc/thread-self/ns/net (errno {Marshal.GetLastPInvokeError()})";
            }

            new System.Threading.Thread(Loop) { IsBackground = true, Name = "berth-pod-sockets" }.Start();
        }

        public Task<Socket> Run(PodNetwork pod, AddressFamily family, CancellationToken cancellationToken)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var request = new Request(pod, family, new TaskCompletionSource<Socket>(TaskCreationOptions.RunContinuationsAsynchronously));
            _requests.Add(request, cancellationToken);
            return request.Done.Task;
        }

        private void Loop()
        {
            foreach (var request in _requests.GetConsumingEnumerable())
            {
                try
                {
                    request.Done.SetResult(Make(request.Pod, request.Family));
                }
                catch (Exception e)
                {
                    request.Done.SetException(e);
                }
            }
        }

        private Socket Make(PodNetwork pod, AddressFamily family)
        {
            if (_broken is not null)
            {
                throw new SocketException((int)SocketError.SocketError, $"pod sockets are unavailable: {_broken}");
            }

            var ns = Open(pod.NamespacePath, ORdOnly | OCloexec);
            if (ns < 0)
            {
                throw new SocketException((int)SocketError.HostUnreachable, $"pod {pod.PodId}: cannot open its namespace {pod.NamespacePath} (errno {Marshal.GetLastPInvokeError()}); the pod is gone");
            }

            try
            {
                if (pod.NamespaceInode != 0 && InodeOf(pod.NamespacePath) != pod.NamespaceInode)
                {
                    throw new SocketException((int)SocketError.HostUnreachable, $"pod {pod.PodId}: {pod.NamespacePath} is another namespace now (its process ended and the pid was reused); the pod is gone");
                }

                if (SetNs(ns, CloneNewNet) != 0)
                {
                    throw new SocketException((int)SocketError.AccessDenied, $"pod {pod.PodId}: setns into {pod.NamespacePath} failed (errno {Marshal.GetLastPInvokeError()}); entering a pod needs root (CAP_SYS_ADMIN)");
                }

                var fd = SocketCall(family == AddressFamily.InterNetworkV6 ? 10 : 2, SockStream | SockCloexec, 0);
                var errno = Marshal.GetLastPInvokeError();
                if (SetNs(_home, CloneNewNet) != 0)
                {
                    // Never run anything else in a pod's namespace: threads this one made would inherit it.
                    _broken = $"setns back to the host namespace failed (errno {Marshal.GetLastPInvokeError()})";
                    Environment.FailFast($"berth: {_broken}; the pod socket thread is stuck in pod {pod.PodId}");
                }

                return fd < 0
                    ? throw new SocketException((int)SocketError.SocketError, $"pod {pod.PodId}: socket() failed in its namespace (errno {errno})")
                    : new Socket(new SafeSocketHandle(fd, ownsHandle: true));
            }
            finally
            {
                Close(ns);
            }
        }

        private sealed record Request(PodNetwork Pod, AddressFamily Family, TaskCompletionSource<Socket> Done);

        [LibraryImport("libc", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
        private static partial int Open(string path, int flags);

        [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
        private static partial int Close(int fd);

        [LibraryImport("libc", EntryPoint = "setns", SetLastError = true)]
        private static partial int SetNs(int fd, int nstype);

        [LibraryImport("libc", EntryPoint = "socket", SetLastError = true)]
        private static partial int SocketCall(int domain, int type, int protocol);
    }
}
