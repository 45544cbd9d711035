using System.Globalization;
using System.Reflection;
using System.Text;
using System.Text.Json;
using Berth.Core.Model;
using Berth.Orchestration;
using Berth.Orchestration.Controllers;
using Berth.Orchestration.State;
using Berth.Runtime;
using Berth.Server.Telemetry;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Berth.Server.Dashboard;

/// <summary>The dashboard's pages (embedded static files) and its read endpoints under <c>/dashboard/api</c>. Actions are
/// not here: the page calls the same <c>/v1</c> endpoints the CLI does, with its session cookie and CSRF token.</summary>
internal static class DashboardEndpoints
{
    private static readonly Assembly Assets = typeof(DashboardEndpoints).Assembly;

    /// <summary>What the browser may load: only this origin, no inline script, no framing (clickjacking). Inline style
    /// attributes are allowed (bar widths, span offsets, service colours); style elements and scripts are not.</summary>
    private const string ContentSecurityPolicy =
        "default-src 'self'; script-src 'self'; style-src 'self'; style-src-attr 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

    public static void Map(WebApplication app, DashboardContext d)
    {
        app.MapGet("/", (HttpContext context) => Page(context, d));
        app.MapGet("/assets/{file}", (string file, HttpContext context) => Asset(context, file));
        app.MapGet("/login", (HttpContext context) => Login(context, d));

        var api = app.MapGroup("/dashboard/api");
        api.MapGet("/stream", async (HttpContext context) =>
        {
            StartSse(context);
            await foreach (var message in d.Feed.SubscribeAsync(context.RequestAborted))
            {
                await context.Response.Body.WriteAsync(message, context.RequestAborted);
                await context.Response.Body.FlushAsync(context.RequestAborted);
            }
        });
        api.MapGet("/replicas/{id}", (string id) => Json(d, ReplicaDetail(d, id)));
        api.MapGet("/logs", (HttpContext context) => LogsAsync(context, d));
        api.MapGet("/log-files", (HttpContext context) => Json(d, LogFiles(d, Replica(d, context.Request.Query["replica"]))));
        api.MapGet("/log-file", (HttpContext context) =>
        {
            var replica = Replica(d, context.Request.Query["replica"]);
            var name = context.Request.Query["name"].ToString();
            var file = LogFiles(d, replica).FirstOrDefault(f => f.Name == name)
                ?? throw new ControlPlaneException(ControlPlaneError.NotFound, $"no log file '{name}' for replica {replica.Id}; /dashboard/api/log-files lists them");
            return Results.Text(d.Redactor.Redact(File.ReadAllText(file.Path)), "text/plain; charset=utf-8");
        });
        api.MapGet("/telemetry/logs", (HttpContext context) =>
        {
            var service = NullIfEmpty(context.Request.Query["service"]);
            return Json(d, d.Telemetry.Logs(0, service, NullIfEmpty(context.Request.Query["replica"]), 500).Select(l => new
            {
                seq = l.Seq, time = l.Log.Time, service = l.Log.Service, replica = l.Log.Replica, severity = l.Log.Severity,
                body = l.Log.Body, traceId = l.Log.TraceId, attributes = l.Log.Attributes.ToDictionary(a => a.Key, a => a.Value),
            }));
        });
        api.MapGet("/traces", (HttpContext context) =>
        {
            var q = context.Request.Query;
            bool? error = q["status"].ToString() switch { "error" => true, "ok" => false, _ => null };
            TimeSpan? min = double.TryParse(q["minMs"], NumberStyles.Float, CultureInfo.InvariantCulture, out var ms) ? TimeSpan.FromMilliseconds(ms) : null;
            return Json(d, d.Telemetry.SearchTraces(NullIfEmpty(q["service"]), error, min, 200).Select(t => new
            {
                traceId = t.TraceId, name = t.Name, start = t.Start, durationMs = t.Duration.TotalMilliseconds, spans = t.Spans, errors = t.Errors, services = t.Services,
            }));
        });
        api.MapGet("/traces/{id}", (string id) =>
        {
            var spans = d.Telemetry.GetTrace(id) ?? throw new ControlPlaneException(ControlPlaneError.NotFound, $"no trace {id} (kept: the newest {d.Telemetry.Options.MaxSpans} spans)");
            return Json(d, spans.Select(s => new
            {
                traceId = s.TraceId, spanId = s.SpanId, parentSpanId = s.ParentSpanId, service = s.Service, replica = s.Replica, name = s.Name,
                kind = s.Kind, source = s.Source, start = s.Start, durationMs = s.Duration.TotalMilliseconds, error = s.Error, status = s.StatusMessage,
                attributes = s.Attributes.ToDictionary(a => a.Key, a => a.Value),
            }));
        });
        api.MapGet("/graph", (HttpContext context) =>
        {
            var window = TimeSpan.FromSeconds(int.TryParse(context.Request.Query["window"], out var w) && w is > 0 and <= 3600 ? w : 60);
            var app = d.Plane.Current?.Application;
            var routes = d.Sampler.Routes;
            var edges = d.Telemetry.Edges(window);
            var names = (app?.Services.Select(s => s.Name) ?? []).Concat(edges.SelectMany(e => new[] { e.From, e.To })).Distinct(StringComparer.Ordinal);
            return Json(d, new
            {
                windowSeconds = window.TotalSeconds,
                nodes = names.Select(n => new
                {
                    name = n,
                    isService = app?.FindService(n) is not null,
                    ready = d.Plane.Replicas.Count(r => r.Service == n && r.Phase == ReplicaPhase.Ready),
                    replicas = d.Plane.Replicas.Count(r => r.Service == n),
                    ejected = routes.Where(r => r.Service == n).SelectMany(r => r.Upstreams).Where(u => u.Ejected).Select(u => u.Replica),
                    openBreakers = routes.Where(r => r.Service == n && LiveSampler.IsOpen(r.Circuit)).Select(r => r.Endpoint)
                        .Concat(routes.Where(r => r.Service == n).SelectMany(r => r.Upstreams).Where(u => LiveSampler.IsOpen(u.Circuit)).Select(u => u.Replica)),
                    protocol = app?.FindService(n)?.Endpoints.FirstOrDefault()?.Protocol == EndpointProtocol.Tcp ? "tcp" : "http",
                }),
                edges = edges.Select(e => new { from = e.From, to = e.To, rps = e.Rps, errorRate = e.ErrorRate, p99Ms = e.P99Ms, requests = e.Requests }),
                // Calls the mesh carries without spans (TCP) come from the apps' own spans.
                dependsOn = app?.Services.SelectMany(s => s.DependsOn.Select(x => new { from = s.Name, to = x.Service })),
            });
        });
        api.MapGet("/metrics", (HttpContext context) =>
        {
            var service = NullIfEmpty(context.Request.Query["service"]) ?? throw new ControlPlaneException(ControlPlaneError.Invalid, "query 'service' is required");
            var range = int.TryParse(context.Request.Query["range"], out var r) && r is >= 60 and <= 3600 ? r : 300;
            var now = d.Time.GetUtcNow();
            var to = now.ToUnixTimeSeconds() - 1;
            var step = Math.Max(1, range / 120);
            var since = now - TimeSpan.FromSeconds(range);
            return Json(d, new
            {
                service,
                range,
                step,
                requests = d.Telemetry.Requests(service, to - range + 1, to, step),
                replicas = d.Plane.Replicas.Where(x => x.Service == service).Select(x => new
                {
                    id = x.Id,
                    points = d.Sampler.History(x.Id, since).Select(p => new { t = p.Time.ToUnixTimeSeconds(), cpu = p.CpuPercent, mem = p.MemoryBytes }),
                }),
                appMetrics = d.Telemetry.MetricPoints(service, null, since).GroupBy(p => p.Name).Select(g => new
                {
                    name = g.Key, unit = g.First().Unit, type = g.First().Type,
                    points = g.GroupBy(p => p.Time.ToUnixTimeSeconds()).Select(t => new { t = t.Key, v = t.Sum(p => p.Value) }).OrderBy(p => p.t),
                }),
            });
        });
        api.MapGet("/rollouts", () =>
        {
            var app = d.Plane.Current?.Application;
            return Json(d, (app?.Services ?? []).Select(s => new
            {
                service = s.Name,
                status = d.Plane.GetRollout(s.Name) is var st ? new { revision = st.Revision, state = ResourceFeed.StateName(st.State), message = st.Message } : null,
                history = d.Plane.GetRolloutHistory(s.Name),
                events = d.Plane.Store.ListNewestEvents(50, service: s.Name, types: RolloutViewEvents).Select(ResourceFeed.EventView),
            }));
        });
        PipelineEndpoints.Map(app, d);
        KubernetesEndpoints.Map(app, d);
    }

    /// <summary>The events the Rollouts view explains a rollout with: its progress, a roll back and why, and the revisions and scaling around it.</summary>
    private static readonly string[] RolloutViewEvents =
    [
        RolloutEvents.Started, RolloutEvents.Complete, RolloutEvents.Failed, RolloutEvents.RolledBack, RolloutEvents.Paused, RolloutEvents.Resumed,
        EventTypes.Revision, EventTypes.Scaled,
    ];

    // ---- pages --------------------------------------------------------------------------------------------------

    private static async Task Page(HttpContext context, DashboardContext d)
    {
        var session = d.Auth.Find(context)!;
        var html = ReadAsset("index.html")!.Replace("{{csrf}}", session.CsrfToken, StringComparison.Ordinal)
            .Replace("{{app}}", System.Net.WebUtility.HtmlEncode(d.Plane.Current?.Application.Name ?? "berth"), StringComparison.Ordinal);
        SecurityHeaders(context);
        context.Response.ContentType = "text/html; charset=utf-8";
        await context.Response.WriteAsync(html, context.RequestAborted);
    }

    private static async Task Asset(HttpContext context, string file)
    {
        var text = ReadAsset(file);
        if (text is null || file is "index.html")
        {
            context.Response.StatusCode = StatusCodes.Status404NotFound;
            return;
        }

        SecurityHeaders(context);
        context.Response.ContentType = Path.GetExtension(file) switch
        {
            ".js" => "text/javascript; charset=utf-8",
            ".css" => "text/css; charset=utf-8",
            ".svg" => "image/svg+xml",
            _ => "text/plain; charset=utf-8",
        };
        await context.Response.WriteAsync(text, context.RequestAborted);
    }

    private static async Task Login(HttpContext context, DashboardContext d)
    {
        SecurityHeaders(context);
        context.Response.ContentType = "text/html; charset=utf-8";
        var session = d.Auth.Redeem(context.Request.Query["code"].FirstOrDefault());
        if (session is null)
        {
            context.Response.StatusCode = StatusCodes.Status401Unauthorized;
            await context.Response.WriteAsync(SignInPage("This login link is not valid: it was used already, it expired, or the control plane restarted. Run <code>berth dashboard</code> for a new one."), context.RequestAborted);
            return;
        }

        context.Response.Cookies.Append(DashboardAuth.CookieName, session.Id, new CookieOptions
        {
            HttpOnly = true,
            SameSite = SameSiteMode.Strict,
            Path = "/",
            IsEssential = true,
        });
        // Redirected as Aspire's dashboard does after its token login; the body is for a client that does not follow.
        context.Response.StatusCode = StatusCodes.Status303SeeOther;
        context.Response.Headers.Location = "/";
        await context.Response.WriteAsync("""<!doctype html><meta charset="utf-8"><title>Berth</title><p>Signed in. <a href="/">Open the dashboard</a>.</p>""", context.RequestAborted);
    }

    internal static string SignInPage(string message) =>
        $"""<!doctype html><meta charset="utf-8"><title>Berth dashboard</title><body style="font-family:sans-serif;margin:3em"><h1>Berth dashboard</h1><p>{message}</p></body>""";

    internal static void SecurityHeaders(HttpContext context)
    {
        var h = context.Response.Headers;
        h.ContentSecurityPolicy = ContentSecurityPolicy;
        h.XContentTypeOptions = "nosniff";
        h["Referrer-Policy"] = "no-referrer";
        h.CacheControl = "no-store";
    }

    private static string? ReadAsset(string file)
    {
        if (file.Contains('/', StringComparison.Ordinal) || file.Contains('\\', StringComparison.Ordinal))
        {
            return null;
        }

        using var stream = Assets.GetManifestResourceStream("Berth.Server.Dashboard.wwwroot." + file);
        if (stream is null)
        {
            return null;
        }

        using var reader = new StreamReader(stream, Encoding.UTF8);
        return reader.ReadToEnd();
    }

    // ---- replicas and logs --------------------------------------------------------------------------------------

    private static ReplicaRecord Replica(DashboardContext d, string? id) =>
        d.Plane.Replicas.FirstOrDefault(r => r.Id == id) ?? throw new ControlPlaneException(ControlPlaneError.NotFound, $"no replica '{id}'");

    private static object ReplicaDetail(DashboardContext d, string id)
    {
        var r = Replica(d, id);
        var app = d.Plane.Current!.Application;
        var service = app.FindService(r.Service)!;
        var env = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var ((svc, ep), port) in d.Plane.StablePorts)
        {
            env[$"services__{svc}__{ep}__0"] = $"{(app.FindService(svc)?.Endpoints.FirstOrDefault(e => e.Name == ep)?.Protocol == EndpointProtocol.Tcp ? "tcp" : "http")}://127.0.0.1:{port}";
        }

        foreach (var (name, port) in r.Ports)
        {
            env[$"BERTH_PORT_{name.ToUpperInvariant().Replace('-', '_')}"] = port.ToString(CultureInfo.InvariantCulture);
        }

        env["BERTH_SERVICE"] = r.Service;
        env["BERTH_REPLICA"] = r.Id;
        env["BERTH_REVISION"] = r.Revision.ToString(CultureInfo.InvariantCulture);
        foreach (var (k, v) in d.ReplicaEnvironment)
        {
            // The OTLP key is a credential of the control plane's: shown masked like a secret.
            env[k] = k == "OTEL_EXPORTER_OTLP_HEADERS" ? "***" : v;
        }

        if (d.ReplicaEnvironment.Count > 0)
        {
            env["OTEL_SERVICE_NAME"] = r.Service;
        }

        foreach (var (k, v) in service.Env)
        {
            env[k] = service.SecretEnv.Contains(k) ? "***" : v;
        }

        var events = d.Plane.Store.ListNewestEvents(100, service: r.Service, replica: r.Id);
        var shown = DashboardReplica.Of(r, service, d.Sampler);
        return new
        {
            replica = shown.Replica,
            usage = shown.Usage,
            command = service.Command,
            image = service.Image,
            limits = new
            {
                cpuRequest = service.Resources.CpuRequest?.ToString(),
                cpuLimit = service.Resources.CpuLimit?.ToString(),
                memoryRequest = service.Resources.MemoryRequest?.ToString(),
                memoryLimit = service.Resources.MemoryLimit?.ToString(),
            },
            probes = ResourceFeed.Probes(service),
            probeHistory = events.Where(e => e.Type is EventTypes.Ready or EventTypes.NotReady or EventTypes.Unhealthy).Select(ResourceFeed.EventView),
            env,
            events = events.Select(ResourceFeed.EventView),
            stats = d.Sampler.History(r.Id, d.Time.GetUtcNow() - TimeSpan.FromMinutes(10)).Select(p => new { t = p.Time.ToUnixTimeSeconds(), cpu = p.CpuPercent, mem = p.MemoryBytes }),
        };
    }

    /// <summary>The replica's log files on disk, rotated ones included (<c>stdout.log.1</c> …), for the process driver.</summary>
    private sealed record LogFile(string Name, string Path, long Bytes);

    private static List<LogFile> LogFiles(DashboardContext d, ReplicaRecord r)
    {
        var dir = r.Handle?.StateDirectory;
        if (dir is null || !Directory.Exists(dir))
        {
            return [];
        }

        // Per stream, oldest first: rotated files by their rising number (stdout.log.2 before stdout.log.10), the live one last.
        return [.. Directory.EnumerateFiles(dir, "*.log*").Select(f => new LogFile(Path.GetFileName(f), f, new FileInfo(f).Length))
            .OrderBy(f => f.Name[..(f.Name.IndexOf(".log", StringComparison.Ordinal) + 4)], StringComparer.Ordinal)
            .ThenBy(f => f.Name.Length > f.Name.IndexOf(".log", StringComparison.Ordinal) + 5
                && long.TryParse(f.Name.AsSpan(f.Name.IndexOf(".log", StringComparison.Ordinal) + 5), out var g) ? g : long.MaxValue)];
    }

    private static async Task LogsAsync(HttpContext context, DashboardContext d)
    {
        var q = context.Request.Query;
        var replica = NullIfEmpty(q["replica"]);
        var service = NullIfEmpty(q["service"]);
        var ids = d.Plane.Replicas.Where(r => r.Handle is not null && (replica is null || r.Id == replica) && (service is null || r.Service == service)).Select(r => r.Id).ToList();
        if (replica is not null && ids.Count == 0)
        {
            Replica(d, replica);
        }

        var tail = int.TryParse(q["tail"], out var t) && t is >= 0 and <= 10_000 ? t : 500;
        StartSse(context);
        var gate = new SemaphoreSlim(1, 1);
        var ct = context.RequestAborted;
        async Task TailAsync(string id, int? lines)
        {
            await foreach (var line in d.Plane.GetLogsAsync(id, new LogOptions { Follow = true, Tail = lines }, ct))
            {
                var json = JsonSerializer.Serialize(new
                {
                    replica = id,
                    time = line.Timestamp,
                    stream = line.Stream == LogStream.Stdout ? "stdout" : "stderr",
                    level = LevelOf(line),
                    text = line.Text,
                });
                var bytes = Encoding.UTF8.GetBytes($"event: log\ndata: {d.Redactor.Redact(json)}\n\n");
                await gate.WaitAsync(ct);
                try
                {
                    await context.Response.Body.WriteAsync(bytes, ct);
                    await context.Response.Body.FlushAsync(ct);
                }
                finally
                {
                    gate.Release();
                }
            }
        }

        var tails = ids.Select(id => TailAsync(id, tail)).ToList();
        if (replica is null)
        {
            // A service's (or the app's) log follows replicas that start later too: a scale-up, a replacement.
            var known = ids.ToHashSet(StringComparer.Ordinal);
            using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1), d.Time);
            try
            {
                while (await timer.WaitForNextTickAsync(ct))
                {
                    foreach (var r in d.Plane.Replicas.Where(r => r.Handle is not null && (service is null || r.Service == service) && known.Add(r.Id)))
                    {
                        tails.Add(TailAsync(r.Id, null));
                    }
                }
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
            }
        }

        await Task.WhenAll(tails);
    }

    /// <summary>A console line's level, as the common formats write it: .NET's console logger ("info:", "warn:", "fail:",
    /// "crit:", "dbug:", "trce:"), or a level word near the start ("ERROR", "[warn]", "level=debug"); stderr otherwise counts as a warning.</summary>
    internal static string LevelOf(LogEntry line)
    {
        var head = line.Text.Length > 40 ? line.Text[..40] : line.Text;
        string[][] levels =
        [
            ["crit:", "fatal", "critical", "panic"],
            ["fail:", "error", "err "],
            ["warn:", "warn", "warning"],
            ["dbug:", "debug"],
            ["trce:", "trace"],
            ["info:", "info", "information"],
        ];
        string[] names = ["fatal", "error", "warn", "debug", "trace", "info"];
        for (var i = 0; i < levels.Length; i++)
        {
            foreach (var word in levels[i])
            {
                if (head.Contains(word, StringComparison.OrdinalIgnoreCase))
                {
                    return names[i];
                }
            }
        }

        return line.Stream == LogStream.Stderr ? "warn" : "info";
    }

    // ---- plumbing -----------------------------------------------------------------------------------------------

    internal static void StartSse(HttpContext context)
    {
        context.Response.ContentType = "text/event-stream";
        context.Response.Headers.CacheControl = "no-cache";
        context.Response.Headers["X-Accel-Buffering"] = "no";
    }

    internal static IResult Json(DashboardContext d, object value) =>
        Results.Text(d.Redactor.Redact(JsonSerializer.Serialize(value, StateJson.Options)), "application/json; charset=utf-8");

    private static string? NullIfEmpty(string? s) => string.IsNullOrEmpty(s) ? null : s;
}

/// <summary>What the dashboard's endpoints share.</summary>
internal sealed record DashboardContext(
    ControlPlane Plane,
    DashboardAuth Auth,
    TelemetryStore Telemetry,
    LiveSampler Sampler,
    ResourceFeed Feed,
    SecretRedactor Redactor,
    TimeProvider Time,
    string? PipelineDatabase,
    IReadOnlyDictionary<string, string> ReplicaEnvironment);
