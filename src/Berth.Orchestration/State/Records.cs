using System.Collections.Immutable;
using Berth.Core.Model;
using Berth.Runtime;

namespace Berth.Orchestration.State;

/// <summary>Where a replica is in its life. Resources are held from <see cref="Starting"/> to <see cref="Terminating"/>.</summary>
public enum ReplicaPhase
{
    /// <summary>Not placed yet: waiting for capacity, a free port or a dependency; <see cref="ReplicaRecord.Reason"/> says which.</summary>
    Pending,

    /// <summary>Placed and being started by its driver.</summary>
    Starting,

    /// <summary>Running but not (yet) Ready: startup or readiness probe not passed.</summary>
    Running,

    /// <summary>Running and Ready: in the service's routes.</summary>
    Ready,

    /// <summary>Exited and waiting for its next restart at <see cref="ReplicaRecord.NextRetryAt"/>.</summary>
    BackOff,

    /// <summary>Out of routing and being stopped (scale-down, stop, replacement).</summary>
    Terminating,

    /// <summary>Stopped on request; kept for a while so its logs can be read.</summary>
    Stopped,

    /// <summary>Exited 0 and not restarted (restart: on-failure / never).</summary>
    Completed,

    /// <summary>Exited non-zero and not restarted (restart: never, or attempts used up), or could not start.</summary>
    Failed,
}

/// <summary>Why a replica's last run ended, so logic never has to read it out of <see cref="ReplicaRecord.Reason"/>.</summary>
public enum ExitCause
{
    /// <summary>The process exited with a code.</summary>
    Exited,

    /// <summary>A signal ended it.</summary>
    Killed,

    /// <summary>The kernel's OOM killer ended it.</summary>
    OomKilled,

    /// <summary>Its liveness or startup probe failed and the control plane stopped it.</summary>
    Unhealthy,

    /// <summary>The driver could not start it.</summary>
    CouldNotStart,

    /// <summary>It is gone and no exit status says how.</summary>
    Gone,

    /// <summary>It vanished while no control plane ran (found so by adoption): not the replica's own fault.</summary>
    LostWithControlPlane,
}

/// <summary>One replica as the control plane knows it: where it runs, how it is doing, how to find it again.</summary>
public sealed record ReplicaRecord
{
    public required string Id { get; init; }

    public required string Service { get; init; }

    /// <summary>The revision whose template this replica runs.</summary>
    public long Revision { get; init; }

    public ReplicaPhase Phase { get; init; } = ReplicaPhase.Pending;

    /// <summary>Why it is in this phase (e.g. why Pending, why it restarted).</summary>
    public string? Reason { get; init; }

    public string? Node { get; init; }

    /// <summary>Endpoint name → this replica's own port (in its pod, when <see cref="Pod"/>).</summary>
    public ImmutableSortedDictionary<string, int> Ports { get; init; } = ImmutableSortedDictionary<string, int>.Empty;

    /// <summary>Runs in a pod of its own (decided when placed): its ports are its pod's, not the host's.</summary>
    public bool Pod { get; init; }

    public int RestartCount { get; init; }

    /// <summary>Restarts in a row without a clean run of <see cref="RestartPolicy.ResetAfter"/>: the back-off exponent.</summary>
    public int ConsecutiveFailures { get; init; }

    public DateTimeOffset? NextRetryAt { get; init; }

    public DateTimeOffset CreatedAt { get; init; }

    public DateTimeOffset? StartedAt { get; init; }

    public DateTimeOffset? ReadyAt { get; init; }

    public int? LastExitCode { get; init; }

    /// <summary>Why the last run ended; null while it has not ended yet.</summary>
    public ExitCause? LastExitCause { get; init; }

    public ReplicaHandle? Handle { get; init; }

    public bool HoldsResources => Phase is ReplicaPhase.Starting or ReplicaPhase.Running or ReplicaPhase.Ready
        or ReplicaPhase.BackOff or ReplicaPhase.Terminating;

    public bool IsFinished => Phase is ReplicaPhase.Stopped or ReplicaPhase.Completed or ReplicaPhase.Failed;
}

/// <summary>A snapshot of the desired state. Every change (up, apply, scale, patch) makes one; the last N are kept.</summary>
public sealed record RevisionRecord
{
    public required long Number { get; init; }

    public required DateTimeOffset CreatedAt { get; init; }

    /// <summary>What made it: <c>up</c>, <c>apply</c>, <c>patch api</c>, <c>undo api to revision 3</c> (a scale makes no revision).</summary>
    public required string Cause { get; init; }

    public required Application Application { get; init; }

    /// <summary>Service → the revision whose pod template it runs (unchanged by scale; a new one means replace the replicas).</summary>
    public ImmutableSortedDictionary<string, long> Templates { get; init; } = ImmutableSortedDictionary<string, long>.Empty;

    /// <summary>Services stopped on request (desired replicas kept, none run).</summary>
    public ImmutableSortedSet<string> Stopped { get; init; } = [];

    public long TemplateOf(string service) => Templates.TryGetValue(service, out var t) ? t : Number;
}

/// <summary>A control-plane event, persisted with a monotonically increasing id.</summary>
public sealed record EventRecord
{
    public long Id { get; init; }

    public required DateTimeOffset Time { get; init; }

    /// <summary>scheduled, started, ready, unhealthy, restarted, backoff, oom-killed, pending, exited, stopped, scaled, revision, adopted, …</summary>
    public required string Type { get; init; }

    public string? Service { get; init; }

    public string? Replica { get; init; }

    public required string Message { get; init; }
}

/// <summary>Event type names, stable for clients.</summary>
public static class EventTypes
{
    public const string Revision = "revision";
    public const string Scaled = "scaled";
    public const string Pending = "pending";
    public const string Scheduled = "scheduled";
    public const string Started = "started";
    public const string Ready = "ready";
    public const string NotReady = "not-ready";
    public const string Unhealthy = "unhealthy";
    public const string Exited = "exited";
    public const string OomKilled = "oom-killed";
    public const string BackOff = "backoff";
    public const string Restarted = "restarted";
    public const string Stopping = "stopping";
    public const string Stopped = "stopped";
    public const string Failed = "failed";
    public const string Adopted = "adopted";
    public const string Orphan = "orphan-removed";
    public const string Waiting = "waiting";
    public const string LimitsNotEnforced = "limits-not-enforced";

    /// <summary>A replica's runtime (the Docker engine) stopped answering: its state is unknown, it is kept as it was.</summary>
    public const string RuntimeUnreachable = "runtime-unreachable";

    /// <summary>The runtime answers again: what it says about the replica counts again.</summary>
    public const string RuntimeReachable = "runtime-reachable";

    /// <summary>A stable port is held by another program: the service stays Pending (the message names the holder).</summary>
    public const string PortConflict = "port-conflict";
}
