using System.Collections.Concurrent;
using Berth.Core.Routing;

namespace Berth.Orchestration.Tests.Fakes;

/// <summary>Keeps the latest route per endpoint and the order of updates, shared with a driver's call log.</summary>
internal sealed class RecordingRouteSink(ConcurrentQueue<string>? log = null) : IRouteSink
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

/// <summary>Probe results decided by the test per replica port.</summary>
internal sealed class ScriptedProber : Berth.Orchestration.Controllers.IProbeExecutor
{
    public ConcurrentDictionary<int, bool> Healthy { get; } = new();

    public bool Default { get; set; } = true;

    public int Runs;

    public Task<Berth.Core.Probing.ProbeOutcome> RunAsync(Berth.Core.Model.Probe probe, Berth.Orchestration.Controllers.ProbeTarget target, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref Runs);
        var ok = target.Port is { } p && Healthy.TryGetValue(p, out var h) ? h : Default;
        return Task.FromResult(new Berth.Core.Probing.ProbeOutcome(ok, ok ? "HTTP 200" : "HTTP 500"));
    }
}
