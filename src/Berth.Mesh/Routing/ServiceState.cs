using System.Collections.Concurrent;
using System.Collections.Immutable;
using System.Globalization;
using Berth.Core.Model;
using Berth.Core.Routing;
using Berth.Mesh.Balancing;
using Berth.Mesh.Http;
using Berth.Mesh.Observability;
using Berth.Mesh.Resilience;
using Microsoft.Extensions.Logging;
using Prometheus;

namespace Berth.Mesh.Routing;

/// <summary>A version's share of traffic: its split rule and the endpoints that carry that version.</summary>
internal sealed record SplitRoute(TrafficSplit Split, EndpointState[] Members);

/// <summary>An immutable view of one listener's routing: requests take one snapshot and use it throughout.</summary>
internal sealed class RouteSnapshot
{
    public required ServiceRoute Route { get; init; }

    public MeshPolicy Policy => Route.Policy;

    public required EndpointState[] All { get; init; }

    public required OutlierState[] Pool { get; init; }

    public required ILoadBalancer Balancer { get; init; }

    public required CircuitBreaker ServiceBreaker { get; init; }

    public required RetryBudget Budget { get; init; }

    public required OutlierDetector Outliers { get; init; }

    public required RetryConditions Retry { get; init; }

    public SplitRoute[] HeaderRoutes { get; init; } = [];

    public SplitRoute[] WeightedRoutes { get; init; } = [];

    public int TotalWeight { get; init; }

    /// <summary>Consistent-hash source (null unless the balancer is consistent-hash).</summary>
    public HashKey? HashOn { get; init; }
}

/// <summary>The Prometheus children for one upstream, resolved once instead of per request.</summary>
internal sealed class UpstreamSeries(MeshMetrics metrics, string service, string endpoint, string upstream)
{
    private readonly ConcurrentDictionary<int, Counter.Child> _codes = new();

    public Histogram.Child Duration { get; } = metrics.UpstreamDuration.WithLabels(service, endpoint, upstream);

    public Gauge.Child Ejected { get; } = metrics.Ejected.WithLabels(service, endpoint, upstream);

    public Counter.Child Ejections { get; } = metrics.Ejections.WithLabels(service, endpoint, upstream);

    public Gauge.Child Breaker { get; } = metrics.Breaker.WithLabels(service, endpoint, "endpoint", upstream);

    private readonly Counter.Child[] _errors =
    [
        .. Enum.GetValues<AttemptError>().Select(e => metrics.UpstreamRequests.WithLabels(service, endpoint, upstream, ErrorLabel(e))),
    ];

    public Counter.Child Connections { get; } = metrics.UpstreamConnections.WithLabels(service, endpoint, upstream);

    public Counter.Child ConnectFailures { get; } = metrics.ConnectFailures.WithLabels(service, endpoint, upstream);

    public Gauge.Child Healthy { get; } = metrics.Healthy.WithLabels(service, endpoint, upstream);

    /// <summary>Drops this upstream's series once it has left the route, so rollouts do not grow the scrape without bound.</summary>
    public void Remove()
    {
        foreach (var code in _codes.Keys)
        {
            metrics.UpstreamRequests.RemoveLabelled(service, endpoint, upstream, code.ToString(CultureInfo.InvariantCulture));
        }

        foreach (var e in Enum.GetValues<AttemptError>())
        {
            metrics.UpstreamRequests.RemoveLabelled(service, endpoint, upstream, ErrorLabel(e));
        }

        metrics.UpstreamDuration.RemoveLabelled(service, endpoint, upstream);
        metrics.Ejected.RemoveLabelled(service, endpoint, upstream);
        metrics.Ejections.RemoveLabelled(service, endpoint, upstream);
        metrics.Breaker.RemoveLabelled(service, endpoint, "endpoint", upstream);
        metrics.UpstreamConnections.RemoveLabelled(service, endpoint, upstream);
        metrics.ConnectFailures.RemoveLabelled(service, endpoint, upstream);
        metrics.Healthy.RemoveLabelled(service, endpoint, upstream);
    }

    /// <summary>The <c>code</c> label of a transport failure, so connect failures and resets after sending are told apart.</summary>
    public static string ErrorLabel(AttemptError error) => error switch
    {
        AttemptError.None => "error",
        AttemptError.ConnectFailure => "connect-failure",
        AttemptError.Reset => "reset",
        AttemptError.PerTryTimeout => "per-try-timeout",
        AttemptError.Timeout => "timeout",
        AttemptError.BadResponse => "bad-response",
        AttemptError.ClientBody => "client-body",
    };

    /// <summary>The counter of attempts that ended in <paramref name="error"/>.</summary>
    public Counter.Child Error(AttemptError error) => _errors[(int)error];

    public Counter.Child Status(int code) =>
        _codes.GetOrAdd(code, static (c, s) => s.metrics.UpstreamRequests.WithLabels(s.service, s.endpoint, s.upstream, c.ToString(CultureInfo.InvariantCulture)), (metrics, service, endpoint, upstream));
}

/// <summary>
/// One listener's live routing state. <see cref="Update"/> swaps in a new snapshot atomically; requests already running
/// keep the snapshot they started with, and endpoint state (load, health, breakers) carries over by address.
/// </summary>
internal sealed class ServiceState
{
    private readonly MeshMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly Random _random;
    private readonly ILogger _logger;
    private readonly Lock _updateLock = new();
    private readonly ConcurrentDictionary<int, Counter.Child> _codes = new();
    private readonly ConcurrentDictionary<int, Counter.Child> _grpc = new();
    private Dictionary<string, EndpointState> _byKey = [];
    private EndpointState[] _departed = [];
    private ActiveHealthChecker? _checker;
    private volatile RouteSnapshot? _snapshot;
    private TaskCompletionSource _routesChanged = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _failureStreak;

    public ServiceState(ServiceRoute route, MeshMetrics metrics, TimeProvider time, Random random, ILogger logger,
        TimeSpan? connectTimeout = null, IMeshRequestObserver? observer = null)
    {
        Service = route.Service;
        EndpointName = route.Endpoint.Name;
        _metrics = metrics;
        _time = time;
        _random = random;
        _logger = logger;
        RequestDuration = metrics.RequestDuration.WithLabels(Service, EndpointName);
        ActiveGauge = metrics.ActiveRequests.WithLabels(Service, EndpointName);
        OpenConnections = metrics.OpenConnections.WithLabels(Service, EndpointName);
        ConnectTimeout = connectTimeout ?? Http.HttpProxy.ConnectTimeout;
        Selector = new EndpointSelector(random, logger, Service, EndpointName);
        Telemetry = new RequestTelemetry(this, observer);
        Update(route);
    }

    public string Service { get; }

    public string EndpointName { get; }

    public RouteSnapshot Snapshot => _snapshot!;

    public TimeProvider Time => _time;

    public Random Random => _random;

    public ILogger Logger => _logger;

    public MeshMetrics Metrics => _metrics;

    public Histogram.Child RequestDuration { get; }

    public Gauge.Child ActiveGauge { get; }

    public Gauge.Child OpenConnections { get; }

    /// <summary>Connect timeout to upstreams, and how long a request waits for a Ready upstream when there is none: 5s, as Envoy's connect_timeout.</summary>
    public TimeSpan ConnectTimeout { get; }

    public AdmissionLimits Limits { get; } = new();

    public EndpointSelector Selector { get; }

    public RequestTelemetry Telemetry { get; }

    /// <summary>Requests in flight to the upstream at <paramref name="replica"/> (any address it had), for draining.</summary>
    public int InFlight(string replica)
    {
        var total = 0;
        foreach (var e in Snapshot.All)
        {
            if (e.Upstream.ReplicaId == replica)
            {
                total += e.Active;
            }
        }

        foreach (var e in _departed)
        {
            if (e.Upstream.ReplicaId == replica)
            {
                total += e.Active;
            }
        }

        return total;
    }

    /// <summary>Called right after <see cref="EndpointState.Enter"/> on <paramref name="e"/>, picked from <paramref name="picked"/>:
    /// false when a new route table without it came in between the pick and the count. Then the control plane may already have
    /// read a count without this request and be stopping the replica, so the caller leaves it and picks again (the count is
    /// taken before this read, and the table is swapped before the control plane's read, so one of the two sees the other).</summary>
    public bool StillRouted(RouteSnapshot picked, EndpointState e)
    {
        var now = Snapshot;
        return ReferenceEquals(picked, now) || Array.IndexOf(now.All, e) >= 0;
    }

    /// <summary>Adds each replica's in-flight count (current and departed upstreams) to <paramref name="counts"/>.</summary>
    public void AddInFlight(Dictionary<(string Service, string Replica), int> counts)
    {
        foreach (var e in Snapshot.All)
        {
            Add(counts, e);
        }

        foreach (var e in _departed)
        {
            Add(counts, e);
        }

        void Add(Dictionary<(string Service, string Replica), int> into, EndpointState e)
        {
            if (e.Active > 0)
            {
                into[(Service, e.Upstream.ReplicaId)] = into.GetValueOrDefault((Service, e.Upstream.ReplicaId)) + e.Active;
            }
        }
    }

    public Counter.Child GrpcStatus(int code) =>
        _grpc.GetOrAdd(code, static (c, s) => s._metrics.GrpcStatus.WithLabels(s.Service, s.EndpointName, c.ToString(CultureInfo.InvariantCulture)), this);

    public Counter.Child Requests(int code) =>
        _codes.GetOrAdd(code, static (c, s) => s._metrics.Requests.WithLabels(s.Service, s.EndpointName, c.ToString(CultureInfo.InvariantCulture)), this);

    /// <summary>Applies a new route: same listener, new upstreams and policy. Throws <see cref="ArgumentException"/> on a bad policy.</summary>
    public void Update(ServiceRoute route)
    {
        var where = $"service {route.Service}, endpoint {route.Endpoint.Name}";
        var policy = route.Policy;
        var retry = policy.Retries.Conditions
            ?? throw new ArgumentException($"{where}: retries.on has '{FirstBad(policy.Retries)}', which is not a retry condition; {RetryConditions.Expected}");
        var hashOn = ParseHashOn(policy, where);

        lock (_updateLock)
        {
            var old = _snapshot;
            var breakerChanged = old is null || old.Policy.CircuitBreaker != policy.CircuitBreaker;
            var byKey = new Dictionary<string, EndpointState>();
            foreach (var u in route.Upstreams)
            {
                var key = EndpointState.KeyOf(u);
                if (byKey.ContainsKey(key))
                {
                    continue;
                }

                if (_byKey.TryGetValue(key, out var existing))
                {
                    existing.Upstream = u;
                    if (breakerChanged)
                    {
                        existing.Breaker = NewEndpointBreaker(policy.CircuitBreaker, existing.Upstream.ReplicaId);
                    }

                    byKey[key] = existing;
                }
                else
                {
                    var e = new EndpointState(u, NewEndpointBreaker(policy.CircuitBreaker, u.ReplicaId), _time, ConnectTimeout);
                    e.Series = new UpstreamSeries(_metrics, Service, EndpointName, u.ReplicaId);
                    e.Series.Healthy.Set(1);
                    byKey[key] = e;
                }
            }

            foreach (var e in byKey.Values)
            {
                e.Pool.MaxIdle = policy.Limits.MaxConnections;
            }

            var departed = _departed.Where(e => e.Active > 0).ToList();
            foreach (var (key, gone) in _byKey)
            {
                if (!byKey.ContainsKey(key))
                {
                    gone.Series.Remove();
                    // Idle connections close now; connections of requests still running close as they finish.
                    gone.Pool.Dispose();
                    departed.Add(gone);
                }
            }

            _departed = [.. departed];

            _byKey = byKey;
            var all = byKey.Values.ToArray();
            var (headerRoutes, weighted, total) = BuildSplits(policy, all, where);
            _snapshot = new RouteSnapshot
            {
                Route = route,
                All = all,
                Pool = all.Select(e => e.Outlier).ToArray(),
                Balancer = old is not null && old.Policy.LoadBalancing == policy.LoadBalancing && policy.LoadBalancing != LoadBalancing.ConsistentHash
                    ? old.Balancer
                    : LoadBalancers.Create(policy.LoadBalancing, all, _random),
                ServiceBreaker = !breakerChanged ? old!.ServiceBreaker : NewServiceBreaker(policy.CircuitBreaker),
                Budget = old is not null && old.Policy.Retries == policy.Retries ? old.Budget : new RetryBudget(policy.Retries, _time),
                Outliers = old is not null && old.Policy.OutlierDetection == policy.OutlierDetection ? old.Outliers : new OutlierDetector(policy.OutlierDetection, _time),
                Retry = retry,
                HeaderRoutes = headerRoutes,
                WeightedRoutes = weighted,
                TotalWeight = total,
                HashOn = hashOn,
            };
            Interlocked.MemoryBarrier(); // the new table is seen before any in-flight count read after this (StillRouted)
        }

        Interlocked.Exchange(ref _routesChanged, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
        Log.RoutesUpdated(_logger, Service, EndpointName, route.Upstreams.Length);
        if (route.Readiness is { Kind: ProbeKind.Http or ProbeKind.Tcp })
        {
            lock (_updateLock)
            {
                _checker ??= new ActiveHealthChecker(this);
            }
        }
    }

    /// <summary>Stops active health checks (when the listener goes away).</summary>
    public async ValueTask StopChecksAsync()
    {
        ActiveHealthChecker? checker;
        lock (_updateLock)
        {
            checker = _checker;
            _checker = null;
        }

        if (checker is not null)
        {
            await checker.DisposeAsync();
        }
    }

    /// <summary>
    /// Waits, while the route has no Ready upstream, for one to arrive — at most <see cref="ConnectTimeout"/>, as a
    /// connect would (Aspire's proxy likewise holds the connection). True when one arrived.
    /// </summary>
    public async Task<bool> WaitForUpstreamAsync(CancellationToken cancellationToken)
    {
        var started = _time.GetTimestamp();
        while (Snapshot.All.Length == 0)
        {
            var changed = Volatile.Read(ref _routesChanged).Task;
            if (Snapshot.All.Length > 0)
            {
                break;
            }

            var left = ConnectTimeout - _time.GetElapsedTime(started);
            if (left <= TimeSpan.Zero)
            {
                return false;
            }

            try
            {
                await changed.WaitAsync(left, _time, cancellationToken);
            }
            catch (TimeoutException)
            {
                return false;
            }
            catch (OperationCanceledException)
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>
    /// Reports a request's outcome to the service breaker. Its failure-ratio rule counts over all upstreams; its
    /// consecutive-failures rule trips only when every current upstream failed within the streak — so one bad replica
    /// (ejected by outlier detection and its own breaker) never opens the whole service while others are healthy.
    /// </summary>
    public void ReportService(RouteSnapshot s, BreakerPermit permit, bool success)
    {
        if (success)
        {
            Interlocked.Increment(ref _failureStreak);
            s.ServiceBreaker.Report(permit, true);
            return;
        }

        var streak = Volatile.Read(ref _failureStreak);
        var everyUpstream = s.All.Length > 0;
        foreach (var e in s.All)
        {
            if (Volatile.Read(ref e.FailedInStreak) != streak + 1)
            {
                everyUpstream = false;
                break;
            }
        }

        s.ServiceBreaker.Report(permit, false, everyUpstream);
    }

    /// <summary>Marks an upstream as failed in the current failure streak (see <see cref="ReportService"/>).</summary>
    public void MarkFailed(EndpointState e) => Volatile.Write(ref e.FailedInStreak, Volatile.Read(ref _failureStreak) + 1);

    /// <summary>Feeds an attempt's outcome to passive health, ejecting when a threshold is crossed.</summary>
    public void ReportOutcome(RouteSnapshot s, EndpointState e, AttemptOutcome outcome)
    {
        var ejectedFor = s.Outliers.Report(e.Outlier, outcome, s.Pool);
        if (ejectedFor is { } d)
        {
            e.Series.Ejections.Inc();
            e.Series.Ejected.Set(1);
            Log.Ejected(_logger, e.ToString(), Service, EndpointName, d);
        }
    }

    private CircuitBreaker NewServiceBreaker(CircuitBreakerPolicy policy)
    {
        var gauge = _metrics.Breaker.WithLabels(Service, EndpointName, "service", "");
        gauge.Set(0);
        return new CircuitBreaker(policy, _time)
        {
            StateChanged = state =>
            {
                gauge.Set((int)state);
                Log.BreakerChanged(_logger, "service", Service, EndpointName, state.ToString());
            },
        };
    }

    private CircuitBreaker NewEndpointBreaker(CircuitBreakerPolicy policy, string replica)
    {
        var gauge = _metrics.Breaker.WithLabels(Service, EndpointName, "endpoint", replica);
        gauge.Set(0);
        return new CircuitBreaker(policy, _time)
        {
            StateChanged = state =>
            {
                gauge.Set((int)state);
                Log.BreakerChanged(_logger, $"endpoint {replica}", Service, EndpointName, state.ToString());
            },
        };
    }

    private static (SplitRoute[] Header, SplitRoute[] Weighted, int Total) BuildSplits(MeshPolicy policy, EndpointState[] all, string where)
    {
        if (policy.Split.IsDefaultOrEmpty)
        {
            return ([], [], 0);
        }

        var header = new List<SplitRoute>();
        var weighted = new List<SplitRoute>();
        var total = 0;
        foreach (var split in policy.Split)
        {
            if (split.Weight < 0)
            {
                throw new ArgumentException($"{where}: split to version '{split.Version}' has weight {split.Weight}; weights are percentages from 0 to 100");
            }

            var members = all.Where(e => Matches(split.Version, e.Upstream)).ToArray();
            if (split.HeaderName is not null)
            {
                header.Add(new SplitRoute(split, members));
            }

            // A version with no Ready replica gets no share: its weight goes to the versions that can serve.
            if (split.Weight > 0 && members.Length > 0)
            {
                weighted.Add(new SplitRoute(split, members));
                total += split.Weight;
            }
        }

        return ([.. header], [.. weighted], total);
    }

    /// <summary>A split version is a revision number (<c>3</c>) or a label match (<c>version=v2</c>).</summary>
    internal static bool Matches(string version, Upstream u)
    {
        var eq = version.IndexOf('=', StringComparison.Ordinal);
        if (eq > 0)
        {
            return u.Labels.TryGetValue(version[..eq].Trim(), out var v) && v == version[(eq + 1)..].Trim();
        }

        return long.TryParse(version.TrimStart('v', 'r'), NumberStyles.None, CultureInfo.InvariantCulture, out var revision) && u.Revision == revision;
    }

    private static HashKey? ParseHashOn(MeshPolicy policy, string where)
    {
        if (policy.LoadBalancing != LoadBalancing.ConsistentHash)
        {
            return null;
        }

        return policy.HashKey
            ?? throw new ArgumentException($"{where}: loadBalancing consistent-hash needs hashOn such as 'header:X-User' or 'cookie:session' (got '{policy.HashOn}')");
    }

    private static string FirstBad(RetryPolicy retries)
    {
        RetryConditions.TryParse(retries.On, out var bad);
        return bad ?? "";
    }
}
