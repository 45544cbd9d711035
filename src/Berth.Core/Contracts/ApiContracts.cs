using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace Berth.Core.Contracts;

// The control-plane API's request and response bodies (docs/api.md). The server writes them, the CLI, the pipelines'
// deploy step and the dashboard read them, all through ApiJson's source-generated metadata: one shape, named once.

/// <summary>Where a service's rollout to its newest template stands (<c>GET /v1/services/{name}/rollout</c>).</summary>
public sealed record RolloutStatus(long Revision, RolloutState State, string? Message);

/// <summary>An error answer: <c>{"error": "...", "status": 404}</c>.</summary>
public sealed record ApiError(string Error, int Status);

/// <summary>The address file a serving control plane writes into its state folder (<c>api.json</c>).</summary>
public sealed record ApiAddress(string Url, int? Pid = null);

/// <summary><c>GET /v1/app</c>.</summary>
public sealed record AppInfo
{
    public required string Name { get; init; }

    public long Revision { get; init; }

    public string? Scheduler { get; init; }

    public IReadOnlyList<NodeInfo> Nodes { get; init; } = [];

    public IReadOnlyList<ServiceInfo> Services { get; init; } = [];

    public IReadOnlyList<DriverInfo> Drivers { get; init; } = [];

    public IReadOnlyList<LimitsWarningInfo> Warnings { get; init; } = [];

    /// <summary>Who the control plane runs as: <c>root</c> or <c>uid 1000</c>.</summary>
    public string? User { get; init; }

    /// <summary>What it may do here as that user, each decided by trying it (cgroups, network namespaces, Docker).</summary>
    public IReadOnlyList<CapabilityInfo> Capabilities { get; init; } = [];

    /// <summary>Stable ports another program holds: those services stay Pending until the port is free.</summary>
    public IReadOnlyList<PortConflictInfo> PortConflicts { get; init; } = [];

    /// <summary>True once every endpoint's stable port has been listened on or found taken (<see cref="PortConflicts"/> is complete).</summary>
    public bool ListenersSettled { get; init; }
}

/// <summary>A stable port another program holds; <c>Holder</c> is "pid N (command)" where /proc shows it.</summary>
public sealed record PortConflictInfo(string Service, string Endpoint, int Port, string? Holder, string Message);

public sealed record NodeInfo(string Name, string Cpu, string Memory, string AllocatedCpu, string AllocatedMemory, int Replicas);

public sealed record DriverInfo(string Kind, bool Available, string? UnavailableReason, bool CpuLimitsEnforced, bool MemoryLimitsEnforced, string? LimitsMechanism);

public sealed record LimitsWarningInfo(string Service, string Driver, string Message);

/// <summary>One capability: <paramref name="Message"/> is the line <c>berth up</c> prints (<c>name: detail; fix: …</c>).</summary>
public sealed record CapabilityInfo(string Name, bool Usable, string Detail, string? Fix, string Message);

/// <summary><c>GET /v1/services</c> (one per service) and <c>GET /v1/services/{name}</c> (with <see cref="Spec"/>).</summary>
public sealed record ServiceInfo
{
    public required string Name { get; init; }

    public string? Runtime { get; init; }

    /// <summary>Replicas wanted now: 0 while the service is stopped.</summary>
    public int Desired { get; init; }

    public bool Stopped { get; init; }

    /// <summary>The service's template revision (the revision its pod template last changed in).</summary>
    public long Revision { get; init; }

    public int Ready { get; init; }

    public int Running { get; init; }

    public int Pending { get; init; }

    public int BackOff { get; init; }

    public IReadOnlyList<EndpointInfo> Endpoints { get; init; } = [];

    /// <summary>The service's spec with secret values masked; only on <c>GET /v1/services/{name}</c>.</summary>
    public JsonNode? Spec { get; init; }
}

public sealed record EndpointInfo(string Name, string Protocol, int? Port, string Url);

/// <summary><c>GET /v1/replicas</c>, <c>GET /v1/replicas/{id}</c>.</summary>
public sealed record ReplicaInfo
{
    public required string Id { get; init; }

    public required string Service { get; init; }

    public long Revision { get; init; }

    /// <summary>pending, starting, running, ready, back-off, terminating, completed, failed, stopped.</summary>
    public required string Phase { get; init; }

    public string? Reason { get; init; }

    public string? Node { get; init; }

    public IReadOnlyDictionary<string, int> Ports { get; init; } = new Dictionary<string, int>();

    public int? Pid { get; init; }

    public string? ContainerId { get; init; }

    public int Restarts { get; init; }

    public BackOffInfo? BackOff { get; init; }

    public int? LastExitCode { get; init; }

    public DateTimeOffset CreatedAt { get; init; }

    public DateTimeOffset? StartedAt { get; init; }

    public DateTimeOffset? ReadyAt { get; init; }
}

/// <summary><c>GET /v1/stats</c>: one running replica's resource use (<c>berth stats</c>, as <c>docker stats</c>). CPU is in
/// percent of one core over the driver's sample window (200 = two cores busy); the memory limit is null where none is set.
/// Requests per second come from the mesh's counters over the same read (at least a second): <see cref="RequestsPerSecond"/>
/// the HTTP attempts the mesh sent to this replica, <see cref="ServiceRequestsPerSecond"/> the requests its service's
/// listeners answered; both null for a service with no HTTP endpoint (TCP, none) or when the data plane did not answer.</summary>
public sealed record ReplicaStatsInfo(string Replica, string Service, string Phase, double CpuPercent, long MemoryBytes, long? MemoryLimitBytes, int Pids, int Restarts, DateTimeOffset Time,
    double? RequestsPerSecond = null, double? ServiceRequestsPerSecond = null);

/// <summary><c>POST /v1/services/{name}/run</c>: a one-off replica for <c>berth run</c>; no command: the service's own.</summary>
public sealed record RunRequest(IReadOnlyList<string>? Command);

/// <summary>The one-off replica started: its pid or container, and the command the CLI runs in it (the one asked for, else
/// the service's own with its secret variables left unexpanded). <c>DELETE /v1/runs/{replica}</c> ends it.</summary>
public sealed record RunResponse(string Replica, string Service, int? Pid, string? ContainerId, IReadOnlyList<string> Command);

/// <summary><c>GET /v1/top</c>: a running replica's processes (<c>berth top</c>, as <c>docker compose top</c>).</summary>
public sealed record ReplicaTopInfo(string Replica, string Service, IReadOnlyList<ProcessInfo> Processes);

/// <summary>One process: %CPU over its life and resident memory, as <c>ps</c> shows them; CPU time as <c>[d.]hh:mm:ss</c>.</summary>
public sealed record ProcessInfo(int Pid, int ParentPid, string User, double CpuPercent, long ResidentBytes, string CpuTime, string Command);

public sealed record BackOffInfo(int FailuresInARow, DateTimeOffset? NextRetryAt);

/// <summary><c>GET /v1/revisions</c> and <c>GET /v1/revisions/{n}</c> (with <see cref="Spec"/>).</summary>
public sealed record RevisionInfo
{
    public long Number { get; init; }

    public DateTimeOffset CreatedAt { get; init; }

    public required string Cause { get; init; }

    public IReadOnlyList<RevisionServiceInfo> Services { get; init; } = [];

    public IReadOnlyList<string> Stopped { get; init; } = [];

    public RevisionSpecInfo? Spec { get; init; }
}

public sealed record RevisionServiceInfo(string Name, int Replicas, long Template);

public sealed record RevisionSpecInfo(IReadOnlyList<JsonNode?> Services);

/// <summary>One entry of <c>GET /v1/services/{name}/rollout/history</c>: a template and where it came from.</summary>
public sealed record RolloutHistoryEntry(long Revision, DateTimeOffset CreatedAt, string Cause, string? Image, IReadOnlyList<string> Command, bool Current);

/// <summary>One control-plane event (<c>GET /v1/events</c>, and the <c>data:</c> of each server-sent event).</summary>
public sealed record EventInfo
{
    public long Id { get; init; }

    public DateTimeOffset Time { get; init; }

    public required string Type { get; init; }

    public string? Service { get; init; }

    public string? Replica { get; init; }

    public required string Message { get; init; }
}

/// <summary>One line of <c>GET /v1/{services|replicas}/{name}/logs</c> (NDJSON).</summary>
public sealed record LogLine(string Replica, DateTimeOffset Time, string Stream, string Text);

/// <summary><c>GET /v1/routes</c>: one service endpoint's stable port and Ready upstreams.</summary>
public sealed record RouteInfo(string Service, string Endpoint, int? Port, IReadOnlyList<UpstreamInfo> Upstreams);

public sealed record UpstreamInfo(string Replica, string Host, int Port, long Revision);

/// <summary><c>POST /v1/services/{name}/scale</c>.</summary>
public sealed record ScaleRequest(int? Replicas);

/// <summary><c>PATCH /v1/services/{name}</c>: only the fields that change (what the pipelines' deploy step sends).</summary>
public sealed record ServicePatchRequest
{
    public string? Image { get; init; }

    public IReadOnlyList<string>? Command { get; init; }

    /// <summary>Variables to set, merged over the current env.</summary>
    public IReadOnlyDictionary<string, string>? Env { get; init; }
}

/// <summary><c>POST /v1/services/{name}/rollout/undo</c>: no body, or the template revision to return to.</summary>
public sealed record UndoRequest(
    [property: JsonNumberHandling(JsonNumberHandling.Strict)] long? ToRevision); // "3" is not a revision number, as before the contract

/// <summary>Answer of every call that makes a revision (apply, patch, stop, start).</summary>
public sealed record RevisionResponse(long Revision);

public sealed record ScaleResponse(long Revision, string Service, int Replicas);

public sealed record UndoResponse(long Revision, long Template);

public sealed record RestartServiceResponse(int Restarting);

public sealed record RestartReplicaResponse(string Restarting);

public sealed record StopReplicaResponse(string Stopping);

public sealed record PauseResponse(string Service, bool Paused);

public sealed record ShutdownResponse(bool ShuttingDown, bool StopReplicas);

/// <summary><c>POST /v1/dashboard/login</c>: a dashboard link with a fresh one-time sign-in code.</summary>
public sealed record DashboardLink(string Url);
