using Microsoft.Extensions.Logging;

namespace Berth.Runtime;

/// <summary>Source-generated log messages of the runtime drivers; event ids are stable.</summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 3001, Level = LogLevel.Information, Message = "Started replica {ReplicaId} of {App}/{Service} as pid {Pid}")]
    public static partial void ProcessStarted(ILogger logger, string replicaId, string app, string service, int pid);

    [LoggerMessage(EventId = 3002, Level = LogLevel.Warning, Message = "Replica {ReplicaId} asks for CPU/memory limits that are not enforced here: {Reason}")]
    public static partial void LimitsNotEnforced(ILogger logger, string replicaId, string reason);

    [LoggerMessage(EventId = 3003, Level = LogLevel.Information, Message = "Stopping replica {ReplicaId}: SIGTERM, SIGKILL after {GraceSeconds}s")]
    public static partial void Stopping(ILogger logger, string replicaId, double graceSeconds);

    [LoggerMessage(EventId = 3004, Level = LogLevel.Warning, Message = "Replica {ReplicaId} ignored SIGTERM for {GraceSeconds}s; sending SIGKILL")]
    public static partial void Killing(ILogger logger, string replicaId, double graceSeconds);

    [LoggerMessage(EventId = 3005, Level = LogLevel.Information, Message = "Removed replica {ReplicaId}")]
    public static partial void Removed(ILogger logger, string replicaId);

    [LoggerMessage(EventId = 3006, Level = LogLevel.Warning, Message = "Could not remove cgroup {Path}: processes are still in it")]
    public static partial void CgroupBusy(ILogger logger, string path);

    [LoggerMessage(EventId = 3007, Level = LogLevel.Information, Message = "Process driver limits: {Mechanism}")]
    public static partial void ProcessLimits(ILogger logger, string mechanism);

    [LoggerMessage(EventId = 3008, Level = LogLevel.Warning, Message = "Replica {ReplicaId}: an earlier run (pid {Pid}) has no record (its control plane died while starting it); killing it before starting again")]
    public static partial void EndingUnrecordedRun(ILogger logger, string replicaId, int pid);

    [LoggerMessage(EventId = 3101, Level = LogLevel.Information, Message = "Started container {ContainerId} for replica {ReplicaId} of {App}/{Service}")]
    public static partial void ContainerStarted(ILogger logger, string containerId, string replicaId, string app, string service);

    [LoggerMessage(EventId = 3102, Level = LogLevel.Information, Message = "Pulling image {Image}: not present on the engine")]
    public static partial void Pulling(ILogger logger, string image);

    [LoggerMessage(EventId = 3103, Level = LogLevel.Information, Message = "Building image {Tag} from {Context}")]
    public static partial void Building(ILogger logger, string tag, string context);
}
