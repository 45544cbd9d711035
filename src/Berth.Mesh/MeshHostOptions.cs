using Berth.Mesh.Observability;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Berth.Mesh;

/// <summary>Settings for a <see cref="MeshHost"/>: where its admin endpoint listens and what it is given (time, randomness, logs).</summary>
public sealed record MeshHostOptions
{
    /// <summary>Admin port serving <c>/metrics</c> (Prometheus text) and <c>/routes</c>; 0 picks a free one (see <see cref="MeshHost.AdminAddress"/>).</summary>
    public int AdminPort { get; init; }

    /// <summary>The admin endpoint binds loopback only, as the control-plane API.</summary>
    public string AdminHost { get; init; } = "127.0.0.1";

    /// <summary>How long a removed listener lets in-flight requests and open TCP connections finish: 30s, as Kubernetes' terminationGracePeriodSeconds.</summary>
    public TimeSpan DrainTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>How often host-gateway pods' mirrors of the host's loopback listeners are re-read: 2 s (pasta's <c>-T auto</c>
    /// re-scans each second; each read walks the kernel's TCP tables, ~15 ms on the loaded machine, so half as often).</summary>
    public TimeSpan HostPortsPeriod { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// Connect timeout to upstreams, which also bounds how long a request waits for a Ready upstream when a service has
    /// none (then 503 <c>no-upstream</c>): 5s, as Envoy's connect_timeout.
    /// </summary>
    public TimeSpan ConnectTimeout { get; init; } = Http.HttpProxy.ConnectTimeout;

    /// <summary>Told of every finished HTTP request (for traces); null: none. Called on the request path: keep it quick.</summary>
    public IMeshRequestObserver? RequestObserver { get; init; }

    /// <summary>A socket already bound and listening on a route's address and port, to serve instead of binding one: a data
    /// plane taking the listeners over from another binds each port the moment it is free, and connections wait in that
    /// socket's backlog while the listener starts. Null, or null for a route: bind as usual.</summary>
    public Func<Berth.Core.Routing.ServiceRoute, System.Net.Sockets.Socket?>? BoundListener { get; init; }

    /// <summary>The same for a pod's outbound (and host-gateway) listeners: (pod, address, port) → a socket already
    /// listening there inside the pod, passed by the previous data plane in an upgrade. Null, or null for one: make one.</summary>
    public Func<Berth.Core.Routing.PodNetwork, string, int, System.Net.Sockets.Socket?>? BoundPodListener { get; init; }

    /// <summary>
    /// Plain HTTP/1.1 listeners serve requests with the mesh's own HTTP/1.1 server (Kestrel keeps every request it does not
    /// own, and h2c/gRPC listeners); false: Kestrel parses every request, as before (kept for comparison in bench/mesh).
    /// </summary>
    public bool OwnHttp1 { get; init; } = true;

    /// <summary>
    /// Kestrel's socket transport schedules its pipes inline (<c>UnsafePreferInlineScheduling</c>): the thread that completes
    /// a client read runs the request until it waits for the upstream, and a flush sends on the writing thread. Default
    /// Kestrel scheduling queues three more work items per proxied request (the read re-queued to Kestrel's IO queue, the
    /// application's read continuation to the thread pool, every flush to the IO queue), each a wake of a parked thread on
    /// a quiet machine. Safe without inline socket completions: the socket engine already hands every completion to a
    /// thread-pool thread, so inline code runs there, never on the epoll thread (with <see cref="DataPlane.DataPlaneRuntime.InlineCompletions"/>
    /// it would, and nothing on the request path may block). False: Kestrel's default.
    /// </summary>
    public bool InlineScheduling { get; init; } = true;

    /// <summary>
    /// Plain HTTP/1.1 listeners (with <see cref="OwnHttp1"/>) run on the mesh's own event loops (<see cref="Transport.LoopTransportFactory"/>:
    /// one epoll thread per core, each owning its connections and the upstream connections their requests use, nginx's
    /// design) instead of Kestrel's socket transport and .NET's socket engine: 17 against 26 µs of CPU per proxied request
    /// in bench/mesh (docs/benchmarks.md, "Mesh round 10"). Default on (Linux); <see cref="EventLoopsVariable"/>=0 turns it
    /// off, for the data plane too.
    /// </summary>
    public bool EventLoops { get; init; } = OperatingSystem.IsLinux() && Environment.GetEnvironmentVariable(EventLoopsVariable) != "0";

    /// <summary>The environment variable that turns <see cref="EventLoops"/> off when 0.</summary>
    public const string EventLoopsVariable = "BERTH_MESH_EVENT_LOOPS";

    /// <summary>How long a new connection may take to send a complete request head: 30s, as Kestrel's RequestHeadersTimeout.</summary>
    public TimeSpan RequestHeadersTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>How long an idle keep-alive client connection is kept: 130s, as Kestrel's KeepAliveTimeout.</summary>
    public TimeSpan KeepAliveTimeout { get; init; } = TimeSpan.FromSeconds(130);

    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>Randomness for balancing, splits and jitter; must be thread-safe when the host serves traffic (<see cref="System.Random.Shared"/>).</summary>
    public Random Random { get; init; } = Random.Shared;

    public ILoggerFactory LoggerFactory { get; init; } = NullLoggerFactory.Instance;
}
