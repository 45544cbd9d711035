using Berth.Runtime;

namespace Berth.Orchestration.Controllers;

/// <summary>What the control plane keeps in memory about a replica beside its persisted record: probes and in-flight work.</summary>
internal sealed class ReplicaRuntime
{
    public List<ProbeTracker> Probes { get; } = [];

    /// <summary>A driver start or stop is running for this replica.</summary>
    public bool Busy { get; set; }

    /// <summary>Why it is being stopped, deciding what happens once it has stopped.</summary>
    public StopIntent Intent { get; set; }

    /// <summary>The liveness or startup probe failed: the exit that follows counts as a failure whatever its code.</summary>
    public bool KilledUnhealthy { get; set; }

    /// <summary>Watches the running handle; cancelled when the replica is stopped on purpose.</summary>
    public CancellationTokenSource? Watch { get; set; }

    public ReplicaHandle? WatchedHandle { get; set; }

    /// <summary>The probes that run now: the startup probe until it passes, then liveness and readiness.</summary>
    public IEnumerable<ProbeTracker> ActiveProbes =>
        StartupPassed ? Probes.Where(p => p.Role != ProbeRole.Startup) : Probes.Where(p => p.Role == ProbeRole.Startup);

    public bool StartupPassed => Probes.All(p => p.Role != ProbeRole.Startup || p.Passing);

    public bool ReadyByProbes => StartupPassed && Probes.All(p => p.Role != ProbeRole.Readiness || p.Passing);
}

internal enum StopIntent
{
    None,

    /// <summary>Scale-down or replacement: delete the record once stopped.</summary>
    Remove,

    /// <summary>Restart on request: start again once stopped.</summary>
    Restart,

    /// <summary>Liveness failure: the exit is handled by the restart policy.</summary>
    Unhealthy,
}
