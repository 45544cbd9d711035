using Berth.Mesh;
using Berth.Orchestration.Controllers;

namespace Berth.Cli.Rollouts;

/// <summary>Runs the autoscaler beside a serving control plane until disposed.</summary>
internal sealed class AutoscalerRun : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private readonly MeshRequestRates? _rates;

    private AutoscalerRun(Orchestration.Controllers.ControlPlane plane, Mesh.DataPlane.IMeshDataPlane? mesh)
    {
        _rates = mesh is null ? null : new MeshRequestRates(() => mesh.AdminAddress, TimeProvider.System);
        var autoscaler = new Autoscaler(plane, new DriverAutoscaleMetrics(plane, _rates is null ? null : _rates.PerSecondAsync));
        _loop = Task.Run(() => autoscaler.RunAsync(_stop.Token));
    }

    public static AutoscalerRun Start(Orchestration.Controllers.ControlPlane plane, Mesh.DataPlane.IMeshDataPlane? mesh) => new(plane, mesh);

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _loop.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        _stop.Dispose();
        _rates?.Dispose();
    }
}

/// <summary>Requests/s per service from the mesh's own Prometheus endpoint (its loopback admin port): the increase of
/// <c>berth_mesh_requests_total</c> since the previous scrape (<see cref="Server.MeshRequestCounts"/>), as PromQL's rate()
/// over the sync period.</summary>
internal sealed class MeshRequestRates(Func<Uri?> admin, TimeProvider time) : IDisposable
{
    private readonly HttpClient _http = new(new SocketsHttpHandler { UseProxy = false }) { Timeout = TimeSpan.FromSeconds(5) };
    private readonly Dictionary<string, (long At, double Count)> _last = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _gate = new(1, 1);

    public async Task<double?> PerSecondAsync(string service, CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken);
        try
        {
            if (admin() is not { } address)
            {
                return null;
            }

            // The data plane's admin address, read each time: a restarted data plane may have had to take another port.
            var text = await _http.GetStringAsync(new Uri(address, "/metrics"), cancellationToken);
            var now = time.GetTimestamp();
            var count = Server.MeshRequestCounts.Parse(text).Service(service);
            double? rate = _last.TryGetValue(service, out var previous) && time.GetElapsedTime(previous.At, now) is { TotalSeconds: > 0 } elapsed
                ? Server.MeshRequestCounts.Rate(previous.Count, count, elapsed)
                : null;
            _last[service] = (now, count);
            return rate;
        }
        catch (HttpRequestException)
        {
            return null;
        }
        finally
        {
            _gate.Release();
        }
    }

    public void Dispose()
    {
        _http.Dispose();
        _gate.Dispose();
    }
}
