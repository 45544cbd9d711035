namespace Berth.Kubernetes;

/// <summary>Which service mesh the generated resources target.</summary>
public enum MeshTarget
{
    /// <summary>Plain Kubernetes: the mesh policies are not carried over (a warning names what is lost).</summary>
    None,

    /// <summary>Istio: a DestinationRule and a VirtualService per service from its mesh policy.</summary>
    Istio,
}

/// <summary>Options of <c>berth k8s generate</c>.</summary>
public sealed record GenerateOptions
{
    /// <summary>Namespace stamped on every object (and a Namespace object emitted); null: none, the cluster's context decides.</summary>
    public string? Namespace { get; init; }

    public MeshTarget Mesh { get; init; } = MeshTarget.None;

    /// <summary>Ingress hosts become <c>{service}.{IngressDomain}</c>; null: Ingress rules without a host.</summary>
    public string? IngressDomain { get; init; }

    /// <summary>The Service type that makes public TCP endpoints (Compose published ports) reachable from outside the cluster.</summary>
    public PublishedServiceType PublishedTcp { get; init; } = PublishedServiceType.LoadBalancer;

    /// <summary>Size requested for each PersistentVolumeClaim; <see cref="GenerateDefaults.VolumeSize"/> unless set.</summary>
    public string VolumeSize { get; init; } = GenerateDefaults.VolumeSize;
}

/// <summary>Defaults of the generator, each named after the peer it follows.</summary>
public static class GenerateDefaults
{
    /// <summary>Container port when an endpoint names neither a target nor a published port: 8080, as the .NET container images' ASPNETCORE_HTTP_PORTS.</summary>
    public const int ContainerPort = 8080;

    /// <summary>1Gi per volume claim: kompose requests 100Mi, which few databases fit in; size it with --volume-size.</summary>
    public const string VolumeSize = "1Gi";

    /// <summary>80% CPU when autoscale names no target, as <c>kubectl autoscale</c> and the HPA controller default.</summary>
    public const int TargetCpuPercent = 80;

    /// <summary>A PodDisruptionBudget lets one pod go at a time, as a node drain moves them one by one.</summary>
    public const int DisruptionMaxUnavailable = 1;

    /// <summary>Retries of a one-shot Job before it is marked failed: 6, as Kubernetes' Job backoffLimit.</summary>
    public const int JobBackoffLimit = 6;

    /// <summary>The field manager of server-side apply, as kubectl uses <c>kubectl</c>.</summary>
    public const string FieldManager = "berth";

    /// <summary>The metric a requests-per-second autoscale target reads through a custom-metrics adapter (prometheus-adapter's convention).</summary>
    public const string RequestsPerSecondMetric = "http_requests_per_second";
}
