using Microsoft.Extensions.Logging;

namespace Berth.Orchestration;

internal static partial class Log
{
    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "{Type} {Service}/{Replica}: {Message}")]
    public static partial void Event(ILogger logger, string type, string? service, string? replica, string message);

    [LoggerMessage(EventId = 2, Level = LogLevel.Error, Message = "Reconcile failed; retrying at the next resync")]
    public static partial void ReconcileFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 3, Level = LogLevel.Warning, Message = "Driver call {Operation} for replica {Replica} failed")]
    public static partial void DriverFailed(ILogger logger, string operation, string replica, Exception exception);

    [LoggerMessage(EventId = 4, Level = LogLevel.Warning, Message = "Route update for {Service}.{Endpoint} failed")]
    public static partial void RouteFailed(ILogger logger, string service, string endpoint, Exception exception);

    [LoggerMessage(EventId = 20, Level = LogLevel.Warning, Message = "Record of replica {Replica} not written ({Problem}); kept in memory and written again each pass")]
    public static partial void StoreWriteFailed(ILogger logger, string replica, string problem);

    [LoggerMessage(EventId = 21, Level = LogLevel.Warning, Message = "Event not kept: {Problem}")]
    public static partial void EventLost(ILogger logger, string problem);
}
