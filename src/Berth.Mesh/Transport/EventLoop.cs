using System.Collections.Concurrent;
using System.Runtime.InteropServices;

namespace Berth.Mesh.Transport;

/// <summary>
/// One thread waiting in its own epoll set, nginx's worker without the processes: a socket registered here gets its
/// readiness edges (edge-triggered, registered once for its life) on this thread, and the operation waiting for the
/// edge completes on it too, so the code after an <c>await</c> on a <see cref="LoopSocket"/> runs here until it waits
/// again: a request read from a client and forwarded upstream makes no thread-pool hop. Work from other threads comes in
/// through <see cref="Post"/> (an eventfd in the same set wakes the loop). The process has one loop per core
/// (<see cref="Shared"/>); a connection is given to one of them for its life.
/// </summary>
internal sealed unsafe class EventLoop
{
    private const ulong WakeToken = ulong.MaxValue;
    private static readonly Lazy<EventLoop[]> s_shared = new(() =>
        [.. Enumerable.Range(0, Math.Max(1, Environment.ProcessorCount)).Select(i => new EventLoop(i))]);
    private static int s_next;

    [ThreadStatic]
    private static EventLoop? t_current;

    private readonly int _epoll;
    private readonly int _wake;
    private readonly ConcurrentQueue<(Action<object?> Work, object? State)> _posts = new();
    private readonly Lock _registry = new();
    private LoopSocket?[] _sockets = new LoopSocket?[64];
    private readonly Stack<int> _free = new();
    private int _used;
    private int _signaled;

    private EventLoop(int index)
    {
        Index = index;
        _epoll = Epoll.Create(Epoll.CloseOnExec);
        _wake = Epoll.EventFd(0, Epoll.NonBlock | Epoll.CloseOnExec);
        if (_epoll < 0 || _wake < 0)
        {
            throw new IOException($"mesh: cannot make an event loop (epoll/eventfd failed, errno {Marshal.GetLastPInvokeError()})");
        }

        var ev = new Epoll.Event { Events = Epoll.In, Data = WakeToken };
        Epoll.Control(_epoll, Epoll.CtlAdd, _wake, &ev);
        new Thread(Run) { IsBackground = true, Name = $"berth mesh loop {index}" }.Start();
    }

    /// <summary>This loop's place in <see cref="Shared"/>.</summary>
    public int Index { get; }

    /// <summary>The loop whose thread runs the calling code, or null.</summary>
    public static EventLoop? Current => t_current;

    /// <summary>The process's loops, one per core, started on first use.</summary>
    public static IReadOnlyList<EventLoop> Shared => s_shared.Value;

    /// <summary>The next loop, round-robin: where a new connection goes.</summary>
    public static EventLoop Next()
    {
        var loops = s_shared.Value;
        return loops[(int)((uint)Interlocked.Increment(ref s_next) % (uint)loops.Length)];
    }

    /// <summary>Adds a socket to the set (edge-triggered, reading and writing, for its life); returns its token.</summary>
    public ulong Register(LoopSocket socket, int fd)
    {
        ulong token;
        lock (_registry)
        {
            var slot = _free.Count > 0 ? _free.Pop() : _used++;
            if (slot >= _sockets.Length)
            {
                var grown = new LoopSocket?[_sockets.Length * 2];
                _sockets.CopyTo(grown, 0);
                Volatile.Write(ref _sockets, grown);
            }

            _sockets[slot] = socket;
            token = (uint)slot | ((ulong)socket.Generation << 32);
            socket.Token = token; // before the ADD: a socket already ready gets its first edge at once, and it must match
        }

        var ev = new Epoll.Event { Events = Epoll.In | Epoll.Out | Epoll.RdHup | Epoll.EdgeTriggered, Data = token };
        if (Epoll.Control(_epoll, Epoll.CtlAdd, fd, &ev) < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            Unregister(token, fd);
            throw new IOException($"mesh: epoll_ctl(ADD) failed, errno {errno}");
        }

        return token;
    }

    /// <summary>Takes a socket out of the set before its descriptor is closed; an event already read for it is dropped.</summary>
    public void Unregister(ulong token, int fd)
    {
        Epoll.Control(_epoll, Epoll.CtlDel, fd, null);
        lock (_registry)
        {
            var slot = (int)(token & 0xFFFFFFFF);
            if (_sockets[slot] is { } s && s.Token == token)
            {
                _sockets[slot] = null;
                _free.Push(slot);
            }
        }
    }

    /// <summary>Runs <paramref name="work"/> on the loop's thread soon (after the events it is handling).</summary>
    public void Post(Action<object?> work, object? state)
    {
        _posts.Enqueue((work, state));
        if (Interlocked.Exchange(ref _signaled, 1) == 0)
        {
            ulong one = 1;
            Epoll.Write(_wake, &one, sizeof(ulong));
        }
    }

    private void Run()
    {
        t_current = this;
        const int Max = 256;
        var events = (Epoll.Event*)NativeMemory.Alloc(Max, (nuint)sizeof(Epoll.Event));
        while (true)
        {
            var n = Epoll.Wait(_epoll, events, Max, -1);
            if (n < 0)
            {
                continue; // EINTR
            }

            var sockets = Volatile.Read(ref _sockets);
            for (var i = 0; i < n; i++)
            {
                var token = events[i].Data;
                if (token == WakeToken)
                {
                    ulong count;
                    Epoll.Read(_wake, &count, sizeof(ulong));
                    Volatile.Write(ref _signaled, 0);
                    RunPosts();
                    continue;
                }

                var slot = (int)(token & 0xFFFFFFFF);
                if (slot < sockets.Length && sockets[slot] is { } socket && socket.Token == token)
                {
                    try
                    {
                        socket.OnEvents(events[i].Events);
                    }
                    catch (Exception e)
                    {
                        // An exception from a continuation run inline must not stop the loop every other connection needs.
                        Environment.FailFast("berth mesh: unhandled exception on an event loop", e);
                    }
                }
            }
        }
    }

    private void RunPosts()
    {
        while (_posts.TryDequeue(out var post))
        {
            try
            {
                post.Work(post.State);
            }
            catch (Exception e)
            {
                Environment.FailFast("berth mesh: unhandled exception in work posted to an event loop", e);
            }
        }
    }
}
