using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Berth.Core.Routing;
using Berth.Mesh.Tcp;
using Microsoft.Extensions.Logging;

namespace Berth.Mesh.Pods;

/// <summary>
/// The outbound listeners inside one pod: on each callee service's virtual address and port, a socket made inside the pod
/// (so only that pod's processes reach it). Each connection is spliced to the callee endpoint's mesh listener on the host,
/// so the callee's policy applies (balancing, retries, breakers, ejection, timeouts, metrics, traceparent) exactly as for
/// a caller on the host. A sidecar per replica, without a sidecar process.
/// </summary>
internal sealed class PodListeners : IAsyncDisposable
{
    private readonly Func<string, string, IPEndPoint?> _resolve;
    private readonly Func<string, string, Socket, Func<CancellationToken, Task>?>? _serveInPlace;
    private readonly ILogger _logger;
    private readonly Dictionary<(string Address, int Port), Acceptor> _acceptors = [];

    /// <param name="pod">The pod.</param>
    /// <param name="resolve">(service, endpoint) → the host address of that endpoint's mesh listener, or null when it has none now.</param>
    /// <param name="logger">Where listener trouble is reported.</param>
    /// <param name="bound">(pod, address, port) → a socket already listening there in the pod (passed by the previous data
    /// plane in an upgrade), or null: make one.</param>
    /// <param name="serveInPlace">(service, endpoint, accepted socket) → serves the connection with that endpoint's own
    /// proxy (no second hop; it takes the socket), or null: splice it to the endpoint's mesh listener.</param>
    public PodListeners(PodNetwork pod, Func<string, string, IPEndPoint?> resolve, ILogger logger, Func<PodNetwork, string, int, Socket?>? bound = null,
        Func<string, string, Socket, Func<CancellationToken, Task>?>? serveInPlace = null)
    {
        Pod = pod;
        _resolve = resolve;
        _serveInPlace = serveInPlace;
        _logger = logger;
        _bound = bound;
    }

    private readonly Func<PodNetwork, string, int, Socket?>? _bound;

    public PodNetwork Pod { get; private set; }

    /// <summary>The route last applied (a host-gateway pod's mirrors are re-read against it).</summary>
    public PodRoute? Route { get; private set; }

    /// <summary>Mirrored host ports that could not be bound in the pod (e.g. its replica listens on that port on every
    /// address), said once each rather than on every re-read.</summary>
    private readonly HashSet<int> _mirrorsRefused = [];

    /// <summary>The listening sockets open now, by address and port: what an upgrade passes to the next data plane.</summary>
    public IReadOnlyList<(string Address, int Port, Socket Socket)> Sockets => [.. _acceptors.Select(a => (a.Key.Address, a.Key.Port, a.Value.Socket))];

    /// <summary>The listeners open now, for tests and <c>/routes</c>.</summary>
    public IReadOnlyCollection<OutboundListener> Open => [.. _acceptors.Values.Select(a => a.Listener)];

    /// <summary>Opens the listeners <paramref name="route"/> names that are not open, retargets kept ones, closes the rest.
    /// A host-gateway pod also gets one listener per port in <paramref name="hostPorts"/> (port → host address) at
    /// <see cref="PodDefaults.HostGatewayAddress"/>.</summary>
    public async Task UpdateAsync(PodRoute route, IReadOnlyDictionary<int, string> hostPorts, CancellationToken cancellationToken)
    {
        if (route.Pod != Pod)
        {
            if (!SameNamespace(Pod, route.Pod))
            {
                // The pod was made again under the same id (a restart): every socket of the old namespace goes.
                await CloseAllAsync().ConfigureAwait(false);
                _mirrorsRefused.Clear();
            }

            // Otherwise the same namespace described anew (a control plane that adopted the pod found it again by another
            // path or with its inode): the sockets already open in it stay, so calls by name see no refused connection.
            Pod = route.Pod;
        }

        Route = route;
        var wanted = route.Listeners.ToDictionary(l => (l.Address, l.Port));
        if (route.HostGateway)
        {
            foreach (var (port, target) in hostPorts)
            {
                wanted.TryAdd((PodDefaults.HostGatewayAddress, port), new OutboundListener(PodDefaults.HostGateway, $"tcp-{port}", PodDefaults.HostGatewayAddress, port) { ForwardTo = target });
            }
        }

        foreach (var key in _acceptors.Keys.Where(k => !wanted.ContainsKey(k)).ToList())
        {
            _acceptors.Remove(key, out var gone);
            await gone!.DisposeAsync().ConfigureAwait(false);
        }

        foreach (var (key, listener) in wanted)
        {
            if (_acceptors.TryGetValue(key, out var kept))
            {
                kept.Listener = listener;
                continue;
            }

            var address = $"{listener.Address}:{listener.Port}";
            try
            {
                if (_bound?.Invoke(Pod, listener.Address, listener.Port) is { } passed)
                {
                    // Passed by the previous data plane (an upgrade): already listening in this pod, never closed.
                    _acceptors[key] = new Acceptor(this, listener, passed);
                    continue;
                }

                var socket = await PodSockets.CreateAsync(Pod, AddressFamily.InterNetwork, cancellationToken).ConfigureAwait(false);
                try
                {
                    // SO_REUSEADDR alone (as the stable listeners): a restarted data plane binds again over TIME_WAIT.
                    socket.SetRawSocketOption(1, 2, BitConverter.GetBytes(1));
                    socket.Bind(new IPEndPoint(IPAddress.Parse(listener.Address), listener.Port));
                    socket.Listen(512);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }

                _acceptors[key] = new Acceptor(this, listener, socket);
                if (listener.ForwardTo is null)
                {
                    Log.PodListenerStarted(_logger, Pod.PodId, listener.Service, listener.Endpoint, address);
                }
            }
            catch (SocketException) when (listener.ForwardTo is not null && !_mirrorsRefused.Add(listener.Port))
            {
            }
            catch (SocketException e)
            {
                // The pod may be gone (its replica ended) or something in it holds the address: the next update tries again.
                Log.PodListenerFailed(_logger, Pod.PodId, listener.Service, listener.Endpoint, address, e.Message);
            }
        }
    }

    /// <summary>Whether two descriptions of a pod name one network namespace: same pod, and the same inode (read from the
    /// namespace file when a description lacks it).</summary>
    private static bool SameNamespace(PodNetwork a, PodNetwork b)
    {
        if (a.PodId != b.PodId)
        {
            return false;
        }

        var (x, y) = (a.NamespaceInode != 0 ? a.NamespaceInode : PodSockets.InodeOf(a.NamespacePath), b.NamespaceInode != 0 ? b.NamespaceInode : PodSockets.InodeOf(b.NamespacePath));
        return x != 0 && x == y;
    }

    public ValueTask DisposeAsync() => new(CloseAllAsync());

    private async Task CloseAllAsync()
    {
        var all = _acceptors.Values.ToList();
        _acceptors.Clear();
        foreach (var a in all)
        {
            await a.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>One listening socket in the pod and its accept loop.</summary>
    private sealed class Acceptor : IAsyncDisposable
    {
        private readonly PodListeners _owner;
        private readonly Socket _socket;
        private readonly CancellationTokenSource _stop = new();
        private readonly ConcurrentDictionary<long, Task> _connections = new();
        private readonly Task _loop;
        private long _next;

        public Acceptor(PodListeners owner, OutboundListener listener, Socket socket)
        {
            _owner = owner;
            Listener = listener;
            _socket = socket;
            _loop = AcceptLoopAsync(_stop.Token);
        }

        public volatile OutboundListener Listener;

        public Socket Socket => _socket;

        private async Task AcceptLoopAsync(CancellationToken cancellationToken)
        {
            await Task.Yield();
            while (!cancellationToken.IsCancellationRequested)
            {
                Socket client;
                try
                {
                    client = await _socket.AcceptAsync(cancellationToken).ConfigureAwait(false);
                }
                catch (Exception e) when (e is SocketException or ObjectDisposedException or OperationCanceledException)
                {
                    return;
                }

                var id = Interlocked.Increment(ref _next);
                _connections[id] = SpliceAsync(id, client, cancellationToken);
            }
        }

        private async Task SpliceAsync(long id, Socket client, CancellationToken cancellationToken)
        {
            await Task.Yield();
            var listener = Listener;
            try
            {
                if (listener.ForwardTo is null && _owner._serveInPlace?.Invoke(listener.Service, listener.Endpoint, client) is { } serve)
                {
                    await serve(cancellationToken).ConfigureAwait(false);
                    return;
                }

                using (client)
                {
                    client.NoDelay = true;
                    if ((listener.ForwardTo is { } host ? IPEndPoint.Parse(host) : _owner._resolve(listener.Service, listener.Endpoint)) is not { } target)
                    {
                        Log.PodOutboundFailed(_owner._logger, _owner.Pod.PodId, listener.Service, listener.Endpoint, "the endpoint has no mesh listener");
                        return;
                    }

                    using var upstream = new Socket(target.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                    try
                    {
                        await upstream.ConnectAsync(target, cancellationToken).ConfigureAwait(false);
                    }
                    catch (SocketException e)
                    {
                        Log.PodOutboundFailed(_owner._logger, _owner.Pod.PodId, listener.Service, listener.Endpoint, e.Message);
                        return;
                    }

                    await Task.WhenAll(
                        TcpProxy.PumpAsync(client, upstream, cancellationToken),
                        TcpProxy.PumpAsync(upstream, client, cancellationToken)).ConfigureAwait(false);
                }
            }
            catch (OperationCanceledException)
            {
            }
            finally
            {
                _connections.TryRemove(id, out _);
            }
        }

        public async ValueTask DisposeAsync()
        {
            _socket.Close();
            await _stop.CancelAsync().ConfigureAwait(false);
            await _loop.ConfigureAwait(false);
            await Task.WhenAll(_connections.Values).ConfigureAwait(false);
            _stop.Dispose();
        }
    }
}
