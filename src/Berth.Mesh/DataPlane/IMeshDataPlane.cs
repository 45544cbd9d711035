using Berth.Core.Routing;

namespace Berth.Mesh.DataPlane;

/// <summary>
/// What the control plane needs from a data plane, wherever it runs: routes in (<see cref="IRouteSink"/>), in-flight
/// counts out for draining (<see cref="IInFlightSource"/>), per-upstream health and breaker state for the API and the
/// dashboard, and the address of its Prometheus <c>/metrics</c>. <see cref="MeshHost"/> is the in-process one (tests,
/// the harness); <see cref="DataPlaneClient"/> talks to the data plane process <c>berth up</c> runs.
/// </summary>
public interface IMeshDataPlane : IRouteSink, IInFlightSource
{
    /// <summary>The admin endpoint (<c>http://127.0.0.1:port</c>, serving <c>/metrics</c> and <c>/routes</c>); null until known.</summary>
    Uri? AdminAddress { get; }

    /// <summary>The routes as the data plane sees them: per listener, each upstream with its health, ejection and load.</summary>
    Task<IReadOnlyList<RouteStatus>> RoutesAsync(CancellationToken cancellationToken);
}

/// <summary>Requests in flight on one replica of one service (HTTP requests, or TCP connections).</summary>
public sealed record InFlightCount(string Service, string Replica, int Count);
