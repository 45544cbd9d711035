using System.Collections.Immutable;
using Berth.Core.Model;
using Berth.Core.Routing;
using Berth.Orchestration.Scheduling;
using Berth.Orchestration.State;
using Microsoft.Extensions.Logging;

namespace Berth.Orchestration.Controllers;

/// <summary>Sends each service endpoint's Ready upstreams to the route sink (the mesh), only when they changed, and
/// removes endpoints that left the app. Called under the lock after every change that can move a replica in or out of
/// Ready, and always before a driver is asked to stop a replica, so traffic moves before the process goes.</summary>
internal sealed class RoutePublisher(IRouteSink sink, StablePortRegistry stablePorts, string host, ILogger logger,
    IReadOnlyDictionary<string, string>? replicaEnvironment = null)
{
    private readonly Dictionary<(string Service, string Endpoint), ImmutableArray<Upstream>> _published = [];
    private ImmutableSortedDictionary<(string Service, string Endpoint), PortConflict> _conflicts = ImmutableSortedDictionary<(string Service, string Endpoint), PortConflict>.Empty;

    /// <summary>Endpoints whose stable port could not be listened on (taken by another program): the service is held
    /// Pending until it can (issue #14 §11). Safe to read without the lock.</summary>
    public ImmutableSortedDictionary<(string Service, string Endpoint), PortConflict> Conflicts => Volatile.Read(ref _conflicts);

    /// <summary>Called once when an endpoint's listener fails, with the conflict (for the event).</summary>
    public Action<PortConflict>? OnConflict { get; set; }

    private ImmutableHashSet<(string Service, string Endpoint)> _listening = [];

    /// <summary>True once every endpoint of <paramref name="app"/> has had its listener opened or refused (read without the lock).</summary>
    public bool Settled(Application app)
    {
        var listening = Volatile.Read(ref _listening);
        var conflicts = Conflicts;
        return app.Services.SelectMany(s => s.Endpoints.Select(e => (s.Name, e.Name))).All(k => listening.Contains(k) || conflicts.ContainsKey(k));
    }

    /// <summary>Why <paramref name="service"/> may not start replicas now, or null.</summary>
    public string? ConflictOf(string service) => Conflicts.Values.FirstOrDefault(c => c.Service == service)?.Message;

    /// <summary>The data plane's in-flight counts, when the sink (the mesh) reports them.</summary>
    public IInFlightSource? InFlight => sink as IInFlightSource;

    private readonly Dictionary<string, PodRoute> _pods = new(StringComparer.Ordinal);

    /// <summary>The Ready replicas of one endpoint, in a stable order; one in a pod is reached on its pod's loopback. Pure.</summary>
    public static ImmutableArray<Upstream> UpstreamsFor(string service, string endpoint, IEnumerable<ReplicaRecord> replicas, string host) =>
        [.. replicas
            .Where(r => r.Service == service && r.Phase == ReplicaPhase.Ready && r.Ports.ContainsKey(endpoint))
            .OrderBy(r => r.Id, StringComparer.Ordinal)
            .Select(r => r.Handle?.Pod is { } pod
                ? new Upstream(r.Id, PodDefaults.Loopback, r.Ports[endpoint], r.Revision) { Pod = pod }
                : new Upstream(r.Id, host, r.Ports[endpoint], r.Revision))];

    /// <summary>The outbound listeners every pod gets: each endpoint of every service at the service's virtual address. Pure.</summary>
    public static ImmutableArray<OutboundListener> OutboundFor(Application app, IReadOnlyDictionary<(string Service, string Endpoint), int> stablePorts,
        IReadOnlyDictionary<string, string> addresses) =>
        [.. app.Services
            .Where(s => addresses.ContainsKey(s.Name))
            .SelectMany(s => s.Endpoints.Where(e => stablePorts.ContainsKey((s.Name, e.Name)))
                .Select(e => new OutboundListener(s.Name, e.Name, addresses[s.Name], ReplicaSpecBuilder.OutboundPort(e, stablePorts[(s.Name, e.Name)]))))
            .DistinctBy(l => (l.Address, l.Port))];

    public async Task PublishAsync(Application? app, IReadOnlyCollection<ReplicaRecord> replicas, CancellationToken ct)
    {
        if (app is null)
        {
            return;
        }

        (app, replicas) = PodPorts.WithDiscovered(app, replicas, stablePorts.Ensure);
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

                var port = stablePorts.Ports[key];
                try
                {
                    await sink.UpdateAsync(new ServiceRoute(s.Name, e with { Port = port }, s.Mesh, upstreams), ct);
                    _published[key] = upstreams;
                    Volatile.Write(ref _listening, _listening.Add(key));
                    Volatile.Write(ref _conflicts, _conflicts.Remove(key));
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    Log.RouteFailed(logger, s.Name, e.Name, ex);
                    if (!_conflicts.ContainsKey(key))
                    {
                        var holder = PortHolder.Describe(port);
                        var why = (ex.InnerException ?? ex).Message.TrimEnd('.');
                        var conflict = new PortConflict(s.Name, e.Name, port, holder,
                            $"stable port {port} of endpoint {e.Name} cannot be listened on{(holder is null ? "" : $"; it is held by {holder}")} ({why}); " +
                            "free the port or give the endpoint another one in the spec; the service starts once the port is free");
                        Volatile.Write(ref _conflicts, _conflicts.SetItem(key, conflict));
                        OnConflict?.Invoke(conflict);
                    }
                }
            }
        }

        foreach (var key in _conflicts.Keys.Where(k => app.FindService(k.Service)?.Endpoints.Any(e => e.Name == k.Endpoint) != true).ToList())
        {
            Volatile.Write(ref _conflicts, _conflicts.Remove(key));
        }

        foreach (var key in _published.Keys.Where(k => app.FindService(k.Service)?.Endpoints.Any(e => e.Name == k.Endpoint) != true).ToList())
        {
            await sink.RemoveAsync(key.Service, key.Endpoint, ct);
            _published.Remove(key);
            Volatile.Write(ref _listening, _listening.Remove(key));
        }

        await PublishPodsAsync(app, replicas, ct);
    }

    /// <summary>Gives every running pod its outbound listeners (once its replica runs, so before it is Ready: a replica may
    /// call others while it starts) and removes those of pods whose replica stopped.</summary>
    private async Task PublishPodsAsync(Application app, IReadOnlyCollection<ReplicaRecord> replicas, CancellationToken ct)
    {
        if (sink is not IPodRouteSink pods)
        {
            return;
        }

        var listeners = OutboundFor(app, stablePorts.Ports, stablePorts.Addresses);
        if (replicaEnvironment is not null && ReplicaSpecBuilder.TelemetryForward(replicaEnvironment) is { } telemetry)
        {
            // The app's own telemetry from inside a pod: the host-gateway address, forwarded to the receiver on the host.
            listeners = listeners.Add(telemetry.Listener);
        }

        var live = replicas.Where(r => r.Handle?.Pod is not null && r.Phase is ReplicaPhase.Running or ReplicaPhase.Ready or ReplicaPhase.Terminating)
            .ToDictionary(r => r.Id, r => new PodRoute(r.Handle!.Pod!, listeners) { HostGateway = app.FindService(r.Service) is { } s && ReplicaSpecBuilder.ReachesHost(s) }, StringComparer.Ordinal);
        foreach (var (id, route) in live)
        {
            if (_pods.TryGetValue(id, out var old) && old.Pod == route.Pod && old.HostGateway == route.HostGateway && old.Listeners.SequenceEqual(route.Listeners))
            {
                continue;
            }

            try
            {
                await pods.UpdatePodAsync(route, ct);
                _pods[id] = route;
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                Log.RouteFailed(logger, id, "pod", ex);
            }
        }

        foreach (var id in _pods.Keys.Where(id => !live.ContainsKey(id)).ToList())
        {
            await pods.RemovePodAsync(id, ct);
            _pods.Remove(id);
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
        if (sink is IPodRouteSink pods)
        {
            foreach (var id in _pods.Keys.ToList())
            {
                await pods.RemovePodAsync(id, ct);
            }
        }

        _pods.Clear();
        Volatile.Write(ref _listening, _listening.Clear());
        Volatile.Write(ref _conflicts, _conflicts.Clear());
    }
}

/// <summary>A stable port another program holds: which endpoint, which port, who holds it (as /proc shows), and the reason text.</summary>
public sealed record PortConflict(string Service, string Endpoint, int Port, string? Holder, string Message);
