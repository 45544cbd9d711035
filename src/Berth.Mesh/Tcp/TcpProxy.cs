using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Berth.Core.Routing;
using Berth.Mesh.Resilience;
using Berth.Mesh.Routing;

namespace Berth.Mesh.Tcp;

/// <summary>
/// An L4 listener for non-HTTP services: each client connection is spliced to one upstream chosen by the policy's
/// balancer (round-robin or least-connections); a failed connect tries another endpoint and counts toward ejection.
/// Route updates affect only new connections; open ones run until either side closes.
/// </summary>
internal sealed class TcpProxy : IAsyncDisposable
{
    private readonly ServiceState _state;
    private readonly Socket _listener;
    private readonly CancellationTokenSource _stopping = new();
    private readonly ConcurrentDictionary<long, Task> _connections = new();
    private Task? _acceptLoop;
    private long _next;

    public TcpProxy(ServiceState state, IPEndPoint bind)
        : this(state, Listen(bind))
    {
    }

    /// <summary>Serves on <paramref name="listening"/>, a socket already bound and listening (a hand-over binds ahead).</summary>
    public TcpProxy(ServiceState state, Socket listening)
    {
        _state = state;
        _listener = listening;
    }

    /// <summary>A listening socket on <paramref name="bind"/> as the mesh makes them: SO_REUSEADDR only, backlog 512.</summary>
    public static Socket Listen(IPEndPoint bind)
    {
        var listener = new Socket(bind.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            if (OperatingSystem.IsLinux())
            {
                // SO_REUSEADDR alone, to bind again over TIME_WAIT after a restart. .NET's ReuseAddress also sets SO_REUSEPORT on
                // Linux, which let a second control plane bind the same stable port and share its connections (issue #14 §11).
                listener.SetRawSocketOption(SolSocket, SoReuseAddr, BitConverter.GetBytes(1));
            }
            else
            {
                listener.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            }

            listener.Bind(bind);
            listener.Listen(512);
            return listener;
        }
        catch
        {
            listener.Dispose();
            throw;
        }
    }

    /// <summary>Linux's SOL_SOCKET and SO_REUSEADDR (asm-generic/socket.h).</summary>
    private const int SolSocket = 1;

    private const int SoReuseAddr = 2;

    public EndPoint LocalEndPoint => _listener.LocalEndPoint!;

    public void Start() => _acceptLoop = AcceptLoopAsync(_stopping.Token);

    /// <summary>Stops accepting, lets open connections finish for up to <paramref name="drain"/>, then cuts the rest.</summary>
    public async Task StopAsync(TimeSpan drain, CancellationToken cancellationToken)
    {
        _listener.Close();
        if (_acceptLoop is not null)
        {
            await _acceptLoop.ConfigureAwait(false);
        }

        var all = Task.WhenAll(_connections.Values);
        try
        {
            await all.WaitAsync(drain, _state.Time, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
        }

        await _stopping.CancelAsync().ConfigureAwait(false);
        await all.ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync(TimeSpan.Zero, CancellationToken.None).ConfigureAwait(false);
        _stopping.Dispose();
    }

    private async Task AcceptLoopAsync(CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _listener.AcceptAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException or OperationCanceledException)
            {
                return;
            }

            _ = Admit(client, _stopping.Token); // tracked in _connections
        }
    }

    /// <summary>Starts serving <paramref name="client"/>, or closes it at once when the listener is at its connection limit
    /// (counted): a refused splice is a closed connection, not a queue. Null when refused.</summary>
    private Task? Admit(Socket client, CancellationToken cancellationToken)
    {
        if (_connections.Count >= _state.Snapshot.Policy.Limits.MaxConnections)
        {
            _state.Metrics.Rejections.WithLabels(_state.Service, _state.EndpointName, "max-connections").Inc();
            client.Close(0);
            return null;
        }

        var id = Interlocked.Increment(ref _next);
        return _connections[id] = HandleAsync(id, client, cancellationToken);
    }

    /// <summary>Serves a connection accepted elsewhere (a pod's outbound listener for this endpoint) exactly as one this
    /// listener accepted: same limit, balancing, retries and metrics, drained and cut by <see cref="StopAsync"/>, and cut
    /// too when <paramref name="cancellationToken"/> fires (the pod's listener closed). Takes the socket (closes it).
    /// Before this, such a connection was spliced to the stable listener: a second accept, connect and pair of pumps in
    /// this process for every connection (issue #13: three per request of the shop sample, whose api opens a db connection
    /// per command).</summary>
    public async Task ServeAsync(Socket client, CancellationToken cancellationToken)
    {
        CancellationTokenSource linked;
        try
        {
            linked = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token, cancellationToken);
        }
        catch (ObjectDisposedException)
        {
            // Stopped: as a closed listener, the connection is refused.
            client.Close(0);
            return;
        }

        using (linked)
        {
            if (_stopping.IsCancellationRequested)
            {
                client.Close(0);
                return;
            }

            if (Admit(client, linked.Token) is { } handled)
            {
                await handled.ConfigureAwait(false);
            }
        }
    }

    private async Task HandleAsync(long id, Socket client, CancellationToken cancellationToken)
    {
        await Task.Yield();
        _state.OpenConnections.Inc();
        try
        {
            using (client)
            {
                client.NoDelay = true;
                var (upstream, endpoint) = await ConnectAsync(cancellationToken).ConfigureAwait(false);
                if (upstream is null || endpoint is null)
                {
                    _state.Metrics.UpstreamConnections.WithLabels(_state.Service, _state.EndpointName, "none").Inc();
                    return;
                }

                using (upstream)
                {
                    endpoint.Series.Connections.Inc();
                    try
                    {
                        await Task.WhenAll(
                            PumpAsync(client, upstream, cancellationToken),
                            PumpAsync(upstream, client, cancellationToken)).ConfigureAwait(false);
                    }
                    finally
                    {
                        endpoint.Exit();
                    }
                }
            }
        }
        finally
        {
            _state.OpenConnections.Dec();
            _connections.TryRemove(id, out _);
        }
    }

    private async Task<(Socket? Socket, EndpointState? Endpoint)> ConnectAsync(CancellationToken cancellationToken)
    {
        var s = _state.Snapshot;
        var group = _state.Selector.SelectGroup(s, null);
        var attempts = 1 + Math.Max(0, s.Policy.Retries.Attempts);
        List<EndpointState>? tried = null;
        for (var attempt = 1; attempt <= attempts; attempt++)
        {
            var e = _state.Selector.Choose(s, group, tried, null, out var permit);
            if (e is null)
            {
                return (null, null);
            }

            e.Enter();
            if (!_state.StillRouted(s, e))
            {
                // The route table changed between the pick and the count (ServiceState.StillRouted): pick from the new one.
                e.Exit();
                e.Breaker.Release(permit);
                s = _state.Snapshot;
                group = _state.Selector.SelectGroup(s, null);
                attempt--;
                continue;
            }

            Socket? socket = null;
            using var timeout = new CancellationTokenSource(s.Policy.PerTryTimeout ?? _state.ConnectTimeout, _state.Time);
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token);
            try
            {
                // A replica in a pod is reached through a socket made inside its namespace (a pod that is gone fails here, as a refused connect).
                socket = e.Upstream.Pod is { } pod ? await PodSockets.CreateAsync(pod, AddressFamily.InterNetwork, linked.Token).ConfigureAwait(false) : new Socket(SocketType.Stream, ProtocolType.Tcp);
                socket.NoDelay = true;
                await socket.ConnectAsync(e.Upstream.Host, e.Upstream.Port, linked.Token).ConfigureAwait(false);
                e.Breaker.Report(permit, true);
                _state.ReportOutcome(s, e, AttemptOutcome.Success);
                return (socket, e);
            }
            catch (Exception ex) when (ex is SocketException || (ex is OperationCanceledException && !cancellationToken.IsCancellationRequested))
            {
                socket?.Dispose();
                e.Exit();
                e.Series.ConnectFailures.Inc();
                e.Breaker.Report(permit, false);
                _state.ReportOutcome(s, e, AttemptOutcome.GatewayError);
                Log.ConnectFailed(_state.Logger, e.ToString(), ex.Message);
                (tried ??= []).Add(e);
                if (attempt < attempts)
                {
                    _state.Metrics.Retries.WithLabels(_state.Service, _state.EndpointName, "connect-failure").Inc();
                }
            }
            catch
            {
                socket?.Dispose();
                e.Exit();
                e.Breaker.Release(permit);
                throw;
            }
        }

        return (null, null);
    }

    /// <summary>Copies one direction until end-of-stream, then half-closes; a broken side takes the other down.</summary>
    internal static async Task PumpAsync(Socket from, Socket to, CancellationToken cancellationToken)
    {
        var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(16 * 1024);
        try
        {
            while (true)
            {
                var read = await from.ReceiveAsync(buffer, SocketFlags.None, cancellationToken).ConfigureAwait(false);
                if (read == 0)
                {
                    break;
                }

                await to.SendAsync(buffer.AsMemory(0, read), SocketFlags.None, cancellationToken).ConfigureAwait(false);
            }

            // Half-close: the other side sees end-of-stream and may still answer.
            to.Shutdown(SocketShutdown.Send);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException or OperationCanceledException)
        {
            // One side went away: take the other down too so neither pump waits forever.
            try
            {
                from.Shutdown(SocketShutdown.Both);
                to.Shutdown(SocketShutdown.Both);
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
            {
            }
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
