using System.Collections.Immutable;

namespace Berth.Core.Model;

/// <summary>One service: what to run, how many, how to reach it, how to keep it healthy and how to roll it.</summary>
public sealed record Service
{
    public required string Name { get; init; }

    /// <summary>Container image (Docker driver).</summary>
    public string? Image { get; init; }

    /// <summary>How to build the image (Docker) or the program (process).</summary>
    public BuildSpec? Build { get; init; }

    /// <summary>Argv that replaces the image's entrypoint (Docker only).</summary>
    public ImmutableArray<string>? Entrypoint { get; init; }

    /// <summary>Argv to run: the process for the process driver, the command (args) for Docker.
    /// From berth.yaml <c>run:</c> / Compose <c>command:</c>.</summary>
    public ImmutableArray<string> Command { get; init; } = [];

    /// <summary>Run <see cref="Command"/> through <c>/bin/sh -c</c>. Off by default: argv is executed directly.
    /// With it, a <c>run:</c> string is kept whole as the single element of <see cref="Command"/>.</summary>
    public bool Shell { get; init; }

    public string? WorkingDir { get; init; }

    public string? User { get; init; }

    /// <summary>A process replica gets the control plane's whole environment under its own (berth.yaml <c>inherit_env</c>);
    /// off by default: only a minimal set is passed on (see <c>InheritedEnvironment</c> in Berth.Runtime). A container
    /// inherits nothing either way, as Compose.</summary>
    public bool InheritEnv { get; init; }

    /// <summary>Which driver runs it; <see cref="RuntimeKind.Auto"/> decides from run/image.</summary>
    public RuntimeKind Runtime { get; init; } = RuntimeKind.Auto;

    public int Replicas { get; init; } = ServiceDefaults.Replicas;

    /// <summary>Environment after env files and interpolation, env files first then <c>environment:</c>.</summary>
    public ImmutableSortedDictionary<string, string> Env { get; init; } = ImmutableSortedDictionary<string, string>.Empty;

    /// <summary>Names of env vars whose values are secret: masked in logs, events, API and dashboard.</summary>
    public ImmutableSortedSet<string> SecretEnv { get; init; } = [];

    /// <summary>How the replica's logs are rotated on disk (berth.yaml <c>logging: {max_size, max_file}</c>, Compose's
    /// <c>logging.options.max-size/max-file</c>); both runtimes.</summary>
    public LogRotation Logging { get; init; } = LogRotation.Default;

    /// <summary>Env files as written (already merged into <see cref="Env"/>).</summary>
    public ImmutableArray<string> EnvFiles { get; init; } = [];

    public ImmutableArray<Endpoint> Endpoints { get; init; } = [];

    public ImmutableArray<VolumeMount> Volumes { get; init; } = [];

    public Resources Resources { get; init; } = Resources.None;

    public Probe? Liveness { get; init; }

    public Probe? Readiness { get; init; }

    public Probe? Startup { get; init; }

    public RestartPolicy Restart { get; init; } = RestartPolicy.Default;

    public UpdateStrategy Update { get; init; } = UpdateStrategy.Default;

    /// <summary>How a rollback is rolled out (Compose <c>deploy.rollback_config</c>); null: the same as <see cref="Update"/>.</summary>
    public UpdateStrategy? Rollback { get; init; }

    public ImmutableArray<Dependency> DependsOn { get; init; } = [];

    public MeshPolicy Mesh { get; init; } = MeshPolicy.Default;

    public AutoscalePolicy? Autoscale { get; init; }

    /// <summary>SIGTERM, then SIGKILL after this long. 10s, as Docker's stop timeout.</summary>
    public TimeSpan StopGracePeriod { get; init; } = ServiceDefaults.StopGracePeriod;

    public ImmutableSortedDictionary<string, string> Labels { get; init; } = ImmutableSortedDictionary<string, string>.Empty;

    public ImmutableArray<string> Profiles { get; init; } = [];

    /// <summary>Compose's <c>deploy.labels</c>: labels of the service (Swarm's service labels; a Deployment's on Kubernetes),
    /// not of its containers.</summary>
    public ImmutableSortedDictionary<string, string> DeployLabels { get; init; } = ImmutableSortedDictionary<string, string>.Empty;

    /// <summary>Secrets and configs mounted into each replica as files (Compose <c>secrets:</c> and <c>configs:</c>).</summary>
    public ImmutableArray<MountedFile> Files { get; init; } = [];

    /// <summary>Container settings passed to Docker as Compose passes them (Docker driver only).</summary>
    public ContainerOptions Container { get; init; } = ContainerOptions.None;

    /// <summary>When the image is pulled or built (Compose <c>pull_policy</c>).</summary>
    public PullPolicy PullPolicy { get; init; } = PullPolicy.Missing;

    /// <summary>Whether replicas run in pods (a network namespace each, holding only loopback) or on the host network
    /// (berth.yaml <c>network:</c>, Compose <c>network_mode:</c>); <see cref="NetworkMode.Auto"/> decides by runtime.</summary>
    public NetworkMode Network { get; init; } = NetworkMode.Auto;

    /// <summary>What <c>berth watch</c> does when a file changes (berth.yaml and Compose <c>develop.watch</c>); empty: rebuild the
    /// service when a file in its build folder changes.</summary>
    public ImmutableArray<WatchRule> Watch { get; init; } = [];

    /// <summary>berth.yaml <c>develop.hot_reload</c>, for a process service that is a .NET project: each replica runs
    /// <c>dotnet watch run</c> in the project's folder instead of <see cref="Command"/>, so a saved edit is applied in place
    /// by Hot Reload (the process keeps running); an edit Hot Reload cannot apply restarts the app inside its replica. A
    /// development setting: <c>berth watch</c> leaves the service's code changes to it.</summary>
    public bool HotReload { get; init; }

    /// <summary>Whether this service's pods get a userspace network to the outside (berth.yaml <c>egress: true</c>, Compose
    /// <c>x-berth: {egress: true}</c>): slirp4netns, where installed, gives each process pod a tap device and a default
    /// route. Off by default: a pod holds only loopback (see docs/spec.md, "Egress from pods").</summary>
    public bool Egress { get; init; }

    /// <summary>More names that resolve to this service's virtual address in every pod: Compose <c>container_name</c>,
    /// <c>hostname</c>, <c>links</c> aliases and network <c>aliases</c>.</summary>
    public ImmutableArray<string> Aliases { get; init; } = [];

    /// <summary>The network once <see cref="NetworkMode.Auto"/> is resolved: Docker services isolated, as Compose gives every
    /// container its own network namespace; process services on the host network, as Aspire and Tye run projects, so a
    /// debugger and localhost tools keep working.</summary>
    public NetworkMode EffectiveNetwork =>
        Network != NetworkMode.Auto ? Network : EffectiveRuntime == RuntimeKind.Docker ? NetworkMode.Isolated : NetworkMode.Host;

    /// <summary>The driver that will run it once <see cref="RuntimeKind.Auto"/> is resolved.</summary>
    public RuntimeKind EffectiveRuntime =>
        Runtime != RuntimeKind.Auto ? Runtime
        : Command.Length > 0 && Image is null && Build?.Context is null ? RuntimeKind.Process
        : Image is not null || Build?.Context is not null ? RuntimeKind.Docker
        : RuntimeKind.Process;
}

/// <summary>How a service's replicas are networked.</summary>
public enum NetworkMode
{
    /// <summary>Docker: isolated; process: host (see <see cref="Service.EffectiveNetwork"/>).</summary>
    Auto,

    /// <summary>The host's network: replicas listen on ports Berth assigns on the host's loopback.</summary>
    Host,

    /// <summary>A pod per replica: its own loopback, its own ports, service names in its /etc/hosts, the mesh reaching in.</summary>
    Isolated,
}

/// <summary>Defaults for services, each named after the peer it follows.</summary>
public static class ServiceDefaults
{
    /// <summary>1, as Compose and Kubernetes.</summary>
    public const int Replicas = 1;

    /// <summary>10s, as Docker's <c>stop_grace_period</c>.</summary>
    public static readonly TimeSpan StopGracePeriod = TimeSpan.FromSeconds(10);
}

/// <summary>Log rotation of one replica, as the kubelet rotates container logs: once the file reaches
/// <see cref="MaxSize"/> it is renamed and a new one started; <see cref="MaxFiles"/> counts the files kept, the live one
/// included. The process driver applies it to each stream's file (stdout and stderr are kept apart); Docker gets it as
/// the json-file (or local) driver's <c>max-size</c>/<c>max-file</c>.</summary>
public sealed record LogRotation(ByteSize MaxSize, int MaxFiles)
{
    /// <summary>10Mi × 5: the kubelet's containerLogMaxSize and containerLogMaxFiles.</summary>
    public static readonly LogRotation Default = new(new ByteSize(10L << 20), 5);

    /// <summary>The smallest size accepted: 4Ki, so a file holds at least a few lines.</summary>
    public static readonly ByteSize MinSize = new(4L << 10);
}

/// <summary>How to build: a Docker context + Dockerfile, or a command for a process service.</summary>
/// <summary>One <c>develop.watch</c> rule: when a file under <see cref="Path"/> changes (and no ignore pattern matches it),
/// do <see cref="Action"/>.</summary>
public sealed record WatchRule
{
    public required WatchAction Action { get; init; }

    /// <summary>The watched folder or file on this machine, absolute (written relative to the spec's folder).</summary>
    public required string Path { get; init; }

    /// <summary>Where changed files go for the sync actions: a path in the container (Docker), or, for a process service, a
    /// folder on this machine, absolute (written relative to the service's working_dir).</summary>
    public string? Target { get; init; }

    /// <summary>.dockerignore-style patterns, relative to <see cref="Path"/>, of changes that trigger nothing.</summary>
    public ImmutableArray<string> Ignore { get; init; } = [];

    /// <summary>When not empty, only changes matching one of these patterns (same syntax as <see cref="Ignore"/>) count.</summary>
    public ImmutableArray<string> Include { get; init; } = [];

    /// <summary>Sync the whole of <see cref="Path"/> into the replicas when the watch starts (Compose <c>initial_sync</c>).</summary>
    public bool InitialSync { get; init; }
}

/// <summary>What a <see cref="WatchRule"/> does on a change, as Compose's <c>develop.watch</c> actions.</summary>
public enum WatchAction
{
    /// <summary>Build again (the image, or a process service's build command), then roll out, readiness-gated.</summary>
    Rebuild,

    /// <summary>Copy the changed files into the running replicas; nothing restarts.</summary>
    Sync,

    /// <summary>Copy, then restart the replicas one by one as the service's update policy rolls them.</summary>
    SyncRestart,

    /// <summary>Restart the replicas as the update policy rolls them; nothing is copied.</summary>
    Restart,
}

public sealed record BuildSpec
{
    public string? Context { get; init; }

    public string? Dockerfile { get; init; }

    public ImmutableSortedDictionary<string, string> Args { get; init; } = ImmutableSortedDictionary<string, string>.Empty;

    public string? Target { get; init; }

    /// <summary>For process services: argv run in <see cref="WorkingDir"/> before the replicas start.</summary>
    public ImmutableArray<string> Command { get; init; } = [];

    public string? WorkingDir { get; init; }
}

public enum EndpointProtocol
{
    Http,
    Tcp,

    /// <summary>HTTP/2 without TLS, prior knowledge on both sides (no HTTP/1.1 upgrade), as Envoy's h2c clusters.</summary>
    H2c,

    /// <summary>gRPC: h2c plus gRPC status for retries and metrics, and <c>grpc-timeout</c> deadlines.</summary>
    Grpc,
}

/// <summary>Questions about endpoint protocols that more than one part asks.</summary>
public static class EndpointProtocols
{
    /// <summary>True for the HTTP family (http, h2c, grpc): an L7 listener, probes over HTTP, <c>http://</c> URLs.</summary>
    public static bool IsHttp(this EndpointProtocol protocol) => protocol is EndpointProtocol.Http or EndpointProtocol.H2c or EndpointProtocol.Grpc;

    /// <summary>True for protocols spoken as HTTP/2 with prior knowledge (h2c, grpc).</summary>
    public static bool IsHttp2(this EndpointProtocol protocol) => protocol is EndpointProtocol.H2c or EndpointProtocol.Grpc;
}

/// <summary>A named port of a service. <see cref="Port"/> is the stable mesh port callers use; each replica gets its own.</summary>
public sealed record Endpoint
{
    public string Name { get; init; } = "http";

    /// <summary>The stable port the mesh listens on (Compose's published port). Null: assigned at run time.</summary>
    public int? Port { get; init; }

    /// <summary>The port the program listens on inside a container (Compose's target port). Null: the replica's assigned port.</summary>
    public int? TargetPort { get; init; }

    public EndpointProtocol Protocol { get; init; } = EndpointProtocol.Http;

    /// <summary>Exposed outside the app (an Ingress on Kubernetes).</summary>
    public bool Public { get; init; }

    /// <summary>Host IP the stable port binds to; 127.0.0.1 unless the spec says otherwise.</summary>
    public string HostIp { get; init; } = "127.0.0.1";
}

public enum VolumeType
{
    Bind,
    Volume,
    Tmpfs,
}

public sealed record VolumeMount
{
    public VolumeType Type { get; init; } = VolumeType.Volume;

    /// <summary>Host path (bind, absolute after loading) or volume name; null for tmpfs/anonymous.</summary>
    public string? Source { get; init; }

    public required string Target { get; init; }

    public bool ReadOnly { get; init; }

    /// <summary>The named volume's name on the engine: <c>{app}_{name}</c> as Compose names it, the top-level <c>name:</c>,
    /// or the name as is when it is external. Null for binds, tmpfs and anonymous volumes.</summary>
    public string? VolumeName { get; init; }

    /// <summary>The volume exists outside the app (<c>external: true</c>): never created or removed by Berth.</summary>
    public bool External { get; init; }

    /// <summary>Do not copy the image's content at the target into a new volume (Compose <c>volume.nocopy</c>).</summary>
    public bool NoCopy { get; init; }

    /// <summary>Mount only this folder of the volume (Compose <c>volume.subpath</c>).</summary>
    public string? Subpath { get; init; }

    /// <summary>Create a missing bind source as a folder (Compose <c>bind.create_host_path</c>, true by default as Compose).</summary>
    public bool CreateHostPath { get; init; } = true;

    /// <summary>tmpfs size (Compose <c>tmpfs.size</c>); null: the engine's default.</summary>
    public ByteSize? TmpfsSize { get; init; }

    /// <summary>tmpfs file mode (Compose <c>tmpfs.mode</c>, octal); null: the engine's default (1777).</summary>
    public int? TmpfsMode { get; init; }
}

/// <summary>Whether a <see cref="MountedFile"/> is a secret (masked everywhere) or a config.</summary>
public enum MountedFileKind
{
    Secret,
    Config,
}

/// <summary>A Compose secret or config mounted read-only as a file: at <c>/run/secrets/NAME</c> (secrets) or <c>/NAME</c>
/// (configs) unless <see cref="Target"/> says otherwise. Its content comes from a file, or is held here
/// (<c>environment:</c>, <c>content:</c>).</summary>
public sealed record MountedFile
{
    public required string Name { get; init; }

    public MountedFileKind Kind { get; init; }

    /// <summary>Absolute path inside the replica.</summary>
    public required string Target { get; init; }

    /// <summary>Absolute path of the file whose content it is; null when <see cref="Content"/> holds it.</summary>
    public string? SourceFile { get; init; }

    public string? Content { get; init; }

    public string? Uid { get; init; }

    public string? Gid { get; init; }

    /// <summary>File mode; null: 0444 (world-readable, as Compose).</summary>
    public int? Mode { get; init; }
}

/// <summary>When an image is pulled or built, as Compose's <c>pull_policy</c>.</summary>
public enum PullPolicy
{
    /// <summary>Pull only when the image is not on the engine (Compose's default, <c>missing</c> / <c>if_not_present</c>).</summary>
    Missing,

    /// <summary>Pull on every start.</summary>
    Always,

    /// <summary>Never pull; the image must be on the engine.</summary>
    Never,

    /// <summary>Always build from <c>build:</c>.</summary>
    Build,
}

/// <summary>A ulimit: soft and hard limit (equal when Compose gives one number).</summary>
public sealed record Ulimit(long Soft, long Hard);

/// <summary>Container settings Compose passes to Docker as they are. Each is the engine's default when absent.</summary>
public sealed record ContainerOptions
{
    public static readonly ContainerOptions None = new();

    public bool? Init { get; init; }

    public bool ReadOnly { get; init; }

    public bool Privileged { get; init; }

    /// <summary>tmpfs mounts written <c>/path[:options]</c>.</summary>
    public ImmutableArray<string> Tmpfs { get; init; } = [];

    public ImmutableArray<string> CapAdd { get; init; } = [];

    public ImmutableArray<string> CapDrop { get; init; } = [];

    public ImmutableSortedDictionary<string, Ulimit> Ulimits { get; init; } = ImmutableSortedDictionary<string, Ulimit>.Empty;

    public ImmutableSortedDictionary<string, string> Sysctls { get; init; } = ImmutableSortedDictionary<string, string>.Empty;

    public string? StopSignal { get; init; }

    public ByteSize? ShmSize { get; init; }

    public ImmutableArray<string> SecurityOpt { get; init; } = [];

    /// <summary>Devices written <c>HOST[:CONTAINER[:PERMISSIONS]]</c>.</summary>
    public ImmutableArray<string> Devices { get; init; } = [];

    /// <summary><c>HOST:IP</c> entries for /etc/hosts.</summary>
    public ImmutableArray<string> ExtraHosts { get; init; } = [];

    public string? Hostname { get; init; }

    public ImmutableArray<string> GroupAdd { get; init; } = [];

    /// <summary>-1: unlimited.</summary>
    public long? PidsLimit { get; init; }

    /// <summary>The log driver (only <c>local</c>, <c>json-file</c> and <c>none</c> keep logs Berth can read).</summary>
    public string? LogDriver { get; init; }

    public ImmutableSortedDictionary<string, string> LogOptions { get; init; } = ImmutableSortedDictionary<string, string>.Empty;

    /// <summary>Whether anything differs from the engine's defaults.</summary>
    public bool IsEmpty => this == None || (Init is null && !ReadOnly && !Privileged && Tmpfs.IsDefaultOrEmpty && CapAdd.IsDefaultOrEmpty
        && CapDrop.IsDefaultOrEmpty && Ulimits.IsEmpty && Sysctls.IsEmpty && StopSignal is null && ShmSize is null && SecurityOpt.IsDefaultOrEmpty
        && Devices.IsDefaultOrEmpty && ExtraHosts.IsDefaultOrEmpty && Hostname is null && GroupAdd.IsDefaultOrEmpty && PidsLimit is null
        && LogDriver is null && LogOptions.IsEmpty);
}

/// <summary>CPU and memory requests (what the scheduler reserves) and limits (what the kernel enforces).</summary>
public sealed record Resources
{
    public static readonly Resources None = new();

    public CpuQuantity? CpuRequest { get; init; }

    public CpuQuantity? CpuLimit { get; init; }

    public ByteSize? MemoryRequest { get; init; }

    public ByteSize? MemoryLimit { get; init; }

    /// <summary>The request the scheduler reserves: the request, else the limit (as Kubernetes defaults it), else zero.</summary>
    public CpuQuantity EffectiveCpuRequest => CpuRequest ?? CpuLimit ?? default;

    public ByteSize EffectiveMemoryRequest => MemoryRequest ?? MemoryLimit ?? default;
}

public enum ProbeKind
{
    Http,
    Tcp,
    Exec,
}

/// <summary>A liveness, readiness or startup probe. Defaults are Kubernetes'.</summary>
public sealed record Probe
{
    public ProbeKind Kind { get; init; }

    /// <summary>HTTP path, for http probes.</summary>
    public string Path { get; init; } = "/";

    /// <summary>Endpoint name whose replica port is probed (http/tcp); null means the first endpoint.</summary>
    public string? Endpoint { get; init; }

    /// <summary>A fixed port instead of an endpoint (as Kubernetes' port number).</summary>
    public int? Port { get; init; }

    /// <summary>Argv for exec probes (a Compose CMD-SHELL test becomes <c>/bin/sh -c …</c>).</summary>
    public ImmutableArray<string> Command { get; init; } = [];

    public ImmutableSortedDictionary<string, string> Headers { get; init; } = ImmutableSortedDictionary<string, string>.Empty;

    public TimeSpan InitialDelay { get; init; } = TimeSpan.Zero;

    /// <summary>10s, as Kubernetes' periodSeconds.</summary>
    public TimeSpan Period { get; init; } = ProbeDefaults.Period;

    /// <summary>1s, as Kubernetes' timeoutSeconds.</summary>
    public TimeSpan Timeout { get; init; } = ProbeDefaults.Timeout;

    /// <summary>1, as Kubernetes' successThreshold (must be 1 for liveness and startup).</summary>
    public int SuccessThreshold { get; init; } = ProbeDefaults.SuccessThreshold;

    /// <summary>3, as Kubernetes' failureThreshold.</summary>
    public int FailureThreshold { get; init; } = ProbeDefaults.FailureThreshold;
}

/// <summary>Kubernetes' probe defaults.</summary>
public static class ProbeDefaults
{
    public static readonly TimeSpan Period = TimeSpan.FromSeconds(10);
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(1);
    public const int SuccessThreshold = 1;
    public const int FailureThreshold = 3;
}

public enum RestartMode
{
    Always,
    OnFailure,
    Never,
}

/// <summary>When and how fast a stopped replica is restarted.</summary>
public sealed record RestartPolicy
{
    public static readonly RestartPolicy Default = new();

    /// <summary>Always, as Kubernetes' Deployment pods (Compose's default is <c>no</c>; Compose files map it).</summary>
    public RestartMode Mode { get; init; } = RestartMode.Always;

    /// <summary>Give up after this many restarts in a row; null: never give up.</summary>
    public int? MaxAttempts { get; init; }

    /// <summary>1s, doubling: Kubernetes' curve (which starts at 10s) started lower, as this is local.</summary>
    public TimeSpan InitialBackoff { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>5 minutes, as Kubernetes' CrashLoopBackOff cap.</summary>
    public TimeSpan MaxBackoff { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>10 minutes of clean running resets the backoff, as Kubernetes.</summary>
    public TimeSpan ResetAfter { get; init; } = TimeSpan.FromMinutes(10);
}

public enum UpdateOrder
{
    /// <summary>Start the new replica before stopping the old (surge), as Kubernetes' RollingUpdate.</summary>
    StartFirst,
    StopFirst,
}

public enum FailureAction
{
    Rollback,
    Pause,
    Continue,
}

/// <summary>Rolling update settings. Defaults are Kubernetes' Deployment defaults.</summary>
public sealed record UpdateStrategy
{
    public static readonly UpdateStrategy Default = new();

    /// <summary>25%, rounded up, as Kubernetes.</summary>
    public IntOrPercent MaxSurge { get; init; } = IntOrPercent.Percent(25);

    /// <summary>25%, rounded down, as Kubernetes.</summary>
    public IntOrPercent MaxUnavailable { get; init; } = IntOrPercent.Percent(25);

    /// <summary>0, as Kubernetes' minReadySeconds.</summary>
    public TimeSpan MinReady { get; init; } = TimeSpan.Zero;

    /// <summary>10 minutes, as Kubernetes' progressDeadlineSeconds.</summary>
    public TimeSpan ProgressDeadline { get; init; } = TimeSpan.FromMinutes(10);

    public bool AutoRollback { get; init; } = true;

    public UpdateOrder Order { get; init; } = UpdateOrder.StartFirst;

    /// <summary>Pause between batches (Compose <c>update_config.delay</c>).</summary>
    public TimeSpan Delay { get; init; } = TimeSpan.Zero;

    /// <summary>What to do when the update fails; Compose <c>failure_action</c>.</summary>
    public FailureAction FailureAction { get; init; } = FailureAction.Rollback;

    /// <summary>How long a new replica is watched for failure after it is Ready (Compose <c>monitor</c>).</summary>
    public TimeSpan Monitor { get; init; } = TimeSpan.Zero;

    /// <summary>Fraction of new replicas allowed to fail before the update fails (Compose <c>max_failure_ratio</c>).</summary>
    public double MaxFailureRatio { get; init; }

    /// <summary>Revisions kept: 10, as Kubernetes' revisionHistoryLimit.</summary>
    public int RevisionHistoryLimit { get; init; } = 10;
}

public enum DependencyCondition
{
    /// <summary>Compose <c>service_started</c>.</summary>
    Started,

    /// <summary>Compose <c>service_healthy</c>: the readiness probe passed.</summary>
    Healthy,

    /// <summary>Compose <c>service_completed_successfully</c>: exited 0.</summary>
    Completed,
}

public sealed record Dependency(string Service, DependencyCondition Condition = DependencyCondition.Started)
{
    /// <summary>Compose <c>required</c>: false lets the app start when the dependency is absent.</summary>
    public bool Required { get; init; } = true;

    /// <summary>Compose <c>restart</c>: restart this service when the dependency is updated.</summary>
    public bool Restart { get; init; }
}

/// <summary>Scale between <see cref="Min"/> and <see cref="Max"/> to hold a target CPU % or requests/s per replica.</summary>
public sealed record AutoscalePolicy
{
    public int Min { get; init; } = 1;

    public required int Max { get; init; }

    /// <summary>Target CPU utilization in percent of the CPU request (or limit).</summary>
    public int? TargetCpuPercent { get; init; }

    /// <summary>Target requests per second per replica, from mesh metrics.</summary>
    public double? TargetRequestsPerSecond { get; init; }

    /// <summary>0.1, as Kubernetes' HPA tolerance.</summary>
    public double Tolerance { get; init; } = 0.1;

    /// <summary>5 minutes, as Kubernetes' scale-down stabilization window.</summary>
    public TimeSpan ScaleDownStabilization { get; init; } = TimeSpan.FromMinutes(5);
}
