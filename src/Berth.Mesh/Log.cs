using Microsoft.Extensions.Logging;

namespace Berth.Mesh;

/// <summary>The mesh's log messages, source-generated, with stable event ids (6xxx).</summary>
internal static partial class Log
{
    [LoggerMessage(6001, LogLevel.Information, "Mesh listener for {Service}.{Endpoint} ({Protocol}) on {Address}")]
    public static partial void ListenerStarted(ILogger logger, string service, string endpoint, string protocol, string address);

    [LoggerMessage(6002, LogLevel.Information, "Mesh listener for {Service}.{Endpoint} stopped")]
    public static partial void ListenerStopped(ILogger logger, string service, string endpoint);

    [LoggerMessage(6003, LogLevel.Debug, "Routes for {Service}.{Endpoint}: {Count} upstream(s)")]
    public static partial void RoutesUpdated(ILogger logger, string service, string endpoint, int count);

    [LoggerMessage(6004, LogLevel.Warning, "Ejected {Upstream} from {Service}.{Endpoint} for {Duration} after consecutive errors")]
    public static partial void Ejected(ILogger logger, string upstream, string service, string endpoint, TimeSpan duration);

    [LoggerMessage(6005, LogLevel.Information, "{Upstream} of {Service}.{Endpoint} returned from ejection")]
    public static partial void Returned(ILogger logger, string upstream, string service, string endpoint);

    [LoggerMessage(6006, LogLevel.Warning, "Circuit {Scope} of {Service}.{Endpoint} is now {State}")]
    public static partial void BreakerChanged(ILogger logger, string scope, string service, string endpoint, string state);

    [LoggerMessage(6007, LogLevel.Information, "{Method} {Path} {Status} {Upstream} {ElapsedMs:0.###}ms attempts={Attempts} traceparent={TraceParent}")]
    public static partial void Access(ILogger logger, string method, string path, int status, string upstream, double elapsedMs, int attempts, string traceParent);

    [LoggerMessage(6008, LogLevel.Debug, "Attempt to {Upstream} failed: {Reason}")]
    public static partial void AttemptFailed(ILogger logger, string upstream, string reason);

    [LoggerMessage(6009, LogLevel.Debug, "TCP connect to {Upstream} failed: {Reason}")]
    public static partial void ConnectFailed(ILogger logger, string upstream, string reason);

    [LoggerMessage(6010, LogLevel.Warning, "{Upstream} of {Service}.{Endpoint} is now {Health} by active health checks")]
    public static partial void HealthChanged(ILogger logger, string upstream, string service, string endpoint, string health);

    [LoggerMessage(6011, LogLevel.Error, "Request through {Service}.{Endpoint} failed in the mesh")]
    public static partial void ProxyFailed(ILogger logger, string service, string endpoint, Exception exception);

    [LoggerMessage(6012, LogLevel.Information, "Pod {Pod}: outbound listener for {Service}.{Endpoint} on {Address}")]
    public static partial void PodListenerStarted(ILogger logger, string pod, string service, string endpoint, string address);

    [LoggerMessage(6013, LogLevel.Warning, "Pod {Pod}: cannot listen for {Service}.{Endpoint} on {Address}: {Reason}")]
    public static partial void PodListenerFailed(ILogger logger, string pod, string service, string endpoint, string address, string reason);

    [LoggerMessage(6015, LogLevel.Warning, "Host-gateway pods: the host's loopback listeners could not be mirrored: {Reason}")]
    public static partial void HostMirrorFailed(ILogger logger, string reason);

    [LoggerMessage(6014, LogLevel.Debug, "Pod {Pod}: outbound call to {Service}.{Endpoint} has no route: {Reason}")]
    public static partial void PodOutboundFailed(ILogger logger, string pod, string service, string endpoint, string reason);
}
