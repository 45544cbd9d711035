using k8s;
using k8s.Models;

namespace Berth.Kubernetes.Istio;

// Typed records for the Istio fields Berth emits (networking.istio.io/v1). Property names are the camelCase
// field names of Istio's API; null members are left out of the YAML.

/// <summary>Istio DestinationRule: load balancing, connection pool and outlier detection of a host.</summary>
public sealed class DestinationRule : IKubernetesObject<V1ObjectMeta>
{
    public const string GroupVersion = "networking.istio.io/v1";

    public string ApiVersion { get; set; } = GroupVersion;

    public string Kind { get; set; } = "DestinationRule";

    public V1ObjectMeta Metadata { get; set; } = new();

    public DestinationRuleSpec Spec { get; set; } = new();
}

public sealed class DestinationRuleSpec
{
    public string Host { get; set; } = "";

    public TrafficPolicy? TrafficPolicy { get; set; }

    public List<Subset>? Subsets { get; set; }
}

public sealed class TrafficPolicy
{
    public LoadBalancerSettings? LoadBalancer { get; set; }

    public ConnectionPoolSettings? ConnectionPool { get; set; }

    public OutlierDetection? OutlierDetection { get; set; }
}

public sealed class LoadBalancerSettings
{
    /// <summary>LEAST_REQUEST, ROUND_ROBIN, RANDOM.</summary>
    public string? Simple { get; set; }

    public ConsistentHash? ConsistentHash { get; set; }
}

public sealed class ConsistentHash
{
    public string? HttpHeaderName { get; set; }

    public HttpCookie? HttpCookie { get; set; }

    public bool? UseSourceIp { get; set; }
}

public sealed class HttpCookie
{
    public string Name { get; set; } = "";

    public string? Ttl { get; set; }
}

public sealed class ConnectionPoolSettings
{
    public TcpSettings? Tcp { get; set; }

    public HttpSettings? Http { get; set; }
}

public sealed class TcpSettings
{
    public int? MaxConnections { get; set; }
}

public sealed class HttpSettings
{
    public int? Http1MaxPendingRequests { get; set; }

    public int? Http2MaxRequests { get; set; }
}

public sealed class OutlierDetection
{
    public int? Consecutive5xxErrors { get; set; }

    public int? ConsecutiveGatewayErrors { get; set; }

    public string? Interval { get; set; }

    public string? BaseEjectionTime { get; set; }

    public int? MaxEjectionPercent { get; set; }
}

public sealed class Subset
{
    public string Name { get; set; } = "";

    public Dictionary<string, string> Labels { get; set; } = [];
}

/// <summary>Istio VirtualService: routes (header matches, weighted split), timeouts and retries of a host.</summary>
public sealed class VirtualService : IKubernetesObject<V1ObjectMeta>
{
    public string ApiVersion { get; set; } = DestinationRule.GroupVersion;

    public string Kind { get; set; } = "VirtualService";

    public V1ObjectMeta Metadata { get; set; } = new();

    public VirtualServiceSpec Spec { get; set; } = new();
}

public sealed class VirtualServiceSpec
{
    public List<string> Hosts { get; set; } = [];

    public List<HttpRoute> Http { get; set; } = [];
}

public sealed class HttpRoute
{
    public string? Name { get; set; }

    public List<HttpMatchRequest>? Match { get; set; }

    public List<HttpRouteDestination> Route { get; set; } = [];

    public string? Timeout { get; set; }

    public HttpRetry? Retries { get; set; }
}

public sealed class HttpMatchRequest
{
    public Dictionary<string, StringMatch> Headers { get; set; } = [];
}

public sealed class StringMatch
{
    public string? Exact { get; set; }
}

public sealed class HttpRouteDestination
{
    public Destination Destination { get; set; } = new();

    public int? Weight { get; set; }
}

public sealed class Destination
{
    public string Host { get; set; } = "";

    public string? Subset { get; set; }
}

public sealed class HttpRetry
{
    public int Attempts { get; set; }

    public string? PerTryTimeout { get; set; }

    public string? RetryOn { get; set; }
}
