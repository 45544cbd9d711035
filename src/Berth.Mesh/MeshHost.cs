using System.Collections.Immutable;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Berth.Core.Model;
using Berth.Core.Routing;
using Berth.Mesh.DataPlane;
using Berth.Mesh.Http;
using Berth.Mesh.Observability;
using Berth.Mesh.Pods;
using Berth.Mesh.Routing;
using Berth.Mesh.Tcp;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Berth.Mesh;

/// <summary>
/// The mesh data plane: one listener per service endpoint on its stable port (Kestrel for HTTP, a socket splice for
/// TCP), fed Ready upstreams through <see cref="IRouteSink"/>, plus an admin endpoint with Prometheus <c>/metrics</c>.
/// </summary>
public sealed class MeshHost : IMeshDataPlane, IPodRouteSink, IAsyncDisposable
{
    private readonly MeshHostOptions _options;
    private readonly ILogger _logger;
    private readonly MeshMetrics _metrics = new();
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly Dictionary<(string Service, string Endpoint), Listener> _listeners = [];
    private volatile Listener[] _listenerList = [];
    private readonly SemaphoreSlim _podGate = new(1, 1);
    private readonly Dictionary<string, PodListeners> _pods = [];
    private ITimer? _hostMirror;
    private WebApplication? _admin;

    public MeshHost(MeshHostOptions? options = null)
    {
        _options = options ?? new MeshHostOptions();
        _logger = _options.LoggerFactory.CreateLogger("Berth.Mesh");
    }

    /// <summary>The admin endpoint (<c>http://127.0.0.1:port</c>) once started.</summary>
    public Uri? AdminAddress { get; private set; }

    /// <summary>Starts the admin endpoint. Listeners start as routes arrive.</summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var app = NewApp(KestrelFor(_options.AdminHost, _options.AdminPort, null), TimeSpan.FromSeconds(1));
        app.Run(async context =>
        {
            switch (context.Request.Path.Value)
            {
                case "/metrics":
                    context.Response.ContentType = "text/plain; version=0.0.4; charset=utf-8";
                    await _metrics.WriteAsync(context.Response.Body, context.RequestAborted);
                    break;
                case "/routes":
                    context.Response.ContentType = "application/json";
                    await JsonSerializer.SerializeAsync(context.Response.Body, await RoutesAsync(context.RequestAborted), cancellationToken: context.RequestAborted);
                    break;
                default:
                    context.Response.StatusCode = StatusCodes.Status404NotFound;
                    break;
            }
        });
        await StartAppAsync(app, $"admin endpoint on {_options.AdminHost}:{_options.AdminPort}", cancellationToken);
        _admin = app;
        AdminAddress = new Uri(app.Services.GetRequiredService<Microsoft.AspNetCore.Hosting.Server.IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
    }

    /// <inheritdoc />
    public async Task UpdateAsync(ServiceRoute route, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(route);
        var key = (route.Service, route.Endpoint.Name);
        await _gate.WaitAsync(cancellationToken);
        try
        {
            if (_listeners.TryGetValue(key, out var existing))
            {
                if (existing.Protocol != route.Endpoint.Protocol || existing.Port != route.StablePort || existing.HostIp != route.Endpoint.HostIp)
                {
                    // A different socket: the old listener drains in the background while the new one opens.
                    _listeners.Remove(key);
                    _listenerList = [.. _listeners.Values];
                    _ = existing.StopAsync(_options.DrainTimeout, CancellationToken.None);
                }
                else
                {
                    existing.State.Update(route);
                    return;
                }
            }

            var state = new ServiceState(route, _metrics, _options.TimeProvider, _options.Random, _logger, _options.ConnectTimeout, _options.RequestObserver);
            var listener = route.Endpoint.Protocol == EndpointProtocol.Tcp
                ? StartTcp(route, state)
                : await StartHttpAsync(route, state, cancellationToken);
            _listeners[key] = listener;
            _listenerList = [.. _listeners.Values];
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <inheritdoc />
    public async Task RemoveAsync(string service, string endpoint, CancellationToken cancellationToken)
    {
        Listener? listener;
        await _gate.WaitAsync(cancellationToken);
        try
        {
            if (!_listeners.Remove((service, endpoint), out listener))
            {
                return;
            }

            _listenerList = [.. _listeners.Values];
        }
        finally
        {
            _gate.Release();
        }

        await listener.StopAsync(_options.DrainTimeout, cancellationToken);
    }

    /// <inheritdoc />
    public async Task UpdatePodAsync(PodRoute pod, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(pod);
        await _podGate.WaitAsync(cancellationToken);
        try
        {
            if (!_pods.TryGetValue(pod.Pod.PodId, out var listeners))
            {
                listeners = new PodListeners(pod.Pod, StableAddress, _logger, _options.BoundPodListener, ServeInPlace);
                _pods[pod.Pod.PodId] = listeners;
            }

            await listeners.UpdateAsync(pod, pod.HostGateway ? HostPorts.Listening() : ImmutableSortedDictionary<int, string>.Empty, cancellationToken);
            if (pod.HostGateway)
            {
                _hostMirror ??= _options.TimeProvider.CreateTimer(_ => _ = MirrorHostPortsAsync(), null, _options.HostPortsPeriod, _options.HostPortsPeriod);
            }
        }
        finally
        {
            _podGate.Release();
        }
    }

    /// <summary>Every listening socket this mesh holds inside pods (outbound and host-gateway listeners), by pod, address
    /// and port: what an upgrade passes to the next data plane.</summary>
    internal async Task<IReadOnlyList<(string PodId, string Address, int Port, System.Net.Sockets.Socket Socket)>> PodListeningSocketsAsync(CancellationToken cancellationToken)
    {
        await _podGate.WaitAsync(cancellationToken);
        try
        {
            return [.. _pods.SelectMany(p => p.Value.Sockets.Select(s => (p.Key, s.Address, s.Port, s.Socket)))];
        }
        finally
        {
            _podGate.Release();
        }
    }

    /// <inheritdoc />
    public async Task RemovePodAsync(string podId, CancellationToken cancellationToken)
    {
        PodListeners? listeners;
        await _podGate.WaitAsync(cancellationToken);
        try
        {
            _pods.Remove(podId, out listeners);
        }
        finally
        {
            _podGate.Release();
        }

        if (listeners is not null)
        {
            await listeners.DisposeAsync();
        }
    }

    /// <summary>Re-reads the host's loopback listeners and brings every host-gateway pod's mirrors up to date (ports opened
    /// or closed on the host since), as pasta's <c>-T auto</c> re-scans.</summary>
    private async Task MirrorHostPortsAsync()
    {
        if (!await _podGate.WaitAsync(0))
        {
            return;
        }

        try
        {
            var gateways = _pods.Values.Where(p => p.Route?.HostGateway == true).ToList();
            var ports = gateways.Count == 0 ? ImmutableSortedDictionary<int, string>.Empty : HostPorts.Listening();
            foreach (var pod in gateways)
            {
                await pod.UpdateAsync(pod.Route!, ports, CancellationToken.None);
            }
        }
        catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or ObjectDisposedException)
        {
            Log.HostMirrorFailed(_logger, e.Message);
        }
        finally
        {
            _podGate.Release();
        }
    }

    /// <summary>The outbound listeners open in each pod now (pod id → listeners).</summary>
    public async Task<IReadOnlyDictionary<string, IReadOnlyCollection<OutboundListener>>> PodListenersAsync(CancellationToken cancellationToken)
    {
        await _podGate.WaitAsync(cancellationToken);
        try
        {
            return _pods.ToDictionary(p => p.Key, p => p.Value.Open);
        }
        finally
        {
            _podGate.Release();
        }
    }

    /// <summary>A pod's outbound connection for a TCP endpoint, served by that endpoint's own proxy in place (no second hop
    /// through its stable listener). Null: not a TCP endpoint (or none now); the caller splices to the stable listener.</summary>
    private Func<CancellationToken, Task>? ServeInPlace(string service, string endpoint, Socket client)
    {
        foreach (var l in _listenerList)
        {
            if (l.State.Service == service && l.State.EndpointName == endpoint && l.ServeTcp is { } serve)
            {
                return ct => serve(client, ct);
            }
        }

        return null;
    }

    /// <summary>Where a pod's outbound connection for (service, endpoint) goes: that endpoint's stable listener on the host.</summary>
    private IPEndPoint? StableAddress(string service, string endpoint)
    {
        foreach (var l in _listenerList)
        {
            if (l.State.Service == service && l.State.EndpointName == endpoint)
            {
                var ip = IPAddress.Parse(l.HostIp);
                return new IPEndPoint(ip.Equals(IPAddress.Any) ? IPAddress.Loopback : ip.Equals(IPAddress.IPv6Any) ? IPAddress.IPv6Loopback : ip, l.Port);
            }
        }

        return null;
    }

    /// <inheritdoc />
    public int InFlight(string service, string replica)
    {
        var total = 0;
        foreach (var l in _listenerList)
        {
            if (l.State.Service == service)
            {
                total += l.State.InFlight(replica);
            }
        }

        return total;
    }

    /// <summary>Every replica with a request (or TCP connection) in flight, for a data plane that reports counts rather than being asked.</summary>
    public IReadOnlyList<InFlightCount> InFlightCounts()
    {
        var counts = new Dictionary<(string Service, string Replica), int>();
        foreach (var l in _listenerList)
        {
            l.State.AddInFlight(counts);
        }

        return [.. counts.Select(kv => new InFlightCount(kv.Key.Service, kv.Key.Replica, kv.Value))];
    }

    /// <inheritdoc />
    public async Task<IReadOnlyList<RouteStatus>> RoutesAsync(CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken);
        try
        {
            return _listeners.Values.Select(l =>
            {
                var s = l.State.Snapshot;
                return new RouteStatus(l.State.Service, l.State.EndpointName, l.Protocol.ToString().ToLowerInvariant(), l.Port,
                    s.ServiceBreaker.State.ToString(),
                    s.All.Select(e => new UpstreamStatus(e.Upstream.ReplicaId, e.Key, e.Upstream.Revision,
                        s.Outliers.IsEjected(e.Outlier, out _), e.Health.Passing, e.Breaker.State.ToString(), e.Active)).ToArray());
            }).ToArray();
        }
        finally
        {
            _gate.Release();
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_hostMirror is not null)
        {
            await _hostMirror.DisposeAsync();
        }

        List<Listener> all;
        await _gate.WaitAsync();
        try
        {
            all = [.. _listeners.Values];
            _listeners.Clear();
            _listenerList = [];
        }
        finally
        {
            _gate.Release();
        }

        List<PodListeners> pods;
        await _podGate.WaitAsync();
        try
        {
            pods = [.. _pods.Values];
            _pods.Clear();
        }
        finally
        {
            _podGate.Release();
        }

        foreach (var pod in pods)
        {
            await pod.DisposeAsync();
        }

        await Task.WhenAll(all.Select(l => l.StopAsync(TimeSpan.FromSeconds(1), CancellationToken.None)));
        if (_admin is not null)
        {
            await _admin.StopAsync();
            await _admin.DisposeAsync();
        }

        _gate.Dispose();
        _podGate.Dispose();
    }

    private Listener StartTcp(ServiceRoute route, ServiceState state)
    {
        TcpProxy proxy;
        try
        {
            proxy = _options.BoundListener?.Invoke(route) is { } bound
                ? new TcpProxy(state, bound)
                : new TcpProxy(state, new IPEndPoint(ParseIp(route), route.StablePort));
        }
        catch (SocketException e)
        {
            throw ListenFailed(route, e.Message);
        }

        proxy.Start();
        Log.ListenerStarted(_logger, route.Service, route.Endpoint.Name, "tcp", proxy.LocalEndPoint.ToString() ?? "");
        return new Listener(state, route.Endpoint.Protocol, route.StablePort, route.Endpoint.HostIp, async (drain, ct) =>
        {
            await proxy.StopAsync(drain, ct);
            Log.ListenerStopped(_logger, route.Service, route.Endpoint.Name);
        }) { ServeTcp = proxy.ServeAsync };
    }

    private async Task<Listener> StartHttpAsync(ServiceRoute route, ServiceState state, CancellationToken cancellationToken)
    {
        var proxy = new HttpProxy(state);
        var server = _options.OwnHttp1 && !route.Endpoint.Protocol.IsHttp2() ? new Http1Server(proxy, state, _options.RequestHeadersTimeout, _options.KeepAliveTimeout) : null;
        var app = NewApp(KestrelFor(route.Endpoint.HostIp, route.StablePort, state, route.Policy.Limits.MaxConnections, route.Endpoint.Protocol.IsHttp2(),
            _options.BoundListener?.Invoke(route), server), _options.DrainTimeout, loops: server is not null && _options.EventLoops);
        app.Run(proxy.InvokeAsync);
        try
        {
            await StartAppAsync(app, $"service {route.Service}, endpoint {route.Endpoint.Name}", cancellationToken);
        }
        catch
        {
            server?.Dispose();
            proxy.Dispose();
            throw;
        }

        Log.ListenerStarted(_logger, route.Service, route.Endpoint.Name, "http", $"{route.Endpoint.HostIp}:{route.StablePort}");
        return new Listener(state, route.Endpoint.Protocol, route.StablePort, route.Endpoint.HostIp, async (drain, ct) =>
        {
            using var timeout = new CancellationTokenSource(drain, _options.TimeProvider);
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, timeout.Token);
            await app.StopAsync(linked.Token);
            await app.DisposeAsync();
            server?.Dispose();
            proxy.Dispose();
            Log.ListenerStopped(_logger, route.Service, route.Endpoint.Name);
        });
    }

    private static async Task StartAppAsync(WebApplication app, string what, CancellationToken cancellationToken)
    {
        try
        {
            await app.StartAsync(cancellationToken);
        }
        catch (IOException e)
        {
            await app.DisposeAsync();
            throw new MeshListenerException($"mesh: cannot listen for {what}: {e.Message}. Free the port or choose another one in the spec.", e);
        }
    }

    private static MeshListenerException ListenFailed(ServiceRoute route, string reason) =>
        new($"mesh: cannot listen for service {route.Service}, endpoint {route.Endpoint.Name} on {route.Endpoint.HostIp}:{route.StablePort}: {reason}. Free the port or choose another one in the spec.");

    private static IPAddress ParseIp(ServiceRoute route) =>
        IPAddress.TryParse(route.Endpoint.HostIp, out var ip) ? ip
        : throw new MeshListenerException($"mesh: service {route.Service}, endpoint {route.Endpoint.Name} has host IP '{route.Endpoint.HostIp}', which is not an IP address; write 127.0.0.1 or another local address");

    private Action<WebHostBuilderContext, Microsoft.AspNetCore.Server.Kestrel.Core.KestrelServerOptions> KestrelFor(string host, int port, ServiceState? state,
        int? maxConnections = null, bool http2Only = false, Socket? bound = null, Http1Server? server = null) =>
        (_, kestrel) =>
        {
            kestrel.AddServerHeader = false;
            kestrel.Limits.RequestHeadersTimeout = _options.RequestHeadersTimeout;
            kestrel.Limits.KeepAliveTimeout = _options.KeepAliveTimeout;
            if (maxConnections is { } max)
            {
                kestrel.Limits.MaxConcurrentConnections = max;
            }

            if (!IPAddress.TryParse(host, out var ip))
            {
                throw new MeshListenerException($"mesh: host IP '{host}' is not an IP address; write 127.0.0.1 or another local address");
            }

            if (bound is not null)
            {
                // Kestrel takes the descriptor over (and closes it when the listener stops); the Socket object must not close it too.
                var fd = (ulong)bound.SafeHandle.DangerousGetHandle();
                bound.SafeHandle.SetHandleAsInvalid();
                kestrel.ListenHandle(fd, Configure);
            }
            else
            {
                kestrel.Listen(ip, port, Configure);
            }

            void Configure(Microsoft.AspNetCore.Server.Kestrel.Core.ListenOptions listen)
            {
                if (http2Only)
                {
                    // h2c / gRPC: HTTP/2 with prior knowledge (no TLS, so no ALPN to pick it).
                    listen.Protocols = Microsoft.AspNetCore.Server.Kestrel.Core.HttpProtocols.Http2;
                }

                if (state is not null)
                {
                    listen.Use(next => async connection =>
                    {
                        state.OpenConnections.Inc();
                        try
                        {
                            await next(connection);
                        }
                        finally
                        {
                            state.OpenConnections.Dec();
                        }
                    });
                }

                if (server is not null)
                {
                    listen.Use(server.Middleware);
                }
            }
        };

    private WebApplication NewApp(Action<WebHostBuilderContext, Microsoft.AspNetCore.Server.Kestrel.Core.KestrelServerOptions> kestrel, TimeSpan shutdown, bool loops = false)
    {
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.WebHost.UseKestrelCore().ConfigureKestrel(kestrel);
        if (loops)
        {
            // Registered after the socket transport, so Kestrel asks it first (the last registered factory that can bind wins).
            builder.Services.AddSingleton<Microsoft.AspNetCore.Connections.IConnectionListenerFactory, Transport.LoopTransportFactory>();
        }

        builder.Services.Configure<Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets.SocketTransportOptions>(o =>
        {
            o.UnsafePreferInlineScheduling = _options.InlineScheduling;
            // A mesh listener's connections are busy: a zero-byte read before each receive is one more syscall per request.
            o.WaitForDataBeforeAllocatingBuffer = false;
        });
        builder.Services.AddSingleton(_options.LoggerFactory);
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = shutdown);
        return builder.Build();
    }

    private sealed record Listener(ServiceState State, EndpointProtocol Protocol, int Port, string HostIp, Func<TimeSpan, CancellationToken, Task> Stop)
    {
        /// <summary>A TCP listener's proxy, serving a connection a pod's outbound listener accepted (null: HTTP).</summary>
        public Func<Socket, CancellationToken, Task>? ServeTcp { get; init; }

        public async Task StopAsync(TimeSpan drain, CancellationToken cancellationToken)
        {
            await State.StopChecksAsync();
            await Stop(drain, cancellationToken);
        }
    }
}

/// <summary>A listener could not open its socket (port taken, bad address); the message says which and what to do.</summary>
public sealed class MeshListenerException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>A listener's state for <c>/routes</c> and the API.</summary>
public sealed record RouteStatus(string Service, string Endpoint, string Protocol, int Port, string Circuit, IReadOnlyList<UpstreamStatus> Upstreams);

/// <summary>One upstream's state for <c>/routes</c>.</summary>
public sealed record UpstreamStatus(string Replica, string Address, long Revision, bool Ejected, bool Healthy, string Circuit, int Active);
