using System.Collections.Immutable;

namespace Berth.Core.Model;

/// <summary>A whole application: the services, the nodes they are placed on, the scheduler policy and the pipelines.</summary>
public sealed record Application
{
    /// <summary>The app name; from <c>name:</c>, else the spec folder's name, as Compose's project name.</summary>
    public required string Name { get; init; }

    /// <summary>Services in spec order; names unique.</summary>
    public ImmutableArray<Service> Services { get; init; } = [];

    /// <summary>Nodes to place replicas on. Empty means one node: this machine's cores and memory.</summary>
    public ImmutableArray<Node> Nodes { get; init; } = [];

    public SchedulerPolicy Scheduler { get; init; } = SchedulerPolicy.LeastLoaded;

    /// <summary>Pipelines declared under <c>pipelines:</c>; Berth.Pipelines parses them from their source.</summary>
    public ImmutableArray<PipelineRef> Pipelines { get; init; } = [];

    /// <summary>Absolute path of the spec file this was loaded from, or null when built in code.</summary>
    public string? SourceFile { get; init; }

    /// <summary>The folder relative paths resolve against (the spec's folder).</summary>
    public string BaseDirectory { get; init; } = Environment.CurrentDirectory;

    /// <summary>Named volumes declared at the top level (Compose <c>volumes:</c>).</summary>
    public ImmutableArray<string> Volumes { get; init; } = [];

    /// <summary>Telemetry settings (<c>telemetry:</c>): how much the control plane keeps and where it forwards it.</summary>
    public TelemetrySpec Telemetry { get; init; } = TelemetrySpec.Default;

    public Service? FindService(string name) => Services.FirstOrDefault(s => s.Name == name);
}

/// <summary>The <c>telemetry:</c> section: limits of the in-memory telemetry store (null: the control plane's defaults,
/// docs/spec.md) and an OTLP collector to forward everything to.</summary>
public sealed record TelemetrySpec
{
    public static readonly TelemetrySpec Default = new();

    /// <summary>An OTLP/HTTP collector (<c>http://host:4318</c>) that gets a copy of every export; null: none.</summary>
    public Uri? OtlpEndpoint { get; init; }

    public int? MaxSpans { get; init; }

    public int? MaxLogs { get; init; }

    public int? MaxMetricPoints { get; init; }
}

/// <summary>A slice of the machine that replicas are placed on; each node is a cgroup with its own CPU set and memory cap.</summary>
public sealed record Node(string Name, CpuQuantity Cpu, ByteSize Memory)
{
    public ImmutableSortedDictionary<string, string> Labels { get; init; } = ImmutableSortedDictionary<string, string>.Empty;
}

/// <summary>How the scheduler scores the nodes that fit a replica.</summary>
public enum SchedulerPolicy
{
    /// <summary>Least allocated first, spreading load (Kubernetes' default LeastAllocated scoring).</summary>
    LeastLoaded,

    /// <summary>Nodes in turn.</summary>
    RoundRobin,

    /// <summary>Most allocated first, packing replicas tightly (Kubernetes' MostAllocated).</summary>
    BinPack,

    /// <summary>A random node that fits.</summary>
    Random,
}

/// <summary>Where a pipeline definition sits, so Berth.Pipelines can parse it with its own positions.</summary>
public sealed record PipelineRef(string Name, string SourceFile, int Line, int Column)
{
    /// <summary>SHA-256 of the definition as loaded, so an apply that changes only a pipeline (its triggers, say) is a change of
    /// the desired state and makes a revision, which is what re-arms the pipeline's triggers.</summary>
    public string? Digest { get; init; }
}

/// <summary>Which driver runs a service's replicas.</summary>
public enum RuntimeKind
{
    /// <summary>Process when the service has <c>run</c>, Docker when it has only <c>image</c>/<c>build</c>.</summary>
    Auto,
    Process,
    Docker,
}
