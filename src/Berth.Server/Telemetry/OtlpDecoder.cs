using System.Globalization;

namespace Berth.Server.Telemetry;

/// <summary>Reads OTLP protobuf export requests (opentelemetry-proto, collector/{trace,logs,metrics}/v1) into Berth's
/// records. Field numbers follow the .proto files; unknown fields are skipped.</summary>
internal static class OtlpDecoder
{
    private static readonly string[] Kinds = ["unspecified", "internal", "server", "client", "producer", "consumer"];

    // ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1; }
    // ResourceSpans { Resource resource = 1; repeated ScopeSpans scope_spans = 2; }
    // ScopeSpans { InstrumentationScope scope = 1; repeated Span spans = 2; }
    public static List<TelemetrySpan> DecodeTraces(ReadOnlySpan<byte> data)
    {
        var spans = new List<TelemetrySpan>();
        var request = new ProtoReader(data);
        while (request.Next())
        {
            if (request.Field != 1 || request.WireType != 2)
            {
                request.Skip();
                continue;
            }

            var rs = new ProtoReader(request.ReadBytes());
            var resource = TelemetryResource.Unknown;
            var scopes = new List<byte[]>();
            while (rs.Next())
            {
                switch (rs.Field)
                {
                    case 1 when rs.WireType == 2:
                        resource = ReadResource(rs.ReadBytes());
                        break;
                    case 2 when rs.WireType == 2:
                        scopes.Add(rs.ReadBytes().ToArray());
                        break;
                    default:
                        rs.Skip();
                        break;
                }
            }

            foreach (var scope in scopes)
            {
                var ss = new ProtoReader(scope);
                while (ss.Next())
                {
                    if (ss.Field == 2 && ss.WireType == 2)
                    {
                        spans.Add(ReadSpan(ss.ReadBytes(), resource));
                    }
                    else
                    {
                        ss.Skip();
                    }
                }
            }
        }

        return spans;
    }

    // Span { bytes trace_id = 1; bytes span_id = 2; bytes parent_span_id = 4; string name = 5; SpanKind kind = 6;
    //        fixed64 start_time_unix_nano = 7; fixed64 end_time_unix_nano = 8; repeated KeyValue attributes = 9; Status status = 15; }
    // Status { string message = 2; StatusCode code = 3; }  (0 unset, 1 ok, 2 error)
    private static TelemetrySpan ReadSpan(ReadOnlySpan<byte> data, TelemetryResource resource)
    {
        var r = new ProtoReader(data);
        string traceId = "", spanId = "", name = "";
        string? parent = null, statusMessage = null;
        var kind = 0;
        ulong start = 0, end = 0;
        var error = false;
        var attributes = new List<KeyValuePair<string, string>>();
        while (r.Next())
        {
            switch (r.Field)
            {
                case 1 when r.WireType == 2:
                    traceId = Convert.ToHexStringLower(r.ReadBytes());
                    break;
                case 2 when r.WireType == 2:
                    spanId = Convert.ToHexStringLower(r.ReadBytes());
                    break;
                case 4 when r.WireType == 2:
                    var p = r.ReadBytes();
                    parent = p.IsEmpty ? null : Convert.ToHexStringLower(p);
                    break;
                case 5 when r.WireType == 2:
                    name = r.ReadString();
                    break;
                case 6 when r.WireType == 0:
                    kind = (int)r.ReadVarint();
                    break;
                case 7 when r.WireType == 1:
                    start = r.ReadFixed64();
                    break;
                case 8 when r.WireType == 1:
                    end = r.ReadFixed64();
                    break;
                case 9 when r.WireType == 2:
                    attributes.Add(ReadKeyValue(r.ReadBytes()));
                    break;
                case 15 when r.WireType == 2:
                    var s = new ProtoReader(r.ReadBytes());
                    while (s.Next())
                    {
                        if (s.Field == 2 && s.WireType == 2)
                        {
                            statusMessage = s.ReadString();
                        }
                        else if (s.Field == 3 && s.WireType == 0)
                        {
                            error = s.ReadVarint() == 2;
                        }
                        else
                        {
                            s.Skip();
                        }
                    }

                    break;
                default:
                    r.Skip();
                    break;
            }
        }

        var startTime = FromUnixNanos(start);
        return new TelemetrySpan(traceId, spanId, parent, resource.Service, resource.Replica, name,
            kind >= 0 && kind < Kinds.Length ? Kinds[kind] : "unspecified", startTime,
            end > start ? TimeSpan.FromTicks((long)((end - start) / 100)) : TimeSpan.Zero, error, statusMessage, "app", attributes);
    }

    // ExportLogsServiceRequest { repeated ResourceLogs resource_logs = 1; } ResourceLogs { Resource resource = 1; repeated ScopeLogs scope_logs = 2; }
    // ScopeLogs { repeated LogRecord log_records = 2; }
    // LogRecord { fixed64 time_unix_nano = 1; SeverityNumber severity_number = 2; string severity_text = 3; AnyValue body = 5;
    //             repeated KeyValue attributes = 6; bytes trace_id = 9; bytes span_id = 10; fixed64 observed_time_unix_nano = 11; }
    public static List<TelemetryLog> DecodeLogs(ReadOnlySpan<byte> data)
    {
        var logs = new List<TelemetryLog>();
        ForEachResourceItem(data, (resource, record) => logs.Add(ReadLog(record, resource)));
        return logs;
    }

    private static TelemetryLog ReadLog(ReadOnlySpan<byte> data, TelemetryResource resource)
    {
        var r = new ProtoReader(data);
        ulong time = 0, observed = 0;
        var severity = 0;
        string? severityText = null, traceId = null, spanId = null;
        var body = "";
        var attributes = new List<KeyValuePair<string, string>>();
        while (r.Next())
        {
            switch (r.Field)
            {
                case 1 when r.WireType == 1:
                    time = r.ReadFixed64();
                    break;
                case 2 when r.WireType == 0:
                    severity = (int)r.ReadVarint();
                    break;
                case 3 when r.WireType == 2:
                    severityText = r.ReadString();
                    break;
                case 5 when r.WireType == 2:
                    body = ReadAnyValue(r.ReadBytes());
                    break;
                case 6 when r.WireType == 2:
                    attributes.Add(ReadKeyValue(r.ReadBytes()));
                    break;
                case 9 when r.WireType == 2:
                    traceId = NullIfEmpty(Convert.ToHexStringLower(r.ReadBytes()));
                    break;
                case 10 when r.WireType == 2:
                    spanId = NullIfEmpty(Convert.ToHexStringLower(r.ReadBytes()));
                    break;
                case 11 when r.WireType == 1:
                    observed = r.ReadFixed64();
                    break;
                default:
                    r.Skip();
                    break;
            }
        }

        return new TelemetryLog(FromUnixNanos(time != 0 ? time : observed), resource.Service, resource.Replica,
            severityText is { Length: > 0 } ? severityText : SeverityName(severity), severity, body, traceId, spanId, attributes);
    }

    /// <summary>SeverityNumber ranges: 1-4 trace, 5-8 debug, 9-12 info, 13-16 warn, 17-20 error, 21-24 fatal.</summary>
    public static string SeverityName(int n) => n switch
    {
        <= 0 => "unspecified",
        <= 4 => "trace",
        <= 8 => "debug",
        <= 12 => "info",
        <= 16 => "warn",
        <= 20 => "error",
        _ => "fatal",
    };

    // ExportMetricsServiceRequest { repeated ResourceMetrics resource_metrics = 1; } ResourceMetrics { Resource resource = 1; repeated ScopeMetrics scope_metrics = 2; }
    // ScopeMetrics { repeated Metric metrics = 2; }
    // Metric { string name = 1; string unit = 3; Gauge gauge = 5; Sum sum = 7; Histogram histogram = 9; ExponentialHistogram exponential_histogram = 10; Summary summary = 11; }
    // Gauge/Sum/Histogram { repeated *DataPoint data_points = 1; }
    // NumberDataPoint { fixed64 time_unix_nano = 3; double as_double = 4; sfixed64 as_int = 6; repeated KeyValue attributes = 7; }
    // HistogramDataPoint { fixed64 time_unix_nano = 3; fixed64 count = 4; double sum = 5; repeated KeyValue attributes = 9; }
    public static List<TelemetryMetricPoint> DecodeMetrics(ReadOnlySpan<byte> data)
    {
        var points = new List<TelemetryMetricPoint>();
        ForEachResourceItem(data, (resource, metric) => ReadMetric(metric, resource, points));
        return points;
    }

    private static void ReadMetric(ReadOnlySpan<byte> data, TelemetryResource resource, List<TelemetryMetricPoint> points)
    {
        var r = new ProtoReader(data);
        string name = "", unit = "";
        var bodies = new List<(string Type, byte[] Data)>();
        while (r.Next())
        {
            switch (r.Field)
            {
                case 1 when r.WireType == 2:
                    name = r.ReadString();
                    break;
                case 3 when r.WireType == 2:
                    unit = r.ReadString();
                    break;
                case 5 when r.WireType == 2:
                    bodies.Add(("gauge", r.ReadBytes().ToArray()));
                    break;
                case 7 when r.WireType == 2:
                    bodies.Add(("sum", r.ReadBytes().ToArray()));
                    break;
                case 9 when r.WireType == 2:
                    bodies.Add(("histogram", r.ReadBytes().ToArray()));
                    break;
                default:
                    r.Skip();
                    break;
            }
        }

        foreach (var (type, body) in bodies)
        {
            var b = new ProtoReader(body);
            while (b.Next())
            {
                if (b.Field == 1 && b.WireType == 2)
                {
                    points.Add(ReadPoint(b.ReadBytes(), type, name, unit, resource));
                }
                else
                {
                    b.Skip();
                }
            }
        }
    }

    private static TelemetryMetricPoint ReadPoint(ReadOnlySpan<byte> data, string type, string name, string unit, TelemetryResource resource)
    {
        var histogram = type == "histogram";
        var r = new ProtoReader(data);
        ulong time = 0;
        double value = 0, sum = 0;
        ulong count = 0;
        var attributes = new List<KeyValuePair<string, string>>();
        while (r.Next())
        {
            switch (r.Field)
            {
                case 3 when r.WireType == 1:
                    time = r.ReadFixed64();
                    break;
                case 4 when r.WireType == 1 && !histogram:
                    value = r.ReadDouble();
                    break;
                case 6 when r.WireType == 1 && !histogram:
                    value = unchecked((long)r.ReadFixed64());
                    break;
                case 7 when r.WireType == 2 && !histogram:
                case 9 when r.WireType == 2 && histogram:
                    attributes.Add(ReadKeyValue(r.ReadBytes()));
                    break;
                case 4 when r.WireType == 1 && histogram:
                    count = r.ReadFixed64();
                    break;
                case 5 when r.WireType == 1 && histogram:
                    sum = r.ReadDouble();
                    break;
                default:
                    r.Skip();
                    break;
            }
        }

        // A histogram point is shown by its mean; count and sum stay in the attributes for the table.
        if (histogram)
        {
            value = count == 0 ? 0 : sum / count;
            attributes.Add(KeyValuePair.Create("count", count.ToString(CultureInfo.InvariantCulture)));
            attributes.Add(KeyValuePair.Create("sum", sum.ToString("G6", CultureInfo.InvariantCulture)));
        }

        return new TelemetryMetricPoint(FromUnixNanos(time), resource.Service, resource.Replica, name, unit, type, value, attributes);
    }

    private delegate void ItemHandler(TelemetryResource resource, ReadOnlySpan<byte> item);

    /// <summary>Logs and metrics share a shape: request { resource_x = 1 } → { resource = 1; scope_x = 2 } → { items = 2 }.</summary>
    private static void ForEachResourceItem(ReadOnlySpan<byte> data, ItemHandler handle)
    {
        var request = new ProtoReader(data);
        while (request.Next())
        {
            if (request.Field != 1 || request.WireType != 2)
            {
                request.Skip();
                continue;
            }

            var rx = new ProtoReader(request.ReadBytes());
            var resource = TelemetryResource.Unknown;
            var scopes = new List<byte[]>();
            while (rx.Next())
            {
                switch (rx.Field)
                {
                    case 1 when rx.WireType == 2:
                        resource = ReadResource(rx.ReadBytes());
                        break;
                    case 2 when rx.WireType == 2:
                        scopes.Add(rx.ReadBytes().ToArray());
                        break;
                    default:
                        rx.Skip();
                        break;
                }
            }

            foreach (var scope in scopes)
            {
                var sx = new ProtoReader(scope);
                while (sx.Next())
                {
                    if (sx.Field == 2 && sx.WireType == 2)
                    {
                        handle(resource, sx.ReadBytes());
                    }
                    else
                    {
                        sx.Skip();
                    }
                }
            }
        }
    }

    // Resource { repeated KeyValue attributes = 1; }
    private static TelemetryResource ReadResource(ReadOnlySpan<byte> data)
    {
        var r = new ProtoReader(data);
        var attributes = new List<KeyValuePair<string, string>>();
        while (r.Next())
        {
            if (r.Field == 1 && r.WireType == 2)
            {
                attributes.Add(ReadKeyValue(r.ReadBytes()));
            }
            else
            {
                r.Skip();
            }
        }

        return TelemetryResource.From(attributes);
    }

    // KeyValue { string key = 1; AnyValue value = 2; }
    private static KeyValuePair<string, string> ReadKeyValue(ReadOnlySpan<byte> data)
    {
        var r = new ProtoReader(data);
        string key = "", value = "";
        while (r.Next())
        {
            if (r.Field == 1 && r.WireType == 2)
            {
                key = r.ReadString();
            }
            else if (r.Field == 2 && r.WireType == 2)
            {
                value = ReadAnyValue(r.ReadBytes());
            }
            else
            {
                r.Skip();
            }
        }

        return KeyValuePair.Create(key, value);
    }

    // AnyValue { oneof { string string_value = 1; bool bool_value = 2; int64 int_value = 3; double double_value = 4;
    //            ArrayValue array_value = 5; KeyValueList kvlist_value = 6; bytes bytes_value = 7; } }
    // ArrayValue { repeated AnyValue values = 1; }  KeyValueList { repeated KeyValue values = 1; }
    private static string ReadAnyValue(ReadOnlySpan<byte> data)
    {
        var r = new ProtoReader(data);
        var value = "";
        while (r.Next())
        {
            switch (r.Field)
            {
                case 1 when r.WireType == 2:
                    value = r.ReadString();
                    break;
                case 2 when r.WireType == 0:
                    value = r.ReadVarint() != 0 ? "true" : "false";
                    break;
                case 3 when r.WireType == 0:
                    value = unchecked((long)r.ReadVarint()).ToString(CultureInfo.InvariantCulture);
                    break;
                case 4 when r.WireType == 1:
                    value = r.ReadDouble().ToString("G", CultureInfo.InvariantCulture);
                    break;
                case 5 when r.WireType == 2:
                    value = "[" + string.Join(", ", Repeated(r.ReadBytes(), item => ReadAnyValue(item))) + "]";
                    break;
                case 6 when r.WireType == 2:
                    value = "{" + string.Join(", ", Repeated(r.ReadBytes(), item => { var kv = ReadKeyValue(item); return kv.Key + "=" + kv.Value; })) + "}";
                    break;
                case 7 when r.WireType == 2:
                    value = Convert.ToBase64String(r.ReadBytes());
                    break;
                default:
                    r.Skip();
                    break;
            }
        }

        return value;
    }

    private delegate string ItemReader(ReadOnlySpan<byte> item);

    private static List<string> Repeated(ReadOnlySpan<byte> data, ItemReader read)
    {
        var r = new ProtoReader(data);
        var items = new List<string>();
        while (r.Next())
        {
            if (r.Field == 1 && r.WireType == 2)
            {
                items.Add(read(r.ReadBytes()));
            }
            else
            {
                r.Skip();
            }
        }

        return items;
    }

    private static DateTimeOffset FromUnixNanos(ulong nanos) =>
        nanos == 0 ? DateTimeOffset.UnixEpoch : DateTimeOffset.UnixEpoch.AddTicks((long)(nanos / 100));

    private static string? NullIfEmpty(string s) => s.Length == 0 || s.All(c => c == '0') ? null : s;
}
