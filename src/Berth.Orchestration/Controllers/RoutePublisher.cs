using System.Collections.Immutable;
using Berth.Core.Model;
using Berth.Core.Routing;
using Berth.Orchestration.State;
using Microsoft.Extensions.Logging;

namespace Berth.Orchestration.Controllers;

/// <summary>Sends each service endpoint's Ready upstreams to the route sink (the mesh), only when they changed, and
/// removes endpoints that left the app. Called under the lock after every change that can move a replica in or out of
/// Ready, and always before a driver is asked to stop a replica, so traffic moves before the process goes.</summary>
internal sealed class RoutePublisher(IRouteSink sink, StablePortRegistry stablePorts, string host, ILogger logger)
{
    private readonly Dictionary<(string Service, string Endpoint), ImmutableArray<Upstream>> _published = [];

    /// <summary>The data plane's in-flight counts, when the sink (the mesh) reports them.</summary>
    public IInFlightSource? InFlight => sink as IInFlightSource;

    /// <summary>The Ready replicas of one endpoint, in a stable order. Pure.</summary>
    public static ImmutableArray<Upstream> UpstreamsFor(string service, string endpoint, IEnumerable<ReplicaRecord> replicas, string host) =>
        [.. replicas
            .Where(r => r.Service == service && r.Phase == ReplicaPhase.Ready && r.Ports.ContainsKey(endpoint))
            .OrderBy(r => r.Id, StringComparer.Ordinal)
            .Select(r => new Upstream(r.Id, host, r.Ports[endpoint], r.Revision))];

    public async Task PublishAsync(Application? app, IReadOnlyCollection<ReplicaRecord> replicas, CancellationToken ct)
    {
        if (app is null)
        {
            return;
        }

        foreach (var s in app.Services)
        {
            foreach (var e in s.Endpoints)
            {
                var key = (s.Name, e.Name);
                var upstreams = UpstreamsFor(s.Name, e.Name, replicas, host);
                if (_published.TryGetValue(key, out var old) && old.SequenceEqual(upstreams))
                {
                    continue;
                }

                try
                {
                    await sink.UpdateAsync(new ServiceRoute(s.Name, e with { Port = stablePorts.Ports[key] }, s.Mesh, upstreams), ct);
                    _published[key] = upstreams;
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    Log.RouteFailed(logger, s.Name, e.Name, ex);
                }
            }
        }

        foreach (var key in _published.Keys.Where(k => app.FindService(k.Service)?.Endpoints.Any(e => e.Name == k.Endpoint) != true).ToList())
        {
            await sink.RemoveAsync(key.Service, key.Endpoint, ct);
            _published.Remove(key);
        }
    }

    /// <summary>Removes every published endpoint (down).</summary>
    public async Task RemoveAllAsync(CancellationToken ct)
    {
        foreach (var key in _published.Keys.ToList())
        {
            await sink.RemoveAsync(key.Service, key.Endpoint, ct);
        }

        _published.Clear();
    }
}
