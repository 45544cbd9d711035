using Berth.Core.Model;
using k8s.Models;

namespace Berth.Kubernetes;

/// <summary>How a public TCP endpoint (a Compose published port that is not HTTP) is reachable from outside the cluster.</summary>
public enum PublishedServiceType
{
    /// <summary>A Service of type LoadBalancer, as a cloud cluster gives an address to (kompose's choice for published ports).</summary>
    LoadBalancer,

    /// <summary>A Service of type NodePort, for clusters without a load balancer (kind, bare metal).</summary>
    NodePort,
}

/// <summary>
/// Public TCP endpoints cannot go through an Ingress (it routes HTTP), so they get their own Service <c>{name}-public</c>
/// of type LoadBalancer or NodePort, on the published port, in front of the same pods. Public HTTP endpoints keep the
/// Ingress. Together a Compose file's published ports are reachable from outside the cluster, as they are from outside
/// the machine under docker compose.
/// </summary>
internal static class PublishedPorts
{
    public static V1Service? ExternalService(Service service, string name, GenerateOptions options, IDictionary<string, string> labels,
        IDictionary<string, string> selector, IReadOnlyList<V1ServicePort> ports)
    {
        var published = service.Endpoints
            .Where(e => e.Public && e.Protocol == EndpointProtocol.Tcp)
            .Select(e => (Endpoint: e, Port: ports.FirstOrDefault(p => p.Name == KubeNames.Port(e.Name))))
            .Where(x => x.Port is not null)
            .Select(x => new V1ServicePort { Name = x.Port!.Name, Port = x.Endpoint.Port ?? x.Port.Port, TargetPort = x.Port.TargetPort, Protocol = "TCP" })
            .ToList();
        if (published.Count == 0)
        {
            return null;
        }

        return new V1Service
        {
            ApiVersion = "v1",
            Kind = "Service",
            Metadata = new V1ObjectMeta { Name = $"{name}-public", NamespaceProperty = options.Namespace, Labels = labels },
            Spec = new V1ServiceSpec
            {
                Type = options.PublishedTcp == PublishedServiceType.NodePort ? "NodePort" : "LoadBalancer",
                Selector = selector,
                Ports = published,
            },
        };
    }
}
