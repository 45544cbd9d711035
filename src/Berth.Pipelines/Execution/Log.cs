using Microsoft.Extensions.Logging;

namespace Berth.Pipelines.Execution;

/// <summary>Source-generated log messages of the pipeline engine; messages carry masked text only.</summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 8001, Level = LogLevel.Information, Message = "Run {RunId} of pipeline {Pipeline} started ({Trigger})")]
    public static partial void RunStarted(ILogger logger, long runId, string pipeline, string trigger);

    [LoggerMessage(EventId = 8002, Level = LogLevel.Information, Message = "Run {RunId} finished: {Status}")]
    public static partial void RunFinished(ILogger logger, long runId, string status);

    [LoggerMessage(EventId = 8003, Level = LogLevel.Information, Message = "Run {RunId} job {Job}: {Status}")]
    public static partial void JobFinished(ILogger logger, long runId, string job, string status);

    [LoggerMessage(EventId = 8004, Level = LogLevel.Warning, Message = "Run {RunId} job {Job} step {Step} failed: {Reason}")]
    public static partial void StepFailed(ILogger logger, long runId, string job, string step, string reason);

    [LoggerMessage(EventId = 8005, Level = LogLevel.Information, Message = "Run {RunId} cancel requested")]
    public static partial void CancelRequested(ILogger logger, long runId);
}
