using System.Collections.Concurrent;
using Berth.Mesh;
using Berth.Orchestration.Controllers;
using Berth.Orchestration.State;
using Berth.Server.Telemetry;

namespace Berth.Server.Dashboard;

/// <summary>Samples what the control plane does not keep: each running replica's CPU and memory (every
/// <see cref="StatsPeriod"/>, an hour of history) and the mesh's ejected endpoints and open breakers (every second).</summary>
internal sealed class LiveSampler : IAsyncDisposable
{
    /// <summary>5s: the charts' finest step over an hour is 30s, and a Docker stats read takes about a second.</summary>
    public static readonly TimeSpan StatsPeriod = TimeSpan.FromSeconds(5);

    /// <summary>Stats reads at once: 4, so 500 replicas are read in a few seconds without a burst of threads.</summary>
    public const int StatsConcurrency = 4;

    private const int HistoryPoints = 720;

    private readonly ControlPlane _plane;
    private readonly Mesh.DataPlane.IMeshDataPlane? _mesh;
    private readonly TelemetryStore _telemetry;
    private readonly TimeProvider _time;
    private readonly ConcurrentDictionary<string, StatsHistory> _stats = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _statsLoop;
    private readonly Task _meshLoop;
    private volatile IReadOnlyList<RouteStatus> _routes = [];
    private long _generation;

    public LiveSampler(ControlPlane plane, Mesh.DataPlane.IMeshDataPlane? mesh, TelemetryStore telemetry, TimeProvider time)
    {
        _plane = plane;
        _mesh = mesh;
        _telemetry = telemetry;
        _time = time;
        _statsLoop = Task.Run(() => StatsLoopAsync(_stop.Token));
        _meshLoop = Task.Run(() => MeshLoopAsync(_stop.Token));
    }

    /// <summary>Grows with every stats pass, so the resources feed knows to push.</summary>
    public long Generation => Interlocked.Read(ref _generation);

    public IReadOnlyList<RouteStatus> Routes => _routes;

    public StatsPoint? Latest(string replica) => _stats.TryGetValue(replica, out var h) ? h.Latest : null;

    public IReadOnlyList<StatsPoint> History(string replica, DateTimeOffset since) =>
        _stats.TryGetValue(replica, out var h) ? h.Since(since) : [];

    private async Task StatsLoopAsync(CancellationToken ct)
    {
        try
        {
            using var timer = new PeriodicTimer(StatsPeriod, _time);
            do
            {
                var live = _plane.Replicas.Where(r => r.Handle is not null && r.Phase is ReplicaPhase.Running or ReplicaPhase.Ready or ReplicaPhase.Starting).ToList();
                await Parallel.ForEachAsync(live, new ParallelOptions { MaxDegreeOfParallelism = StatsConcurrency, CancellationToken = ct }, async (r, token) =>
                {
                    try
                    {
                        var s = await _plane.GetReplicaStatsAsync(r, token);
                        _stats.GetOrAdd(r.Id, _ => new StatsHistory()).Add(new StatsPoint(_time.GetUtcNow(), s.CpuPercent, s.MemoryUsage.Bytes));
                    }
                    catch (Exception e) when (e is not OperationCanceledException || !token.IsCancellationRequested)
                    {
                        // A replica that just exited has no stats; the next pass skips it.
                    }
                });
                foreach (var gone in _stats.Keys.Except(_plane.Replicas.Select(r => r.Id)).ToList())
                {
                    _stats.TryRemove(gone, out _);
                }

                Interlocked.Increment(ref _generation);
            }
            while (await timer.WaitForNextTickAsync(ct));
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
    }

    private async Task MeshLoopAsync(CancellationToken ct)
    {
        if (_mesh is null)
        {
            return;
        }

        try
        {
            using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1), _time);
            while (await timer.WaitForNextTickAsync(ct))
            {
                var routes = await _mesh.RoutesAsync(ct);
                _routes = routes;
                foreach (var g in routes.GroupBy(r => r.Service))
                {
                    var ejected = g.Sum(r => r.Upstreams.Count(u => u.Ejected));
                    var open = g.Count(r => IsOpen(r.Circuit)) + g.Sum(r => r.Upstreams.Count(u => IsOpen(u.Circuit)));
                    _telemetry.SetMeshGauges(g.Key, ejected, open);
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
    }

    /// <summary>Open or half-open: the breaker is failing requests fast, or letting only probes through.</summary>
    internal static bool IsOpen(string circuit) => !string.Equals(circuit, "closed", StringComparison.OrdinalIgnoreCase);

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await Task.WhenAll(_statsLoop, _meshLoop);
        _stop.Dispose();
    }

    private sealed class StatsHistory
    {
        private readonly Queue<StatsPoint> _points = new();

        public StatsPoint? Latest { get; private set; }

        public void Add(StatsPoint p)
        {
            lock (_points)
            {
                _points.Enqueue(p);
                while (_points.Count > HistoryPoints)
                {
                    _points.Dequeue();
                }

                Latest = p;
            }
        }

        public List<StatsPoint> Since(DateTimeOffset since)
        {
            lock (_points)
            {
                return [.. _points.Where(p => p.Time >= since)];
            }
        }
    }
}

/// <summary>One CPU and memory sample of a replica.</summary>
internal sealed record StatsPoint(DateTimeOffset Time, double CpuPercent, long MemoryBytes);
