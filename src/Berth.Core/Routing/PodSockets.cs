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

    /// <summary>How many times the pod socket thread has entered <paramref name="pod"/> to make IPv4 sockets (one pair of
    /// <c>setns</c> each, however many sockets it made there) since the pod was last idle; for tests and diagnostics.</summary>
    public static long VisitsTo(PodNetwork pod)
    {
        ArgumentNullException.ThrowIfNull(pod);
        return Thread.IsValueCreated ? Thread.Value.VisitsTo(pod) : 0;
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
    /// <remarks>A busy pod (<see cref="BusyAfter"/> asks in a row, each within <see cref="BusyWithin"/> of the one before)
    /// gets spares: a visit makes a batch, the next asks take one without waiting for this thread, and a refill is queued
    /// while it stays busy and few are left. Without them every connection into a pod paid a hand-over to this thread and
    /// back plus two <c>setns</c> (issue #13: 25-50 µs of CPU and ~100 µs of wall time per socket under load, against ~7 µs
    /// for a host socket; the shop sample's api opens three db connections per request). Probes (a few per pod every few
    /// seconds) never make spares. Spares of a pod not asked for <see cref="IdleSpares"/> are closed, and a gone pod's
    /// once a visit to it fails: a spare holds its namespace alive, and connecting one after its replica ended is refused,
    /// as a connect to a gone pod must be. Asks queued while a batch was being made are served from it when their turn
    /// comes (a queued ask enters the pod only when no spare is left), and the thread waits for work without spinning:
    /// a <see cref="BlockingCollection{T}"/> spun (about 20 <c>sched_yield</c> per request of the shop sample, ~65 µs of
    /// CPU per request on this thread).</remarks>
    private sealed partial class NamespaceThread
    {
        /// <summary>Sockets made per visit to a busy pod (one pair of <c>setns</c> for all of them); a refill is asked for when
        /// fewer than half are left.</summary>
        private const int Batch = 16;

        private static readonly TimeSpan BusyWithin = TimeSpan.FromMilliseconds(100);

        private const int BusyAfter = 3;

        private static readonly TimeSpan IdleSpares = TimeSpan.FromSeconds(10);

        private readonly ConcurrentDictionary<(string Path, ulong Inode), Spares> _spares = new();
        private long _swept = Environment.TickCount64;

        private const int CloneNewNet = 0x40000000;
        private const int ORdOnly = 0;
        private const int OCloexec = 0x80000;
        private const int SockStream = 1;
        private const int SockCloexec = 0x80000;

        /// <summary>Work for the thread, guarded by the queue's own lock.</summary>
        private readonly Queue<Request> _requests = [];
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
            var batch = 1;
            if (family == AddressFamily.InterNetwork && pod.NamespaceInode != 0)
            {
                // Only with the inode: a path alone may name another namespace once the pod's pid is reused.
                var spares = _spares.GetOrAdd((pod.NamespacePath, pod.NamespaceInode), _ => new Spares());
                var now = Environment.TickCount64;
                var streak = 0;
                if (now - Interlocked.Exchange(ref spares.LastAsked, now) < (long)BusyWithin.TotalMilliseconds)
                {
                    streak = Interlocked.Increment(ref spares.Streak);
                }
                else
                {
                    Volatile.Write(ref spares.Streak, 0);
                }

                if (spares.Queue.TryDequeue(out var spare))
                {
                    if (streak >= BusyAfter && spares.Queue.Count < Batch / 2 && Interlocked.Exchange(ref spares.Refilling, 1) == 0)
                    {
                        Post(new Request(pod, family, Batch, null));
                    }

                    return Task.FromResult(spare);
                }

                // One batch at a time: asks that find the spares empty while one is being made take a single socket each,
                // or a burst would make a batch per ask.
                batch = streak >= BusyAfter && Interlocked.Exchange(ref spares.Refilling, 1) == 0 ? Batch : 1;
            }

            var request = new Request(pod, family, batch, new TaskCompletionSource<Socket>(TaskCreationOptions.RunContinuationsAsynchronously));
            Post(request);
            return request.Done!.Task;
        }

        public long VisitsTo(PodNetwork pod) =>
            _spares.TryGetValue((pod.NamespacePath, pod.NamespaceInode), out var spares) ? Interlocked.Read(ref spares.Visits) : 0;

        private void Post(Request request)
        {
            lock (_requests)
            {
                _requests.Enqueue(request);
                Monitor.Pulse(_requests); // wakes the thread if it waits; nothing otherwise
            }
        }

        private void Loop()
        {
            while (true)
            {
                Request? request;
                lock (_requests)
                {
                    if (_requests.Count == 0)
                    {
                        // Monitor.Wait blocks at once; BlockingCollection's semaphore spun with sched_yield first.
                        Monitor.Wait(_requests, IdleSpares);
                    }

                    _requests.TryDequeue(out request);
                }

                if (request is not null)
                {
                    Serve(request);
                }

                if (Environment.TickCount64 - _swept > (long)IdleSpares.TotalMilliseconds)
                {
                    Sweep();
                }
            }
        }

        private void Serve(Request request)
        {
            var key = (request.Pod.NamespacePath, request.Pod.NamespaceInode);
            var pooled = request.Family == AddressFamily.InterNetwork && request.Pod.NamespaceInode != 0;
            Spares? known = null;
            if (pooled && _spares.TryGetValue(key, out known) && request.Done is not null && known.Queue.TryDequeue(out var spare))
            {
                // Queued while a batch was being made: served from it, without entering the pod again.
                request.Done.SetResult(spare);
                return;
            }

            try
            {
                // A queued ask of a busy pod that finds no spare makes a batch: the asks queued behind it take the rest.
                var count = request.Done is null ? Batch - SparesOf(key) : Math.Max(request.Batch, known is not null && Volatile.Read(ref known.Streak) >= BusyAfter ? Batch : 1);
                if (count <= 0)
                {
                    return; // a refill that queued asks' batches made unneeded
                }

                if (pooled)
                {
                    Interlocked.Increment(ref _spares.GetOrAdd(key, _ => new Spares()).Visits);
                }

                var made = Make(request.Pod, request.Family, count);
                var first = 0;
                if (request.Done is not null)
                {
                    request.Done.SetResult(new Socket(new SafeSocketHandle(made[0], ownsHandle: true)));
                    first = 1;
                }

                if (made.Count > first)
                {
                    var spares = _spares.GetOrAdd(key, _ => new Spares());
                    for (var i = first; i < made.Count; i++)
                    {
                        spares.Queue.Enqueue(new Socket(new SafeSocketHandle(made[i], ownsHandle: true)));
                    }
                }
            }
            catch (Exception e)
            {
                // The pod is gone (or cannot be entered): its spares, if any, go too.
                DropSpares(key);
                request.Done?.SetException(e);
            }
            finally
            {
                if ((request.Done is null || request.Batch > 1) && _spares.TryGetValue(key, out var spares))
                {
                    Volatile.Write(ref spares.Refilling, 0);
                }
            }
        }

        private int SparesOf((string, ulong) key) => _spares.TryGetValue(key, out var spares) ? spares.Queue.Count : 0;

        /// <summary>Closes the spares of pods not asked for sockets for <see cref="IdleSpares"/> (gone, or quiet).</summary>
        private void Sweep()
        {
            _swept = Environment.TickCount64;
            foreach (var (key, spares) in _spares)
            {
                if (_swept - Volatile.Read(ref spares.LastAsked) > (long)IdleSpares.TotalMilliseconds)
                {
                    DropSpares(key);
                }
            }
        }

        private void DropSpares((string, ulong) key)
        {
            if (_spares.TryRemove(key, out var spares))
            {
                while (spares.Queue.TryDequeue(out var socket))
                {
                    socket.Dispose();
                }
            }
        }

        /// <summary>Up to <paramref name="count"/> (at least one) new sockets in <paramref name="pod"/>, made with one pair of <c>setns</c>.</summary>
        private ArraySegment<int> Make(PodNetwork pod, AddressFamily family, int count)
        {
            if (_broken is not null)
            {
                throw new SocketException((int)SocketError.SocketError, $"pod sockets are unavailable: {_broken}");
            }

            // Allocated here, in the host namespace: between the two setns nothing but raw calls runs (an allocation could
            // start a GC, and a thread the runtime started then would stay in the pod).
            var made = new int[Math.Max(1, count)];
            var domain = family == AddressFamily.InterNetworkV6 ? 10 : 2;
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

                var n = 0;
                var errno = 0;
                while (n < made.Length)
                {
                    var fd = SocketCall(domain, SockStream | SockCloexec, 0);
                    if (fd < 0)
                    {
                        errno = Marshal.GetLastPInvokeError();
                        break;
                    }

                    made[n++] = fd;
                }

                if (SetNs(_home, CloneNewNet) != 0)
                {
                    // Never run anything else in a pod's namespace: threads this one made would inherit it.
                    _broken = $"setns back to the host namespace failed (errno {Marshal.GetLastPInvokeError()})";
                    Environment.FailFast($"berth: {_broken}; the pod socket thread is stuck in pod {pod.PodId}");
                }

                return n == 0
                    ? throw new SocketException((int)SocketError.SocketError, $"pod {pod.PodId}: socket() failed in its namespace (errno {errno})")
                    : new ArraySegment<int>(made, 0, n);
            }
            finally
            {
                Close(ns);
            }
        }

        /// <summary>A socket asked for (<see cref="Done"/> set; <see cref="Batch"/> made, the rest kept as spares), or a refill of spares (null).</summary>
        private sealed record Request(PodNetwork Pod, AddressFamily Family, int Batch, TaskCompletionSource<Socket>? Done);

        /// <summary>A busy pod's sockets made ahead, and when it last asked for one.</summary>
        private sealed class Spares
        {
            public readonly ConcurrentQueue<Socket> Queue = new();
            public long LastAsked;
            public int Streak;
            public int Refilling;
            public long Visits;
        }

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
