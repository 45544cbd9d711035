namespace Berth.Server.Telemetry;

/// <summary>How much telemetry the control plane keeps in memory, and where it forwards it. Defaults follow the Aspire
/// dashboard's (10,000 log entries, 10,000 traces, 50,000 metric points), counted here in spans rather than traces.</summary>
public sealed record TelemetryOptions
{
    /// <summary>Spans kept, app and mesh together: 50,000 (≈ Aspire's 10,000 traces of five spans). The oldest go first.</summary>
    public int MaxSpans { get; init; } = TelemetryDefaults.MaxSpans;

    /// <summary>Structured log records kept: 10,000, as Aspire's MaxLogCount.</summary>
    public int MaxLogs { get; init; } = TelemetryDefaults.MaxLogs;

    /// <summary>Metric data points kept: 50,000, as Aspire's MaxMetricsCount.</summary>
    public int MaxMetricPoints { get; init; } = TelemetryDefaults.MaxMetricPoints;

    /// <summary>A collector to forward every OTLP export to (HTTP/protobuf, e.g. <c>http://127.0.0.1:4318</c>); null: none.</summary>
    public Uri? ForwardEndpoint { get; init; }

    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;
}

/// <summary>Defaults of <see cref="TelemetryOptions"/>.</summary>
public static class TelemetryDefaults
{
    public const int MaxSpans = 50_000;

    public const int MaxLogs = 10_000;

    public const int MaxMetricPoints = 50_000;

    /// <summary>Request history per service for the metrics charts: one hour in one-second buckets (the longest range the
    /// dashboard offers, as Kiali's default "last 1h" maximum for live graphs).</summary>
    public const int RequestHistorySeconds = 3600;
}
