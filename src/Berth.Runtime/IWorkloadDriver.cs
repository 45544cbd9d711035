using System.Collections.Immutable;
using Berth.Core.Model;
using Berth.Core.Routing;

namespace Berth.Runtime;

/// <summary>Runs replicas of one kind (OS processes or Docker containers). The orchestrator's only way to touch a workload.</summary>
public interface IWorkloadDriver
{
    RuntimeKind Kind { get; }

    /// <summary>What this driver can enforce on this machine (e.g. whether cgroup limits apply, and why not).</summary>
    DriverCapabilities Capabilities { get; }

    /// <summary>Starts a replica and returns once it is running (process spawned / container started).</summary>
    Task<ReplicaHandle> StartAsync(ReplicaSpec spec, CancellationToken cancellationToken);

    /// <summary>Graceful stop: SIGTERM, then SIGKILL after <paramref name="gracePeriod"/>. Idempotent.</summary>
    Task<ReplicaStatus> StopAsync(ReplicaHandle replica, TimeSpan gracePeriod, CancellationToken cancellationToken);

    /// <summary>Removes what is left of a stopped replica (container, cgroup, bookkeeping); logs are kept.</summary>
    Task RemoveAsync(ReplicaHandle replica, CancellationToken cancellationToken);

    Task<ReplicaStatus> InspectAsync(ReplicaHandle replica, CancellationToken cancellationToken);

    /// <summary>Completes when the replica has exited, with its final status (exit code, OOM-killed).</summary>
    Task<ReplicaStatus> WaitForExitAsync(ReplicaHandle replica, CancellationToken cancellationToken);

    /// <summary>Log lines, stdout and stderr kept apart and timestamped; with <see cref="LogOptions.Follow"/> it keeps going until cancelled or the replica exits.</summary>
    IAsyncEnumerable<LogEntry> GetLogsAsync(ReplicaHandle replica, LogOptions options, CancellationToken cancellationToken);

    Task<ReplicaStats> GetStatsAsync(ReplicaHandle replica, CancellationToken cancellationToken);

    /// <summary>The processes of a running replica (<c>berth top</c>): its cgroup's members, else its process and descendants.</summary>
    Task<IReadOnlyList<Process.ProcessRow>> TopAsync(ReplicaHandle replica, CancellationToken cancellationToken) =>
        Task.FromResult(replica.Pid is { } pid ? Process.ProcessTable.Of(pid) : (IReadOnlyList<Process.ProcessRow>)[]);

    /// <summary>Runs <paramref name="command"/> (argv, no shell) where the replica runs: inside its container for Docker, beside it
    /// on the host (in <paramref name="workingDirectory"/>) for a process. What exec probes use, as Kubernetes' exec probes.
    /// Cancelling kills the command.</summary>
    Task<ExecResult> ExecAsync(ReplicaHandle replica, IReadOnlyList<string> command, string? workingDirectory, CancellationToken cancellationToken);

    /// <summary>Replicas of <paramref name="app"/> that exist now (running or exited but not removed), for adoption after a control-plane restart.</summary>
    Task<IReadOnlyList<ReplicaHandle>> ListAsync(string app, CancellationToken cancellationToken);
}

/// <summary>How a command run by <see cref="IWorkloadDriver.ExecAsync"/> ended, with its output (stdout then stderr).</summary>
public sealed record ExecResult(int ExitCode, string Output);

/// <summary>Everything a driver needs to start one replica; resolved by the orchestrator (ports, node, revision).</summary>
public sealed record ReplicaSpec
{
    public required string App { get; init; }

    public required string Service { get; init; }

    /// <summary>Unique, stable replica id, e.g. <c>api-3f9c2</c>.</summary>
    public required string ReplicaId { get; init; }

    public long Revision { get; init; }

    public string? Image { get; init; }

    public ImmutableArray<string>? Entrypoint { get; init; }

    public ImmutableArray<string> Command { get; init; } = [];

    public bool Shell { get; init; }

    /// <summary>A process gets the control plane's whole environment under <see cref="Env"/> instead of the minimal set
    /// (<see cref="Process.InheritedEnvironment"/>); containers inherit nothing either way.</summary>
    public bool InheritEnv { get; init; }

    /// <summary>How the replica's logs are rotated: the supervisor's files for a process, the engine's log driver for a container.</summary>
    public LogRotation Logging { get; init; } = LogRotation.Default;

    public string? WorkingDir { get; init; }

    public string? User { get; init; }

    public ImmutableSortedDictionary<string, string> Env { get; init; } = ImmutableSortedDictionary<string, string>.Empty;

    /// <summary>Endpoint name → the port this replica listens on.</summary>
    public ImmutableSortedDictionary<string, int> Ports { get; init; } = ImmutableSortedDictionary<string, int>.Empty;

    public ImmutableArray<VolumeMount> Volumes { get; init; } = [];

    public CpuQuantity? CpuLimit { get; init; }

    public ByteSize? MemoryLimit { get; init; }

    /// <summary>The node's cgroup path relative to Berth's cgroup root (each node a cgroup); null: Berth's root.</summary>
    public string? Node { get; init; }

    /// <summary>Folder for this replica's logs and bookkeeping (under the app's state folder).</summary>
    public required string StateDirectory { get; init; }

    public ImmutableSortedDictionary<string, string> Labels { get; init; } = ImmutableSortedDictionary<string, string>.Empty;

    /// <summary>Values to mask as <c>***</c> wherever this replica's spec is shown.</summary>
    public ImmutableSortedSet<string> SecretEnv { get; init; } = [];

    /// <summary>Secrets and configs to mount as read-only files (a process replica gets them under its state folder).</summary>
    public ImmutableArray<MountedFile> Files { get; init; } = [];

    /// <summary>Container settings passed to Docker as Compose passes them.</summary>
    public ContainerOptions Container { get; init; } = ContainerOptions.None;

    /// <summary>When the image is pulled (Docker).</summary>
    public PullPolicy PullPolicy { get; init; } = PullPolicy.Missing;

    /// <summary>Folders a Docker replica gets copied in before it starts (<c>develop.watch</c> sync rules), so a new container
    /// serves what was synced into the old ones; a process replica reads them where they are.</summary>
    public ImmutableArray<SyncedFolder> Syncs { get; init; } = [];

    /// <summary>Run the replica in its own pod (a network namespace holding only loopback) with these names; null: the host network.</summary>
    public PodSpec? Pod { get; init; }
}

/// <summary>A sync rule as a new container receives it: the rule and the build context whose <c>.dockerignore</c> applies.</summary>
public sealed record SyncedFolder(WatchRule Rule, string? BuildContext);

/// <summary>A replica's pod: the names its /etc/hosts gives (every service's virtual address, the Compose aliases).</summary>
/// <param name="Hosts">Host name → address, e.g. <c>api → 127.77.0.2</c>; written in this order after localhost.</param>
public sealed record PodSpec(ImmutableArray<KeyValuePair<string, string>> Hosts)
{
    /// <summary>Give the pod a userspace network to the outside as well (<c>egress: true</c>): the process driver starts
    /// <see cref="Process.PodEgress"/>'s helper for it where one is installed; elsewhere the pod keeps only loopback.</summary>
    public bool Egress { get; init; }

    /// <summary>The hosts file text: localhost first (as Docker writes it), then one line per address with its names.</summary>
    public string HostsFile()
    {
        var text = new System.Text.StringBuilder("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
        foreach (var group in Hosts.GroupBy(h => h.Value, StringComparer.Ordinal))
        {
            text.Append(group.Key).Append('\t').AppendJoin(' ', group.Select(h => h.Key).Distinct(StringComparer.Ordinal)).Append('\n');
        }

        return text.ToString();
    }
}

/// <summary>Identifies a running or exited replica; enough to find it again after a control-plane restart.</summary>
public sealed record ReplicaHandle
{
    public required string ReplicaId { get; init; }

    public required string App { get; init; }

    public required string Service { get; init; }

    public long Revision { get; init; }

    public RuntimeKind Kind { get; init; }

    /// <summary>Process id (process driver) or the container's main pid.</summary>
    public int? Pid { get; init; }

    /// <summary>The process start time in clock ticks since boot (/proc/PID/stat field 22), so a reused pid is never taken for ours.</summary>
    public long? ProcessStartTicks { get; init; }

    public string? ContainerId { get; init; }

    public string? StateDirectory { get; init; }

    /// <summary>The replica's pod (its own network namespace), where it runs isolated; null: the host network.</summary>
    public PodNetwork? Pod { get; init; }
}

public enum ReplicaState
{
    Created,
    Running,
    Exited,

    /// <summary>Gone without a trace (container removed, process vanished with no exit record).</summary>
    Unknown,
}

public sealed record ReplicaStatus
{
    public required ReplicaState State { get; init; }

    public int? Pid { get; init; }

    public string? ContainerId { get; init; }

    public int? ExitCode { get; init; }

    /// <summary>Killed by a signal (e.g. 9) rather than exiting, where the driver can tell.</summary>
    public int? Signal { get; init; }

    public DateTimeOffset? StartedAt { get; init; }

    public DateTimeOffset? FinishedAt { get; init; }

    public bool OomKilled { get; init; }

    /// <summary>Why it could not start or why the state is unknown.</summary>
    public string? Error { get; init; }
}

public enum LogStream
{
    Stdout,
    Stderr,
}

public sealed record LogEntry(DateTimeOffset Timestamp, LogStream Stream, string Text);

public sealed record LogOptions
{
    public bool Follow { get; init; }

    /// <summary>Only the last N lines; null: all.</summary>
    public int? Tail { get; init; }

    public DateTimeOffset? Since { get; init; }

    public bool Stdout { get; init; } = true;

    public bool Stderr { get; init; } = true;
}

public sealed record ReplicaStats
{
    /// <summary>CPU use in percent of one core (200 = two cores busy), as <c>docker stats</c>.</summary>
    public double CpuPercent { get; init; }

    public ByteSize MemoryUsage { get; init; }

    public ByteSize? MemoryLimit { get; init; }

    public DateTimeOffset Timestamp { get; init; }
}

/// <summary>What a driver can do here, said plainly so the API and CLI can show it.</summary>
public sealed record DriverCapabilities
{
    public bool Available { get; init; } = true;

    /// <summary>Why the driver cannot be used (e.g. Docker not reachable at DOCKER_HOST).</summary>
    public string? UnavailableReason { get; init; }

    public bool CpuLimitsEnforced { get; init; }

    public bool MemoryLimitsEnforced { get; init; }

    /// <summary>e.g. "cgroup v1 (cpu, memory)", "cgroup v2 at /sys/fs/cgroup/berth", "none: no writable cgroup hierarchy".</summary>
    public string LimitsMechanism { get; init; } = "none";

    /// <summary>How to get limits enforced where they are not (e.g. run as root, or in a delegated scope); null when they are.</summary>
    public string? LimitsFix { get; init; }
}
