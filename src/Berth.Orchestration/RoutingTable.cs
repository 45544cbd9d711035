using System.Collections.Concurrent;
using Berth.Core.Routing;

namespace Berth.Orchestration;

/// <summary>Keeps the routing table the control plane published (for the API and the CLI) and forwards every change to
/// the mesh when one is attached; in-flight counts come from the mesh too (0 without one).</summary>
public sealed class RoutingTable(IRouteSink? next = null) : IRouteSink, IPodRouteSink, IInFlightSource
{
    private readonly ConcurrentDictionary<(string Service, string Endpoint), ServiceRoute> _routes = new();
    private readonly ConcurrentDictionary<string, PodRoute> _pods = new(StringComparer.Ordinal);

    /// <summary>Every pod's outbound listeners as published.</summary>
    public IReadOnlyCollection<PodRoute> Pods => [.. _pods.Values.OrderBy(p => p.Pod.PodId, StringComparer.Ordinal)];

    /// <inheritdoc />
    public async Task UpdatePodAsync(PodRoute pod, CancellationToken cancellationToken)
    {
        if (next is IPodRouteSink pods)
        {
            await pods.UpdatePodAsync(pod, cancellationToken);
        }

        _pods[pod.Pod.PodId] = pod;
    }

    /// <inheritdoc />
    public async Task RemovePodAsync(string podId, CancellationToken cancellationToken)
    {
        if (next is IPodRouteSink pods)
        {
            await pods.RemovePodAsync(podId, cancellationToken);
        }

        _pods.TryRemove(podId, out _);
    }

    public IReadOnlyCollection<ServiceRoute> Routes => [.. _routes.Values.OrderBy(r => r.Service, StringComparer.Ordinal).ThenBy(r => r.Endpoint.Name, StringComparer.Ordinal)];

    public async Task UpdateAsync(ServiceRoute route, CancellationToken cancellationToken)
    {
        if (next is not null)
        {
            await next.UpdateAsync(route, cancellationToken);
        }

        _routes[(route.Service, route.Endpoint.Name)] = route;
    }

    /// <inheritdoc />
    public int InFlight(string service, string replica) => next is IInFlightSource source ? source.InFlight(service, replica) : 0;

    public async Task RemoveAsync(string service, string endpoint, CancellationToken cancellationToken)
    {
        if (next is not null)
        {
            await next.RemoveAsync(service, endpoint, cancellationToken);
        }

        _routes.TryRemove((service, endpoint), out _);
    }
}
