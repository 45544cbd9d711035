namespace Berth.Server.Telemetry;

/// <summary>A span from an app (OTLP) or from the mesh: one row of a trace's waterfall. <c>Source</c> is "app" (OTLP) or
/// "mesh" (a proxied request, whose <c>Service</c> is the callee); <c>Kind</c> is OTLP's SpanKind in lower case, or "mesh".</summary>
public sealed record TelemetrySpan(
    string TraceId,
    string SpanId,
    string? ParentSpanId,
    string Service,
    string? Replica,
    string Name,
    string Kind,
    DateTimeOffset Start,
    TimeSpan Duration,
    bool Error,
    string? StatusMessage,
    string Source,
    IReadOnlyList<KeyValuePair<string, string>> Attributes);

/// <summary>A structured log record an app sent over OTLP.</summary>
public sealed record TelemetryLog(
    DateTimeOffset Time,
    string Service,
    string? Replica,
    string Severity,
    int SeverityNumber,
    string Body,
    string? TraceId,
    string? SpanId,
    IReadOnlyList<KeyValuePair<string, string>> Attributes);

/// <summary>One metric data point an app sent over OTLP: a gauge or sum value, or a histogram's count, sum and buckets.</summary>
public sealed record TelemetryMetricPoint(
    DateTimeOffset Time,
    string Service,
    string? Replica,
    string Name,
    string Unit,
    string Type,
    double Value,
    IReadOnlyList<KeyValuePair<string, string>> Attributes);

/// <summary>The resource attributes Berth reads: who sent the telemetry.</summary>
internal readonly record struct TelemetryResource(string Service, string? Replica)
{
    public static readonly TelemetryResource Unknown = new("unknown", null);

    public static TelemetryResource From(IReadOnlyList<KeyValuePair<string, string>> attributes)
    {
        string? service = null, replica = null, berthService = null;
        foreach (var (k, v) in attributes)
        {
            switch (k)
            {
                case "service.name":
                    service = v;
                    break;
                case "berth.service":
                    berthService = v;
                    break;
                case "berth.replica":
                case "service.instance.id" when replica is null:
                    replica = v;
                    break;
            }
        }

        // berth.service wins: an app may name itself differently, but the dashboard groups by the spec's services.
        return new TelemetryResource(berthService ?? service ?? "unknown", replica);
    }
}
