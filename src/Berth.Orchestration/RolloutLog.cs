using Microsoft.Extensions.Logging;

namespace Berth.Orchestration;

/// <summary>Rollout and autoscaler log messages (event ids 20–29).</summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 20, Level = LogLevel.Warning, Message = "Autoscaler pass failed; retrying at the next sync period")]
    public static partial void AutoscaleFailed(ILogger logger, Exception exception);
}
