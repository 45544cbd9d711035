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
}
