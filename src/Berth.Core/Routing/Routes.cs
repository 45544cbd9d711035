using System.Collections.Immutable;
using Berth.Core.Model;

namespace Berth.Core.Routing;

/// <summary>One Ready replica behind a service endpoint: where the mesh sends traffic.</summary>
public sealed record Upstream(string ReplicaId, string Host, int Port, long Revision)
{
    /// <summary>Replica labels (e.g. <c>version=v2</c>) that traffic-split routes can match.</summary>
    public ImmutableSortedDictionary<string, string> Labels { get; init; } = ImmutableSortedDictionary<string, string>.Empty;

    /// <summary>The replica's pod (its own network namespace): the mesh reaches <see cref="Host"/>:<see cref="Port"/> on the
    /// pod's loopback through a socket made inside it. Null: the replica shares the host network.</summary>
    public PodNetwork? Pod { get; init; }
}

/// <summary>
/// A replica's own network namespace (a pod, holding only loopback) and how the data plane makes sockets in it: as root
/// by <c>setns</c> into <see cref="NamespacePath"/> on a dedicated thread; without root, where a multithreaded process
/// cannot enter the pod's user namespace, by asking the pod's helper at <see cref="SocketHelper"/> (a Unix socket; the
/// helper answers each request with a socket made inside the pod, passed with SCM_RIGHTS). A socket keeps the namespace
/// it was made in.
/// </summary>
/// <param name="PodId">The replica id; one pod per replica.</param>
/// <param name="NamespacePath">The namespace file, e.g. <c>/proc/PID/ns/net</c> of a process that lives as long as the pod.</param>
public sealed record PodNetwork(string PodId, string NamespacePath)
{
    /// <summary>The namespace's inode (<c>net:[N]</c>); the data plane checks it on open so a reused pid is never taken for the pod. 0: not checked.</summary>
    public ulong NamespaceInode { get; init; }

    /// <summary>The pod's socket helper (rootless pods); null: enter with setns.</summary>
    public string? SocketHelper { get; init; }
}

/// <summary>Addresses pods use, each named after what it follows.</summary>
public static class PodDefaults
{
    /// <summary>Where a replica in a pod listens and the mesh reaches it: the pod's own loopback.</summary>
    public const string Loopback = "127.0.0.1";

    /// <summary>Services' virtual addresses are taken from 127.77.0.0/16 (loopback, so no address needs setting up in a pod;
    /// 127.77 keeps clear of 127.0.0.x, which tools and distributions use for themselves, e.g. Debian's 127.0.1.1).</summary>
    public const string VirtualNetworkPrefix = "127.77.";

    /// <summary>Where Compose's <c>extra_hosts: NAME:host-gateway</c> (<c>host.docker.internal</c>) points in a pod: a
    /// loopback address outside the services' range, on which the data plane mirrors the host's loopback listeners.</summary>
    public const string HostGatewayAddress = "127.78.0.1";

    /// <summary>The value of an <c>extra_hosts</c> entry that means "the host" (Docker's special name).</summary>
    public const string HostGateway = "host-gateway";
}

/// <summary>One listener the mesh keeps inside a pod for the pod's outbound calls: the callee service's virtual address
/// and one of its ports (<c>http://api:8080/</c> from the pod lands here), forwarded to that service endpoint's route.</summary>
/// <param name="Service">The callee service.</param>
/// <param name="Endpoint">The callee's endpoint name (the route whose policy applies).</param>
/// <param name="Address">The callee's virtual address (stable per service, in 127.77.0.0/16).</param>
/// <param name="Port">The port callers use: the endpoint's target port (Compose's container port), else its stable port.</param>
public sealed record OutboundListener(string Service, string Endpoint, string Address, int Port)
{
    /// <summary>Set: connections go to this host address (<c>ip:port</c>, the host's loopback) instead of a service's route —
    /// a host-gateway listener.</summary>
    public string? ForwardTo { get; init; }
}

/// <summary>What the mesh keeps inside one pod: its outbound listeners. Replaced whole on every update.</summary>
public sealed record PodRoute(PodNetwork Pod, ImmutableArray<OutboundListener> Listeners)
{
    /// <summary>The pod asked for the host (<c>extra_hosts: …:host-gateway</c>): the data plane keeps, at
    /// <see cref="PodDefaults.HostGatewayAddress"/> in the pod, a listener on every TCP port listening on the host's
    /// loopback (127.0.0.1, ::1 or any address), forwarded there, re-read every few seconds — as pasta's <c>-T auto</c>.</summary>
    public bool HostGateway { get; init; }
}

/// <summary>Where the orchestrator publishes pods and their outbound listeners; the mesh implements it beside <see cref="IRouteSink"/>.</summary>
public interface IPodRouteSink
{
    /// <summary>Opens (or replaces) the outbound listeners inside <paramref name="pod"/>'s namespace.</summary>
    Task UpdatePodAsync(PodRoute pod, CancellationToken cancellationToken);

    /// <summary>Closes a pod's outbound listeners (the pod is gone or going).</summary>
    Task RemovePodAsync(string podId, CancellationToken cancellationToken);
}

/// <summary>The routing table entry for one endpoint of one service: its stable listener, its policy and its Ready upstreams.</summary>
public sealed record ServiceRoute(string Service, Endpoint Endpoint, MeshPolicy Policy, ImmutableArray<Upstream> Upstreams)
{
    /// <summary>The stable port callers use (the mesh listener's port).</summary>
    public int StablePort => Endpoint.Port ?? throw new InvalidOperationException($"endpoint {Service}.{Endpoint.Name} has no stable port assigned");

    /// <summary>The service's readiness probe (HTTP or TCP), which the mesh also runs itself against each upstream between
    /// the orchestrator's updates (as Envoy's active health checks); null: passive health only.</summary>
    public Probe? Readiness { get; init; }
}

/// <summary>Where the orchestrator publishes Ready endpoints; the mesh implements it. Updates must not drop in-flight requests.</summary>
public interface IRouteSink
{
    /// <summary>Adds or replaces the route for <paramref name="route"/>'s service endpoint (listener opened on first sight).</summary>
    Task UpdateAsync(ServiceRoute route, CancellationToken cancellationToken);

    /// <summary>Removes a service endpoint's route and closes its listener after in-flight requests finish.</summary>
    Task RemoveAsync(string service, string endpoint, CancellationToken cancellationToken);
}

/// <summary>
/// The data plane's count of requests in flight per replica, which the control plane reads while draining: a replica
/// that left the routes is stopped once its count is 0 or its stop grace period has passed.
/// </summary>
public interface IInFlightSource
{
    /// <summary>Requests (HTTP) or connections (TCP) of <paramref name="service"/> still in flight to <paramref name="replica"/>.</summary>
    int InFlight(string service, string replica);
}
