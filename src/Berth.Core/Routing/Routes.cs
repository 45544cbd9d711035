using System.Collections.Immutable;
using Berth.Core.Model;

namespace Berth.Core.Routing;

/// <summary>One Ready replica behind a service endpoint: where the mesh sends traffic.</summary>
public sealed record Upstream(string ReplicaId, string Host, int Port, long Revision)
{
    /// <summary>Replica labels (e.g. <c>version=v2</c>) that traffic-split routes can match.</summary>
    public ImmutableSortedDictionary<string, string> Labels { get; init; } = ImmutableSortedDictionary<string, string>.Empty;
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
