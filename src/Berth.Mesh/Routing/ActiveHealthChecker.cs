using Berth.Core.Model;
using Berth.Core.Probing;

namespace Berth.Mesh.Routing;

/// <summary>
/// Active health checks from the route's readiness probe: every period each upstream gets an HTTP GET (2xx/3xx passes,
/// as Kubernetes) or a TCP connect, within the probe timeout, by the same runners and threshold counter as the
/// orchestrator's probes (Berth.Core.Probing). After FailureThreshold failures in a row it leaves the
/// rotation; after SuccessThreshold passes it returns. If every upstream fails, traffic still flows (Envoy's panic mode).
/// </summary>
internal sealed class ActiveHealthChecker : IAsyncDisposable
{
    private readonly ServiceState _state;
    private readonly HttpProbeRunner _http;
    private readonly TcpProbeRunner _tcp;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;

    public ActiveHealthChecker(ServiceState state)
    {
        _state = state;
        _http = new HttpProbeRunner(state.Time);
        _tcp = new TcpProbeRunner(state.Time);
        _loop = RunAsync(_stop.Token);
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        try
        {
            await _loop;
        }
        catch (OperationCanceledException)
        {
        }

        _http.Dispose();
        _stop.Dispose();
    }

    private async Task RunAsync(CancellationToken cancellationToken)
    {
        await Task.Yield();
        var period = _state.Snapshot.Route.Readiness?.Period ?? ProbeDefaults.Period;
        using var timer = new PeriodicTimer(period, _state.Time);
        do
        {
            var s = _state.Snapshot;
            if (s.Route.Readiness is { Kind: ProbeKind.Http or ProbeKind.Tcp } probe)
            {
                await Task.WhenAll(s.All.Select(e => CheckAsync(e, probe, cancellationToken)));
            }
        }
        while (await timer.WaitForNextTickAsync(cancellationToken));
    }

    private async Task CheckAsync(EndpointState e, Probe probe, CancellationToken cancellationToken)
    {
        var port = probe.Port ?? e.Upstream.Port;
        var outcome = probe.Kind switch
        {
            ProbeKind.Http => await _http.RunAsync(probe, e.Upstream.Host, port, cancellationToken, e.Upstream.Pod),
            ProbeKind.Tcp => await _tcp.RunAsync(probe, e.Upstream.Host, port, cancellationToken, e.Upstream.Pod),
            ProbeKind.Exec => new ProbeOutcome(true, "exec probes are the orchestrator's, not the mesh's"),
        };
        if (e.Health.Record(outcome.Success, probe.SuccessThreshold, probe.FailureThreshold) != ProbeTransition.None)
        {
            e.Series.Healthy.Set(e.Health.Passing ? 1 : 0);
            Log.HealthChanged(_state.Logger, e.ToString(), _state.Service, _state.EndpointName, e.Health.Passing ? "healthy" : "unhealthy");
        }
    }
}
