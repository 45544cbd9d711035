using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Berth.Runtime.Process;

/// <summary>Settings of the process driver; every default is named in <see cref="ProcessDriverDefaults"/>.</summary>
public sealed record ProcessDriverOptions
{
    /// <summary>Where the driver keeps its registry of replicas (one file each) and its supervisor script, e.g. <c>.berth/runtime</c>.</summary>
    public required string StateRoot { get; init; }

    /// <summary>Where a process service's named volumes are kept as folders (one per volume, e.g. <c>.berth/volumes</c>),
    /// named in <c>BERTH_VOLUME_NAME</c>; null: named volumes are not made for processes.</summary>
    public string? VolumesRoot { get; init; }

    /// <summary>Where cgroup hierarchies are mounted: <c>/sys/fs/cgroup</c>; point it at a delegated v2 subtree to run unprivileged.</summary>
    public string CgroupRoot { get; init; } = ProcessDriverDefaults.CgroupRoot;

    /// <summary>Berth's subtree in each hierarchy: <c>berth</c> (as Docker's <c>docker/</c>); replicas go to <c>{subtree}/{app or node}/{replica}</c>.</summary>
    public string CgroupSubtree { get; init; } = ProcessDriverDefaults.CgroupSubtree;

    /// <summary>False: never touch cgroups, even where they are writable (limits are then reported as not enforced).</summary>
    public bool UseCgroups { get; init; } = true;

    /// <summary>
    /// Weight of Berth's whole cgroup subtree against everything else on the machine when the CPUs are contended, in
    /// cgroup v1 cpu.shares units; null leaves the kernel's default (1024, as one ordinary process). A high value makes
    /// the CPU limits a promise as well as a cap (Kubernetes weighs its kubepods cgroup by the node's allocatable CPU).
    /// </summary>
    public long? CpuShares { get; init; }

    /// <summary>The perl that runs the per-replica supervisor: <c>perl</c> from PATH (perl-base is Essential on Debian/Ubuntu).</summary>
    public string Perl { get; init; } = ProcessDriverDefaults.Perl;

    /// <summary>The userspace network helper a pod asking for egress gets (<see cref="PodEgress"/>): slirp4netns as found on
    /// PATH when the driver is made; null: none installed, such pods keep only loopback.</summary>
    public string? EgressHelper { get; init; } = PodEgress.Find();

    /// <summary>The environment replicas inherit from (<see cref="InheritedEnvironment"/> picks from it): the control
    /// plane's own by default.</summary>
    public Func<IReadOnlyDictionary<string, string>> HostEnvironment { get; init; } = InheritedEnvironment.Current;

    /// <summary>How often a wait or a followed log looks again: 50 ms.</summary>
    public TimeSpan PollInterval { get; init; } = ProcessDriverDefaults.PollInterval;

    /// <summary>How long the supervisor may take to report the command running: 30 s.</summary>
    public TimeSpan StartTimeout { get; init; } = ProcessDriverDefaults.StartTimeout;

    /// <summary>See <see cref="RuntimeDefaults.StatsSampleWindow"/>.</summary>
    public TimeSpan StatsSampleWindow { get; init; } = RuntimeDefaults.StatsSampleWindow;

    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    public ILogger Logger { get; init; } = NullLogger.Instance;
}

/// <summary>Defaults of <see cref="ProcessDriverOptions"/>.</summary>
public static class ProcessDriverDefaults
{
    public const string CgroupRoot = "/sys/fs/cgroup";

    public const string CgroupSubtree = "berth";

    public const string Perl = "perl";

    public static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(50);

    public static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(30);
}
