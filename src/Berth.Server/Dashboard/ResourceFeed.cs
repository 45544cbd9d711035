using System.Text;
using System.Text.Json;
using System.Threading.Channels;
using Berth.Core.Contracts;
using Berth.Core.Model;
using Berth.Orchestration;
using Berth.Orchestration.Controllers;
using Berth.Orchestration.State;

namespace Berth.Server.Dashboard;

/// <summary>The Resources view's live feed: one snapshot of services and replicas, rebuilt when the control plane's state,
/// the stats or the events change (checked every <see cref="Tick"/>), serialized once and pushed to every open page as a
/// server-sent event, with the events that arrived since. One builder however many browsers are open.</summary>
internal sealed class ResourceFeed : IAsyncDisposable
{
    /// <summary>How often the feed looks for changes: 200ms, so a change shows within a fifth of a second plus the page's render.</summary>
    public static readonly TimeSpan Tick = TimeSpan.FromMilliseconds(200);

    /// <summary>Events sent with one push at most (the page keeps the newest 200).</summary>
    public const int MaxEventsPerPush = 200;

    private readonly ControlPlane _plane;
    private readonly LiveSampler _sampler;
    private readonly SecretRedactor _redactor;
    private readonly TimeProvider _time;
    private readonly List<Channel<byte[]>> _subscribers = [];
    private readonly Lock _lock = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private readonly Task _events;
    private readonly Queue<EventRecord> _pendingEvents = new();
    private readonly Queue<EventRecord> _recentEvents = new();
    private long _pushes;

    public ResourceFeed(ControlPlane plane, LiveSampler sampler, SecretRedactor redactor, TimeProvider time)
    {
        _plane = plane;
        _sampler = sampler;
        _redactor = redactor;
        _time = time;
        _loop = Task.Run(() => LoopAsync(_stop.Token));
        _events = Task.Run(() => EventsAsync(_stop.Token));
    }

    /// <summary>Snapshots pushed so far (the benchmark reads it).</summary>
    public long Pushes => Interlocked.Read(ref _pushes);

    /// <summary>A page's subscription: the current snapshot first, then every change. Slow readers skip to the newest.</summary>
    public async IAsyncEnumerable<byte[]> SubscribeAsync([System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct)
    {
        var channel = Channel.CreateBounded<byte[]>(new BoundedChannelOptions(4) { FullMode = BoundedChannelFullMode.DropOldest, SingleReader = true });
        byte[] first;
        lock (_lock)
        {
            _subscribers.Add(channel);
            // A page that just opened gets the recent events too, not only those of the last push.
            lock (_recentEvents)
            {
                first = Build([.. _recentEvents]);
            }
        }

        try
        {
            yield return first;
            await foreach (var message in channel.Reader.ReadAllAsync(ct))
            {
                yield return message;
            }
        }
        finally
        {
            lock (_lock)
            {
                _subscribers.Remove(channel);
            }
        }
    }

    private async Task EventsAsync(CancellationToken ct)
    {
        try
        {
            // From the start of the kept events: the backlog leaves the newest MaxEventsPerPush for the first push.
            await foreach (var e in _plane.Events.StreamAsync(0, null, ct))
            {
                lock (_pendingEvents)
                {
                    _pendingEvents.Enqueue(e);
                    while (_pendingEvents.Count > MaxEventsPerPush)
                    {
                        _pendingEvents.Dequeue();
                    }
                }

                lock (_recentEvents)
                {
                    _recentEvents.Enqueue(e);
                    while (_recentEvents.Count > MaxEventsPerPush)
                    {
                        _recentEvents.Dequeue();
                    }
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
    }

    private async Task LoopAsync(CancellationToken ct)
    {
        var lastReplicas = default(System.Collections.Immutable.ImmutableArray<ReplicaRecord>);
        long lastRevision = -1, lastStats = -1;
        try
        {
            using var timer = new PeriodicTimer(Tick, _time);
            while (await timer.WaitForNextTickAsync(ct))
            {
                var replicas = _plane.Replicas;
                var revision = _plane.Current?.Number ?? 0;
                var stats = _sampler.Generation;
                List<EventRecord> events;
                lock (_pendingEvents)
                {
                    events = [.. _pendingEvents];
                    _pendingEvents.Clear();
                }

                // The control plane replaces its replica array on every change, so a reference compare finds one.
                if (events.Count == 0 && revision == lastRevision && stats == lastStats && replicas == lastReplicas)
                {
                    continue;
                }

                lastReplicas = replicas;
                lastRevision = revision;
                lastStats = stats;
                Publish(Build(events));
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
    }

    private void Publish(byte[] message)
    {
        lock (_lock)
        {
            foreach (var s in _subscribers)
            {
                s.Writer.TryWrite(message);
            }
        }

        Interlocked.Increment(ref _pushes);
    }

    /// <summary>The snapshot as one SSE message (<c>event: resources</c>), secrets already taken out.</summary>
    private byte[] Build(IReadOnlyList<EventRecord> events)
    {
        var current = _plane.Current;
        var app = current?.Application;
        var replicas = _plane.Replicas;
        var ports = _plane.StablePorts;
        var snapshot = new
        {
            app = app?.Name,
            revision = current?.Number,
            time = _time.GetUtcNow(),
            services = app?.Services.Select(s =>
            {
                var mine = replicas.Where(r => r.Service == s.Name).ToList();
                RolloutStatus? rollout = null;
                try
                {
                    rollout = _plane.GetRollout(s.Name);
                }
                catch (ControlPlaneException)
                {
                }

                return new
                {
                    name = s.Name,
                    runtime = JsonNamingPolicy.KebabCaseLower.ConvertName(s.EffectiveRuntime.ToString()),
                    desired = current!.Stopped.Contains(s.Name) ? 0 : s.Replicas,
                    stopped = current.Stopped.Contains(s.Name),
                    revision = current.TemplateOf(s.Name),
                    ready = mine.Count(r => r.Phase == ReplicaPhase.Ready),
                    total = mine.Count,
                    endpoints = s.Endpoints.Select(e => new
                    {
                        name = e.Name,
                        protocol = e.Protocol == EndpointProtocol.Tcp ? "tcp" : "http",
                        port = ports.TryGetValue((s.Name, e.Name), out var p) ? p : e.Port,
                    }),
                    cpuLimit = s.Resources.CpuLimit?.ToString(),
                    memoryLimit = s.Resources.MemoryLimit?.ToString(),
                    probes = Probes(s),
                    rollout = rollout is null ? null : new { state = StateName(rollout.State), message = rollout.Message },
                    autoscale = s.Autoscale is null ? null : new { min = s.Autoscale.Min, max = s.Autoscale.Max },
                };
            }),
            replicas = replicas.Select(r => DashboardReplica.Of(r, app?.FindService(r.Service), _sampler)),
            events = events.Select(EventView),
        };
        var json = _redactor.Redact(JsonSerializer.Serialize(snapshot, StateJson.Options));
        return Encoding.UTF8.GetBytes($"event: resources\ndata: {json}\n\n");
    }

    /// <summary>A rollout state as the API writes it: progressing, complete, rolled-back, failed, paused.</summary>
    internal static string StateName(RolloutState state) => JsonNamingPolicy.KebabCaseLower.ConvertName(state.ToString());

    internal static object EventView(EventRecord e) => new { id = e.Id, time = e.Time, type = e.Type, service = e.Service, replica = e.Replica, message = e.Message };

    internal static object? Probes(Service s) => new
    {
        readiness = Describe(s.Readiness),
        liveness = Describe(s.Liveness),
        startup = Describe(s.Startup),
    };

    private static string? Describe(Probe? p) =>
        p is null ? null : $"{(p.Kind == ProbeKind.Http ? "http " + p.Path : p.Kind.ToString().ToLowerInvariant())} every {p.Period.TotalSeconds:0.#}s";

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await Task.WhenAll(_loop, _events);
        _stop.Dispose();
    }
}

/// <summary>A replica as every dashboard view shows it: the API's <see cref="ReplicaInfo"/> (what <c>berth ps</c> reads) and, beside it,
/// what only the dashboard has: the latest CPU and memory sample against the service's limits.</summary>
internal sealed record DashboardReplica(ReplicaInfo Replica, ReplicaUsage Usage)
{
    public static DashboardReplica Of(ReplicaRecord r, Service? service, LiveSampler sampler)
    {
        var stats = sampler.Latest(r.Id);
        return new DashboardReplica(
            ApiServer.ReplicaView(r),
            new ReplicaUsage(
                stats?.CpuPercent,
                stats?.MemoryBytes,
                service?.Resources.CpuLimit is { } c ? c.MilliCores / 10.0 : null,
                service?.Resources.MemoryLimit?.Bytes));
    }
}

/// <summary>CPU in percent of one core and memory in bytes, with the limits they are held against (null: none set).</summary>
internal sealed record ReplicaUsage(double? CpuPercent, long? MemoryBytes, double? CpuLimitPercent, long? MemoryLimitBytes);
