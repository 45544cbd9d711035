using System.Collections.Concurrent;
using Berth.Mesh.Observability;

namespace Berth.Server.Telemetry;

/// <summary>The control plane's telemetry in memory, bounded by <see cref="TelemetryOptions"/>: spans (apps over OTLP and the
/// mesh), structured logs, metric points, and per-service request series for the charts. Thread-safe.</summary>
public sealed class TelemetryStore : IMeshRequestObserver
{
    private readonly TelemetryOptions _options;
    private readonly Lock _lock = new();
    private readonly Queue<TelemetrySpan> _spans = new();
    private readonly Dictionary<string, List<TelemetrySpan>> _byTrace = new(StringComparer.Ordinal);
    private readonly Dictionary<string, TelemetrySpan> _bySpan = new(StringComparer.Ordinal);
    private readonly Queue<(long Seq, TelemetryLog Log)> _logs = new();
    private readonly Queue<TelemetryMetricPoint> _points = new();
    private readonly ConcurrentDictionary<string, RequestSeries> _requests = new(StringComparer.Ordinal);
    private long _logSeq;
    private long _version;

    public TelemetryStore(TelemetryOptions? options = null)
    {
        _options = options ?? new TelemetryOptions();
    }

    public TelemetryOptions Options => _options;

    /// <summary>Grows on every change; the live views compare it to skip unchanged pushes.</summary>
    public long Version => Interlocked.Read(ref _version);

    public int SpanCount
    {
        get
        {
            lock (_lock)
            {
                return _spans.Count;
            }
        }
    }

    /// <summary>A proxied request: a point of the callee's request series and, when it was forwarded (the mesh sent a
    /// traceparent upstream), a span of its trace whose parent is the caller's span from the traceparent it sent.</summary>
    public void OnRequest(in MeshRequestRecord r)
    {
        var error = r.Status >= 500 || r.Status == 0;
        var series = _requests.GetOrAdd(r.Service, _ => new RequestSeries());
        series.Add((r.Started + r.Elapsed).ToUnixTimeSeconds(), error, Math.Max(0, r.Attempts - 1), r.Elapsed.TotalMilliseconds, Math.Max(1, r.Weight));
        if (r.TraceParent is not { Length: >= 55 } sent)
        {
            return;
        }

        var traceId = sent.Substring(3, 32);
        var parent = r.CallerTraceParent is { Length: >= 55 } caller && caller.AsSpan(3, 32).SequenceEqual(traceId) ? caller.Substring(36, 16) : null;
        var invariant = System.Globalization.CultureInfo.InvariantCulture;
        AddSpans([new TelemetrySpan(traceId, sent.Substring(36, 16), parent, r.Service, r.Upstream == "-" ? null : r.Upstream,
            $"{r.Method} {r.Path}", "mesh", r.Started, r.Elapsed, error, error ? $"HTTP {r.Status}{(r.Error is null ? "" : ": " + r.Error)}" : null, "mesh",
            [
                KeyValuePair.Create("http.request.method", r.Method),
                KeyValuePair.Create("url.path", r.Path),
                KeyValuePair.Create("http.response.status_code", r.Status.ToString(invariant)),
                KeyValuePair.Create("berth.endpoint", r.Endpoint),
                KeyValuePair.Create("berth.upstream", r.Upstream),
                KeyValuePair.Create("berth.attempts", r.Attempts.ToString(invariant)),
            ])]);
    }

    public void AddSpans(IReadOnlyCollection<TelemetrySpan> spans)
    {
        lock (_lock)
        {
            foreach (var s in spans)
            {
                if (s.TraceId.Length == 0 || s.SpanId.Length == 0)
                {
                    continue;
                }

                _spans.Enqueue(s);
                _bySpan[s.SpanId] = s;
                if (!_byTrace.TryGetValue(s.TraceId, out var list))
                {
                    _byTrace[s.TraceId] = list = [];
                }

                list.Add(s);
            }

            while (_spans.Count > _options.MaxSpans)
            {
                var old = _spans.Dequeue();
                _bySpan.Remove(old.SpanId);
                if (_byTrace.TryGetValue(old.TraceId, out var list))
                {
                    list.Remove(old);
                    if (list.Count == 0)
                    {
                        _byTrace.Remove(old.TraceId);
                    }
                }
            }
        }

        Interlocked.Increment(ref _version);
    }

    public void AddLogs(IReadOnlyCollection<TelemetryLog> logs)
    {
        lock (_lock)
        {
            foreach (var l in logs)
            {
                _logs.Enqueue((++_logSeq, l));
            }

            while (_logs.Count > _options.MaxLogs)
            {
                _logs.Dequeue();
            }
        }

        Interlocked.Increment(ref _version);
    }

    public void AddMetrics(IReadOnlyCollection<TelemetryMetricPoint> points)
    {
        lock (_lock)
        {
            foreach (var p in points)
            {
                _points.Enqueue(p);
            }

            while (_points.Count > _options.MaxMetricPoints)
            {
                _points.Dequeue();
            }
        }

        Interlocked.Increment(ref _version);
    }

    /// <summary>Sets the ejected-endpoint and open-breaker gauges of a service for the current second.</summary>
    public void SetMeshGauges(string service, int ejected, int openBreakers) =>
        _requests.GetOrAdd(service, _ => new RequestSeries()).SetGauges(_options.TimeProvider.GetUtcNow().ToUnixTimeSeconds(), ejected, openBreakers);

    public IReadOnlyList<TelemetrySpan>? GetTrace(string traceId)
    {
        lock (_lock)
        {
            return _byTrace.TryGetValue(traceId, out var list) ? [.. list.OrderBy(s => s.Start)] : null;
        }
    }

    /// <summary>Traces newest first, each summarised by its root (or earliest) span; filters match any span of the trace.</summary>
    public IReadOnlyList<TraceSummary> SearchTraces(string? service, bool? error, TimeSpan? minDuration, int limit)
    {
        List<List<TelemetrySpan>> traces;
        lock (_lock)
        {
            traces = [.. _byTrace.Values.Select(l => l.ToList())];
        }

        return [.. traces
            .Select(Summarize)
            .Where(t => service is null || t.Services.Contains(service, StringComparer.Ordinal))
            .Where(t => error is null || t.Errors > 0 == error)
            .Where(t => minDuration is null || t.Duration >= minDuration)
            .OrderByDescending(t => t.Start)
            .Take(limit)];
    }

    private static TraceSummary Summarize(List<TelemetrySpan> spans)
    {
        var ids = spans.Select(s => s.SpanId).ToHashSet(StringComparer.Ordinal);
        var root = spans.Where(s => s.ParentSpanId is null || !ids.Contains(s.ParentSpanId)).OrderBy(s => s.Start).First();
        var start = spans.Min(s => s.Start);
        var end = spans.Max(s => s.Start + s.Duration);
        return new TraceSummary(root.TraceId, root.Source == "mesh" ? $"{root.Service}: {root.Name}" : $"{root.Service}: {root.Name}", start, end - start,
            spans.Count, spans.Count(s => s.Error), [.. spans.Select(s => s.Service).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal)]);
    }

    /// <summary>Structured logs after <paramref name="afterSeq"/>, optionally of one service or replica, oldest first.</summary>
    public IReadOnlyList<(long Seq, TelemetryLog Log)> Logs(long afterSeq, string? service, string? replica, int limit)
    {
        lock (_lock)
        {
            return [.. _logs.Where(l => l.Seq > afterSeq && (service is null || l.Log.Service == service) && (replica is null || l.Log.Replica == replica)).TakeLast(limit)];
        }
    }

    /// <summary>Metric names per service from the apps' OTLP metrics.</summary>
    public IReadOnlyList<TelemetryMetricPoint> MetricPoints(string service, string? name, DateTimeOffset since)
    {
        lock (_lock)
        {
            return [.. _points.Where(p => p.Service == service && (name is null || p.Name == name) && p.Time >= since)];
        }
    }

    public IReadOnlyList<RequestPoint> Requests(string service, long from, long to, int step) =>
        _requests.TryGetValue(service, out var s) ? s.Range(from, to, step) : [];

    /// <summary>Who calls whom in the last <paramref name="window"/>: one edge per caller → callee from the mesh's spans. The
    /// caller is the service of the nearest app span above the mesh hop (the client span that sent it), else the mesh hop
    /// above it; "external" when the request came in without a trace context (a browser, curl, a test).</summary>
    public IReadOnlyList<GraphEdge> Edges(TimeSpan window)
    {
        var since = _options.TimeProvider.GetUtcNow() - window;
        var groups = new Dictionary<(string From, string To), List<TelemetrySpan>>();
        lock (_lock)
        {
            foreach (var list in _byTrace.Values)
            {
                foreach (var s in list)
                {
                    if (s.Start < since)
                    {
                        continue;
                    }

                    // Calls the mesh sees as HTTP are its own spans; others (a TCP database) only the caller's client span
                    // names, through peer.service, as Kiali draws them from the caller's telemetry.
                    var peer = s.Source == "app" && s.Kind == "client" ? s.Attributes.FirstOrDefault(a => a.Key == "peer.service").Value : null;
                    if (s.Source != "mesh" && peer is null)
                    {
                        continue;
                    }

                    var key = peer is null ? (CallerOf(s), s.Service) : (s.Service, peer);
                    if (!groups.TryGetValue(key, out var g))
                    {
                        groups[key] = g = [];
                    }

                    g.Add(s);
                }
            }
        }

        return [.. groups.Select(g =>
        {
            var durations = g.Value.Select(s => s.Duration.TotalMilliseconds).Order().ToList();
            var p99 = durations[Math.Clamp((int)Math.Ceiling(0.99 * durations.Count) - 1, 0, durations.Count - 1)];
            return new GraphEdge(g.Key.From, g.Key.To, g.Value.Count / window.TotalSeconds, (double)g.Value.Count(s => s.Error) / g.Value.Count, p99, g.Value.Count);
        }).OrderBy(e => e.From, StringComparer.Ordinal).ThenBy(e => e.To, StringComparer.Ordinal)];
    }

    private string CallerOf(TelemetrySpan mesh)
    {
        var parent = mesh.ParentSpanId;
        for (var depth = 0; depth < 64 && parent is not null; depth++)
        {
            if (!_bySpan.TryGetValue(parent, out var p))
            {
                // A parent we never saw: a caller outside the app when nothing of this trace started earlier (a browser or
                // a test sending its own traceparent), else a caller whose spans have not arrived yet (or were dropped).
                return _byTrace.TryGetValue(mesh.TraceId, out var trace) && trace.Any(s => s.Start < mesh.Start) ? "unknown" : "external";
            }

            if (p.Source == "app" || p.Source == "mesh")
            {
                return p.Service;
            }

            parent = p.ParentSpanId;
        }

        return "external";
    }
}

/// <summary>A trace in the search results.</summary>
public sealed record TraceSummary(string TraceId, string Name, DateTimeOffset Start, TimeSpan Duration, int Spans, int Errors, IReadOnlyList<string> Services);

/// <summary>Requests from one service to another over the mesh.</summary>
public sealed record GraphEdge(string From, string To, double Rps, double ErrorRate, double P99Ms, int Requests);
