using System.Net.Sockets;
using Berth.Core.Model;

namespace Berth.Mesh.Routing;

/// <summary>
/// Active health checks from the route's readiness probe: every period each upstream gets an HTTP GET (2xx/3xx passes,
/// as Kubernetes) or a TCP connect, within the probe timeout. After FailureThreshold failures in a row it leaves the
/// rotation; after SuccessThreshold passes it returns. If every upstream fails, traffic still flows (Envoy's panic mode).
/// </summary>
internal sealed class ActiveHealthChecker : IAsyncDisposable
{
    private readonly ServiceState _state;
    private readonly HttpMessageInvoker _client = new(new SocketsHttpHandler { UseProxy = false, AllowAutoRedirect = false, UseCookies = false, ActivityHeadersPropagator = null });
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;

    public ActiveHealthChecker(ServiceState state)
    {
        _state = state;
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

        _client.Dispose();
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
        var ok = await ProbeAsync(e, probe, cancellationToken);
        var changed = e.Health.Record(ok, probe.SuccessThreshold, probe.FailureThreshold);
        if (changed)
        {
            e.Series.Healthy.Set(e.Health.Healthy ? 1 : 0);
            Log.HealthChanged(_state.Logger, e.ToString(), _state.Service, _state.EndpointName, e.Health.Healthy ? "healthy" : "unhealthy");
        }
    }

    private async Task<bool> ProbeAsync(EndpointState e, Probe probe, CancellationToken cancellationToken)
    {
        using var timeout = new CancellationTokenSource(probe.Timeout, _state.Time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token);
        var port = probe.Port ?? e.Upstream.Port;
        try
        {
            if (probe.Kind == ProbeKind.Tcp)
            {
                using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
                await socket.ConnectAsync(e.Upstream.Host, port, linked.Token);
                return true;
            }

            var path = probe.Path.StartsWith('/') ? probe.Path : "/" + probe.Path;
            using var request = new HttpRequestMessage(HttpMethod.Get, new UriBuilder(e.Uri) { Port = port }.Uri.GetLeftPart(UriPartial.Authority) + path);
            foreach (var (name, value) in probe.Headers)
            {
                request.Headers.TryAddWithoutValidation(name, value);
            }

            using var response = await _client.SendAsync(request, linked.Token);
            return (int)response.StatusCode is >= 200 and < 400;
        }
        catch (Exception ex) when (ex is HttpRequestException or SocketException || (ex is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            return false;
        }
    }
}

/// <summary>An upstream's active-check streak: healthy until FailureThreshold failures in a row, then until SuccessThreshold passes.</summary>
internal sealed class ActiveHealth
{
    private readonly Lock _lock = new();
    private int _streak;
    private volatile bool _healthy = true;

    public bool Healthy => _healthy;

    /// <summary>Records a probe result; true when the health flipped.</summary>
    public bool Record(bool ok, int successThreshold, int failureThreshold)
    {
        lock (_lock)
        {
            if (ok == _healthy)
            {
                _streak = 0;
                return false;
            }

            _streak++;
            if (_streak < Math.Max(1, ok ? successThreshold : failureThreshold))
            {
                return false;
            }

            _streak = 0;
            _healthy = ok;
            return true;
        }
    }
}
