using System.Collections.Concurrent;
using System.Collections.Immutable;
using System.Globalization;
using Berth.Core.Model;
using Berth.Core.Routing;
using Berth.Mesh.Balancing;
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

    /// <summary>Consistent-hash source: ("header", name) or ("cookie", name).</summary>
    public (string Kind, string Name)? HashOn { get; init; }
}

/// <summary>Which failures a retry is allowed for, parsed from <see cref="RetryPolicy.On"/>.</summary>
internal sealed record RetryConditions(bool ConnectFailure, bool Reset, ImmutableHashSet<int> Statuses)
{
    public static RetryConditions Parse(RetryPolicy policy, string where)
    {
        bool connect = false, reset = false;
        var statuses = ImmutableHashSet.CreateBuilder<int>();
        foreach (var raw in policy.On)
        {
            var on = raw.Trim().ToLowerInvariant();
            switch (on)
            {
                case "connect-failure":
                    connect = true;
                    break;
                case "reset":
                    reset = true;
                    break;
                case "gateway-error":
                    statuses.UnionWith([502, 503, 504]);
                    break;
                case "5xx":
                    for (var s = 500; s < 600; s++)
                    {
                        statuses.Add(s);
                    }

                    connect = reset = true;
                    break;
                default:
                    if (int.TryParse(on, NumberStyles.None, CultureInfo.InvariantCulture, out var code) && code is >= 100 and <= 599)
                    {
                        statuses.Add(code);
                        break;
                    }

                    throw new ArgumentException(
                        $"{where}: retries.on has '{raw}', which is not a retry condition; use connect-failure, reset, gateway-error, 5xx or a status code such as 503");
            }
        }

        return new RetryConditions(connect, reset, statuses.ToImmutable());
    }
}

/// <summary>The Prometheus children for one upstream, resolved once instead of per request.</summary>
internal sealed class UpstreamSeries(MeshMetrics metrics, string service, string endpoint, string upstream)
{
    private readonly ConcurrentDictionary<int, Counter.Child> _codes = new();

    public Histogram.Child Duration { get; } = metrics.UpstreamDuration.WithLabels(service, endpoint, upstream);

    public Gauge.Child Ejected { get; } = metrics.Ejected.WithLabels(service, endpoint, upstream);

    public Counter.Child Ejections { get; } = metrics.Ejections.WithLabels(service, endpoint, upstream);

    public Gauge.Child Breaker { get; } = metrics.Breaker.WithLabels(service, endpoint, "endpoint", upstream);

    public Counter.Child Errors { get; } = metrics.UpstreamRequests.WithLabels(service, endpoint, upstream, "error");

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

        metrics.UpstreamRequests.RemoveLabelled(service, endpoint, upstream, "error");
        metrics.UpstreamDuration.RemoveLabelled(service, endpoint, upstream);
        metrics.Ejected.RemoveLabelled(service, endpoint, upstream);
        metrics.Ejections.RemoveLabelled(service, endpoint, upstream);
        metrics.Breaker.RemoveLabelled(service, endpoint, "endpoint", upstream);
        metrics.UpstreamConnections.RemoveLabelled(service, endpoint, upstream);
        metrics.ConnectFailures.RemoveLabelled(service, endpoint, upstream);
        metrics.Healthy.RemoveLabelled(service, endpoint, upstream);
    }

    public Counter.Child Status(int code) =>
        _codes.GetOrAdd(code, static (c, s) => s.metrics.UpstreamRequests.WithLabels(s.service, s.endpoint, s.upstream, c.ToString(CultureInfo.InvariantCulture)), (metrics, service, endpoint, upstream));
}

/// <summary>
/// One listener's live routing state. <see cref="Update"/> swaps in a new snapshot atomically; requests already running
/// keep the snapshot they started with, and endpoint state (load, health, breakers) carries over by address.
/// </summary>
internal sealed class ServiceState
{
    [ThreadStatic]
    private static List<EndpointState>? t_candidates;

    private readonly MeshMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly Random _random;
    private readonly ILogger _logger;
    private readonly Lock _updateLock = new();
    private readonly ConcurrentDictionary<int, Counter.Child> _codes = new();
    private Dictionary<string, EndpointState> _byKey = [];
    private ActiveHealthChecker? _checker;
    private volatile RouteSnapshot? _snapshot;
    private int _active;
    private int _pending;

    public ServiceState(ServiceRoute route, MeshMetrics metrics, TimeProvider time, Random random, ILogger logger)
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
        Update(route);
    }

    public string Service { get; }

    public string EndpointName { get; }

    public RouteSnapshot Snapshot => _snapshot!;

    public TimeProvider Time => _time;

    public Random Random => _random;

    public ILogger Logger => _logger;

    public MeshMetrics Metrics => _metrics;

    /// <summary>Where each proxied request's span goes; null: nowhere.</summary>
    public IMeshSpanSink? Spans { get; init; }

    public Histogram.Child RequestDuration { get; }

    public Gauge.Child ActiveGauge { get; }

    public Gauge.Child OpenConnections { get; }

    public ref int Active => ref _active;

    public ref int Pending => ref _pending;

    public Counter.Child Requests(int code) =>
        _codes.GetOrAdd(code, static (c, s) => s._metrics.Requests.WithLabels(s.Service, s.EndpointName, c.ToString(CultureInfo.InvariantCulture)), this);

    /// <summary>Applies a new route: same listener, new upstreams and policy. Throws <see cref="ArgumentException"/> on a bad policy.</summary>
    public void Update(ServiceRoute route)
    {
        var where = $"service {route.Service}, endpoint {route.Endpoint.Name}";
        var policy = route.Policy;
        var retry = RetryConditions.Parse(policy.Retries, where);
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
                    var e = new EndpointState(u, NewEndpointBreaker(policy.CircuitBreaker, u.ReplicaId), _time);
                    e.Series = new UpstreamSeries(_metrics, Service, EndpointName, u.ReplicaId);
                    e.Series.Healthy.Set(1);
                    byKey[key] = e;
                }
            }

            foreach (var (key, gone) in _byKey)
            {
                if (!byKey.ContainsKey(key))
                {
                    gone.Series.Remove();
                }
            }

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
        }

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

    /// <summary>The endpoints a request may go to: a header-matched version, else a weighted draw, else all.</summary>
    public EndpointState[] SelectGroup(RouteSnapshot s, Func<string, string?>? header)
    {
        if (header is not null)
        {
            foreach (var r in s.HeaderRoutes)
            {
                if (r.Members.Length > 0 && string.Equals(header(r.Split.HeaderName!), r.Split.HeaderValue, StringComparison.Ordinal))
                {
                    return r.Members;
                }
            }
        }

        if (s.TotalWeight > 0)
        {
            var draw = _random.Next(s.TotalWeight);
            foreach (var r in s.WeightedRoutes)
            {
                if (draw < r.Split.Weight)
                {
                    return r.Members;
                }

                draw -= r.Split.Weight;
            }
        }

        return s.All;
    }

    /// <summary>
    /// Picks an endpoint from <paramref name="group"/> and takes a permit from its breaker. Prefers healthy endpoints
    /// not yet tried by this request; then healthy tried ones; then ejected or actively-unhealthy ones (a version whose
    /// every replica is out still gets traffic rather than none, as Envoy's panic mode). Null when every endpoint's breaker is open.
    /// </summary>
    public EndpointState? Choose(RouteSnapshot s, EndpointState[] group, List<EndpointState>? tried, string? hashKey, out BreakerPermit permit)
    {
        permit = BreakerPermit.Rejected;
        if (group.Length == 0)
        {
            return null;
        }

        var candidates = t_candidates ??= new List<EndpointState>(8);
        try
        {
            for (var pass = 0; pass < 3; pass++)
            {
                candidates.Clear();
                foreach (var e in group)
                {
                    if (pass < 2 && (!e.Health.Healthy || IsEjected(s, e)))
                    {
                        continue;
                    }

                    if (pass == 0 && tried is not null && tried.Contains(e))
                    {
                        continue;
                    }

                    if (e.Breaker.MayAdmit)
                    {
                        candidates.Add(e);
                    }
                }

                while (candidates.Count > 0)
                {
                    var pick = s.Balancer.Pick(candidates, hashKey);
                    permit = pick.Breaker.TryEnter();
                    if (permit != BreakerPermit.Rejected)
                    {
                        return pick;
                    }

                    candidates.Remove(pick);
                }
            }

            return null;
        }
        finally
        {
            candidates.Clear();
        }
    }

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

    private bool IsEjected(RouteSnapshot s, EndpointState e)
    {
        var ejected = s.Outliers.IsEjected(e.Outlier, out var returned);
        if (returned)
        {
            e.Series.Ejected.Set(0);
            Log.Returned(_logger, e.ToString(), Service, EndpointName);
        }

        return ejected;
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

    private static (string Kind, string Name)? ParseHashOn(MeshPolicy policy, string where)
    {
        if (policy.LoadBalancing != LoadBalancing.ConsistentHash)
        {
            return null;
        }

        var text = policy.HashOn?.Trim();
        var colon = text?.IndexOf(':', StringComparison.Ordinal) ?? -1;
        if (text is null || colon <= 0 || colon == text.Length - 1)
        {
            throw new ArgumentException($"{where}: loadBalancing consistent-hash needs hashOn such as 'header:X-User' or 'cookie:session' (got '{policy.HashOn}')");
        }

        var kind = text[..colon].Trim().ToLowerInvariant();
        if (kind is not ("header" or "cookie"))
        {
            throw new ArgumentException($"{where}: hashOn '{policy.HashOn}' must start with 'header:' or 'cookie:'");
        }

        return (kind, text[(colon + 1)..].Trim());
    }
}
