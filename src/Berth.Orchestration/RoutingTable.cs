using System.Collections.Concurrent;
using Berth.Core.Routing;

namespace Berth.Orchestration;

/// <summary>Keeps the routing table the control plane published (for the API and the CLI) and forwards every change to
/// the mesh when one is attached.</summary>
public sealed class RoutingTable(IRouteSink? next = null) : IRouteSink
{
    private readonly ConcurrentDictionary<(string Service, string Endpoint), ServiceRoute> _routes = new();

    public IReadOnlyCollection<ServiceRoute> Routes => [.. _routes.Values.OrderBy(r => r.Service, StringComparer.Ordinal).ThenBy(r => r.Endpoint.Name, StringComparer.Ordinal)];

    public async Task UpdateAsync(ServiceRoute route, CancellationToken cancellationToken)
    {
        if (next is not null)
        {
            await next.UpdateAsync(route, cancellationToken);
        }

        _routes[(route.Service, route.Endpoint.Name)] = route;
    }

    public async Task RemoveAsync(string service, string endpoint, CancellationToken cancellationToken)
    {
        if (next is not null)
        {
            await next.RemoveAsync(service, endpoint, cancellationToken);
        }

        _routes.TryRemove((service, endpoint), out _);
    }
}
