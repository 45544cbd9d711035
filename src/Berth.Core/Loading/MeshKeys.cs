using System.Collections.Immutable;
using Berth.Core.Model;
using YamlDotNet.RepresentationModel;

namespace Berth.Core.Loading;

internal sealed partial class SpecReader
{
    internal static readonly IReadOnlyDictionary<string, LoadBalancing> LoadBalancingNames = new Dictionary<string, LoadBalancing>
    {
        ["least-request"] = LoadBalancing.LeastRequest,
        ["round-robin"] = LoadBalancing.RoundRobin,
        ["peak-ewma"] = LoadBalancing.PeakEwma,
        ["random"] = LoadBalancing.Random,
        ["consistent-hash"] = LoadBalancing.ConsistentHash,
        ["least-connections"] = LoadBalancing.LeastConnections,
    };

    private MeshPolicy? ReadMesh(YamlNode v, string p)
    {
        var map = Mapping(v, p, "a mapping of mesh settings (lb:, timeout:, retries:, …)");
        if (map is null)
        {
            return null;
        }

        var mesh = new Box<MeshPolicy>(MeshPolicy.Default);
        ReadKeys(map, p, MeshKeys, mesh);
        if (mesh.V.LoadBalancing == LoadBalancing.ConsistentHash && mesh.V.HashOn is null)
        {
            Error(map.Children.TryGetValue(new YamlScalarNode("lb"), out var lb) ? lb : map, Join(p, "lb"),
                "consistent-hash needs hash_on: header:NAME or cookie:NAME to say what to hash");
        }

        return mesh.V;
    }

    private TimeSpan? OptionalTimeout(YamlNode v, string p) =>
        String(v, p) is "none" or "off" ? null : Duration(v, p, allowZero: false);

    private static readonly KeyTable<Box<RetryPolicy>> RetryKeys = new("mesh.retries")
    {
        ["attempts"] = (r, v, p, b) => b.V = b.V with { Attempts = r.Int(v, p, 0, 10) ?? b.V.Attempts },
        ["on"] = (r, v, p, b) =>
        {
            var on = r.Strings(v, p);
            foreach (var item in on)
            {
                if (!RetryConditions.IsValid(item))
                {
                    r.Error(v, p, $"'{item}' is not a retry condition; {RetryConditions.Expected}");
                }
            }

            b.V = b.V with { On = on };
        },
        ["non_idempotent"] = (r, v, p, b) => b.V = b.V with { NonIdempotent = r.Bool(v, p) ?? false },
        ["max_buffered_body"] = (r, v, p, b) => b.V = b.V with { MaxBufferedBody = r.Memory(v, p) ?? b.V.MaxBufferedBody },
        ["backoff_base"] = (r, v, p, b) => b.V = b.V with { BackoffBase = r.Duration(v, p) ?? b.V.BackoffBase },
        ["backoff_max"] = (r, v, p, b) => b.V = b.V with { BackoffMax = r.Duration(v, p) ?? b.V.BackoffMax },
        ["budget_ratio"] = (r, v, p, b) => b.V = b.V with { BudgetRatio = r.Double(v, p, 0, 1) ?? b.V.BudgetRatio },
        ["budget_min_per_second"] = (r, v, p, b) => b.V = b.V with { BudgetMinPerSecond = r.Int(v, p, min: 0) ?? b.V.BudgetMinPerSecond },
        ["budget_window"] = (r, v, p, b) => b.V = b.V with { BudgetWindow = r.Duration(v, p, allowZero: false) ?? b.V.BudgetWindow },
    };

    private static readonly KeyTable<Box<CircuitBreakerPolicy>> BreakerKeys = new("mesh.circuit_breaker")
    {
        ["enabled"] = (r, v, p, b) => b.V = b.V with { Enabled = r.Bool(v, p) ?? b.V.Enabled },
        ["consecutive_failures"] = (r, v, p, b) => b.V = b.V with { ConsecutiveFailures = r.Int(v, p, min: 1) ?? b.V.ConsecutiveFailures },
        ["failure_ratio"] = (r, v, p, b) => b.V = b.V with { FailureRatio = r.Double(v, p, 0, 1) ?? b.V.FailureRatio },
        ["sampling_window"] = (r, v, p, b) => b.V = b.V with { SamplingWindow = r.Duration(v, p, allowZero: false) ?? b.V.SamplingWindow },
        ["minimum_throughput"] = (r, v, p, b) => b.V = b.V with { MinimumThroughput = r.Int(v, p, min: 1) ?? b.V.MinimumThroughput },
        ["break_duration"] = (r, v, p, b) => b.V = b.V with { BreakDuration = r.Duration(v, p, allowZero: false) ?? b.V.BreakDuration },
        ["half_open_requests"] = (r, v, p, b) => b.V = b.V with { HalfOpenRequests = r.Int(v, p, min: 1) ?? b.V.HalfOpenRequests },
    };

    private static readonly KeyTable<Box<OutlierDetectionPolicy>> OutlierKeys = new("mesh.outlier_detection")
    {
        ["enabled"] = (r, v, p, b) => b.V = b.V with { Enabled = r.Bool(v, p) ?? b.V.Enabled },
        ["consecutive_5xx"] = (r, v, p, b) => b.V = b.V with { Consecutive5xx = r.Int(v, p, min: 1) ?? b.V.Consecutive5xx },
        ["consecutive_gateway_errors"] = (r, v, p, b) => b.V = b.V with { ConsecutiveGatewayErrors = r.Int(v, p, min: 1) ?? b.V.ConsecutiveGatewayErrors },
        ["base_ejection_time"] = (r, v, p, b) => b.V = b.V with { BaseEjectionTime = r.Duration(v, p, allowZero: false) ?? b.V.BaseEjectionTime },
        ["max_ejection_time"] = (r, v, p, b) => b.V = b.V with { MaxEjectionTime = r.Duration(v, p, allowZero: false) ?? b.V.MaxEjectionTime },
        ["max_ejection_percent"] = (r, v, p, b) => b.V = b.V with { MaxEjectionPercent = r.Int(v, p, 0, 100) ?? b.V.MaxEjectionPercent },
        ["interval"] = (r, v, p, b) => b.V = b.V with { Interval = r.Duration(v, p, allowZero: false) ?? b.V.Interval },
    };

    private static readonly KeyTable<Box<ConnectionLimits>> LimitsKeys = new("mesh.limits")
    {
        ["max_connections"] = (r, v, p, b) => b.V = b.V with { MaxConnections = r.Int(v, p, min: 1) ?? b.V.MaxConnections },
        ["max_pending_requests"] = (r, v, p, b) => b.V = b.V with { MaxPendingRequests = r.Int(v, p, min: 0) ?? b.V.MaxPendingRequests },
        ["max_requests"] = (r, v, p, b) => b.V = b.V with { MaxRequests = r.Int(v, p, min: 1) ?? b.V.MaxRequests },
    };

    private static readonly KeyTable<Box<MeshPolicy>> MeshKeys = new("mesh")
    {
        ["lb"] = (r, v, p, b) => b.V = b.V with { LoadBalancing = r.Enum(v, p, LoadBalancingNames) ?? b.V.LoadBalancing },
        ["hash_on"] = (r, v, p, b) =>
        {
            var text = r.String(v, p);
            if (text is not null && HashKey.TryParse(text) is null)
            {
                r.Error(v, p, $"'{text}' must be {HashKey.Expected}");
            }

            b.V = b.V with { HashOn = text };
        },
        ["timeout"] = (r, v, p, b) => b.V = b.V with { Timeout = r.OptionalTimeout(v, p) },
        ["per_try_timeout"] = (r, v, p, b) => b.V = b.V with { PerTryTimeout = r.OptionalTimeout(v, p) },
        ["retries"] = (r, v, p, b) =>
        {
            if (r.Mapping(v, p, "a mapping of retry settings (attempts:, on:, …)") is { } m)
            {
                var retry = new Box<RetryPolicy>(RetryPolicy.Default);
                r.ReadKeys(m, p, RetryKeys, retry);
                b.V = b.V with { Retries = retry.V };
            }
        },
        ["circuit_breaker"] = (r, v, p, b) =>
        {
            if (r.Mapping(v, p, "a mapping of circuit breaker settings") is { } m)
            {
                var breaker = new Box<CircuitBreakerPolicy>(CircuitBreakerPolicy.Default);
                r.ReadKeys(m, p, BreakerKeys, breaker);
                b.V = b.V with { CircuitBreaker = breaker.V };
            }
        },
        ["outlier_detection"] = (r, v, p, b) =>
        {
            if (r.Mapping(v, p, "a mapping of outlier detection settings") is { } m)
            {
                var outlier = new Box<OutlierDetectionPolicy>(OutlierDetectionPolicy.Default);
                r.ReadKeys(m, p, OutlierKeys, outlier);
                b.V = b.V with { OutlierDetection = outlier.V };
            }
        },
        ["limits"] = (r, v, p, b) =>
        {
            if (r.Mapping(v, p, "a mapping of connection limits") is { } m)
            {
                var limits = new Box<ConnectionLimits>(ConnectionLimits.Default);
                r.ReadKeys(m, p, LimitsKeys, limits);
                b.V = b.V with { Limits = limits.V };
            }
        },
        ["split"] = (r, v, p, b) => b.V = b.V with { Split = r.ReadSplit(v, p) },
        ["access_log"] = (r, v, p, b) => b.V = b.V with { AccessLog = r.Bool(v, p) ?? false },
    };

    private ImmutableArray<TrafficSplit> ReadSplit(YamlNode v, string p)
    {
        var seq = Sequence(v, p, "a list of {version:, weight:} routes");
        if (seq is null)
        {
            return [];
        }

        var routes = ImmutableArray.CreateBuilder<TrafficSplit>();
        for (var i = 0; i < seq.Children.Count; i++)
        {
            var ip = Index(p, i);
            if (Mapping(seq.Children[i], ip, "a route: {version: 2, weight: 10}") is not { } m)
            {
                continue;
            }

            var route = new Box<TrafficSplit>(new TrafficSplit { Version = "" });
            ReadKeys(m, ip, SplitKeys, route);
            if (route.V.Version.Length == 0)
            {
                Error(m, ip, "needs version: (a revision number or a label such as version=v2)");
            }

            routes.Add(route.V);
        }

        var weighted = routes.Where(r => r.HeaderName is null).ToList();
        var sum = weighted.Sum(r => r.Weight);
        if (weighted.Count > 0 && sum != 100)
        {
            Error(seq, p, $"weights add up to {sum}; make the weights of the routes without a header add up to 100");
        }

        return routes.ToImmutable();
    }

    private static readonly KeyTable<Box<TrafficSplit>> SplitKeys = new("a split route")
    {
        ["version"] = (r, v, p, b) => b.V = b.V with { Version = r.String(v, p) ?? "" },
        ["weight"] = (r, v, p, b) => b.V = b.V with { Weight = r.Int(v, p, 0, 100) ?? 0 },
        ["header"] = (r, v, p, b) =>
        {
            // header: "X-Canary: true"
            var text = r.String(v, p);
            var colon = text?.IndexOf(':', StringComparison.Ordinal) ?? -1;
            if (text is null || colon <= 0)
            {
                if (text is not null)
                {
                    r.Error(v, p, $"'{text}' must be 'Name: value', e.g. 'X-Canary: true'");
                }

                return;
            }

            b.V = b.V with { HeaderName = text[..colon].Trim(), HeaderValue = text[(colon + 1)..].Trim() };
        },
    };

    private AutoscalePolicy? ReadAutoscale(YamlNode v, string p)
    {
        var map = Mapping(v, p, "a mapping with min:, max: and target_cpu: or target_rps:");
        if (map is null)
        {
            return null;
        }

        var policy = new Box<AutoscalePolicy>(new AutoscalePolicy { Max = 0 });
        ReadKeys(map, p, AutoscaleKeys, policy);
        if (!map.Children.ContainsKey(new YamlScalarNode("max")))
        {
            Error(map, p, "needs max: (the most replicas to scale to)");
        }
        else if (policy.V.Max < policy.V.Min)
        {
            Error(map.Children[new YamlScalarNode("max")], Join(p, "max"), $"max {policy.V.Max} is below min {policy.V.Min}; make max at least min");
        }

        if (policy.V.TargetCpuPercent is null && policy.V.TargetRequestsPerSecond is null)
        {
            Error(map, p, "needs a target: target_cpu: 70 (percent of the CPU request) or target_rps: 100 (requests per second per replica)");
        }

        return policy.V;
    }

    private static readonly KeyTable<Box<AutoscalePolicy>> AutoscaleKeys = new("autoscale")
    {
        ["min"] = (r, v, p, b) => b.V = b.V with { Min = r.Int(v, p, min: 1) ?? b.V.Min },
        ["max"] = (r, v, p, b) => b.V = b.V with { Max = r.Int(v, p, min: 1) ?? b.V.Max },
        ["target_cpu"] = (r, v, p, b) =>
        {
            var text = r.String(v, p);
            if (text is null)
            {
                return;
            }

            if (!int.TryParse(text.Trim().TrimEnd('%'), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var percent)
                || percent is < 1 or > 1000)
            {
                r.Error(v, p, $"must be a CPU percentage between 1 and 1000, got '{text}'");
                return;
            }

            b.V = b.V with { TargetCpuPercent = percent };
        },
        ["target_rps"] = (r, v, p, b) => b.V = b.V with { TargetRequestsPerSecond = r.Double(v, p, 0.001) },
        ["tolerance"] = (r, v, p, b) => b.V = b.V with { Tolerance = r.Double(v, p, 0, 1) ?? b.V.Tolerance },
        ["scale_down_stabilization"] = (r, v, p, b) => b.V = b.V with { ScaleDownStabilization = r.Duration(v, p) ?? b.V.ScaleDownStabilization },
    };
}
