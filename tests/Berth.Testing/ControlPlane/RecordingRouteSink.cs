using System.Collections.Concurrent;
using Berth.Core.Routing;

namespace Berth.Testing.ControlPlanes;

/// <summary>Keeps the latest route per endpoint and the order of updates, shared with a driver's call log.</summary>
public sealed class RecordingRouteSink(ConcurrentQueue<string>? log = null) : IRouteSink
{
    public ConcurrentDictionary<(string, string), ServiceRoute> Routes { get; } = new();

    public Task UpdateAsync(ServiceRoute route, CancellationToken cancellationToken)
    {
        Routes[(route.Service, route.Endpoint.Name)] = route;
        log?.Enqueue($"route {route.Service}.{route.Endpoint.Name}: {string.Join(",", route.Upstreams.Select(u => u.ReplicaId))}");
        return Task.CompletedTask;
    }

    public Task RemoveAsync(string service, string endpoint, CancellationToken cancellationToken)
    {
        Routes.TryRemove((service, endpoint), out _);
        return Task.CompletedTask;
    }

    public IReadOnlyList<string> Upstreams(string service, string endpoint = "http") =>
        Routes.TryGetValue((service, endpoint), out var r) ? [.. r.Upstreams.Select(u => u.ReplicaId)] : [];
}
