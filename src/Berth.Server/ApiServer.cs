using System.Collections.Immutable;
using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization.Metadata;
using Berth.Core.Contracts;
using Berth.Core.Model;
using Berth.Orchestration;
using Berth.Orchestration.Controllers;
using Berth.Orchestration.State;
using Berth.Runtime;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

using Berth.Runtime.Capabilities;

namespace Berth.Server;

/// <summary>Defaults of the API's paging.</summary>
public static class ApiServerDefaults
{
    /// <summary>Events in one page of <c>GET /v1/events</c>: 1,000, the newest (kubectl shows the latest events; Kubernetes lists page by <c>limit</c>).</summary>
    public const int EventPage = 1000;

    /// <summary>The largest page a client may ask for: 10,000, the default number of events the control plane keeps.</summary>
    public const int MaxEventPage = Orchestration.OrchestratorDefaults.EventRetention;
}

/// <summary>How the API listens. Defaults: loopback, a free port, the token kept in the state folder.</summary>
public sealed record ApiServerOptions
{
    /// <summary>File in the state folder with the API address: <c>{"url":"http://127.0.0.1:PORT"}</c>.</summary>
    public const string AddressFileName = "api.json";

    /// <summary>File in the state folder with the bearer token (mode 0600).</summary>
    public const string TokenFileName = "api-token";

    public required string StateDirectory { get; init; }

    /// <summary>0: any free port (the address is written to <see cref="AddressFileName"/>).</summary>
    public int Port { get; init; }

    public ILoggerFactory? LoggerFactory { get; init; }

    /// <summary>The routing table to show at <c>GET /v1/routes</c>; null: not shown.</summary>
    public RoutingTable? Routes { get; init; }

    /// <summary>Runs the app's pipelines on their cron schedules and file changes while the API serves (docs/pipelines.md).</summary>
    public PipelineTriggerOptions PipelineTriggers { get; init; } = new();

    /// <summary>What this control plane may do on this machine as its user (cgroups, network namespaces, Docker), shown at
    /// <c>GET /v1/app</c>; read on each request, since a capability can be lost while running. Null: none shown.</summary>
    public Func<IReadOnlyList<HostCapability>>? Capabilities { get; init; }

    /// <summary>Serve the dashboard (<c>/</c>, sign-in through <see cref="ApiServer.CreateLoginUrl"/>); true.</summary>
    public bool Dashboard { get; init; } = true;

    /// <summary>The telemetry the dashboard shows (mesh spans, OTLP from the apps); null: an empty store of its own.</summary>
    public Telemetry.TelemetryStore? Telemetry { get; init; }

    /// <summary>The mesh whose ejections and breakers the dashboard shows; null: none.</summary>
    public Mesh.DataPlane.IMeshDataPlane? Mesh { get; init; }

    /// <summary>What the control plane adds to every replica's environment (the OTLP exporter settings), shown in replica detail.</summary>
    public IReadOnlyDictionary<string, string> ReplicaEnvironment { get; init; } = new Dictionary<string, string>();

    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;
}

/// <summary>The control-plane REST API (docs/api.md): ASP.NET Core on 127.0.0.1, bearer token, JSON, server-sent events.</summary>
public sealed class ApiServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly TaskCompletionSource<bool> _shutdown = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private readonly List<IAsyncDisposable> _owned = [];

    private ApiServer(WebApplication app, Uri url, string token, Dashboard.DashboardAuth? dashboard)
    {
        _app = app;
        Url = url;
        Token = token;
        DashboardAuth = dashboard;
    }

    /// <summary>The dashboard's sign-in, or null when it is not served.</summary>
    public Dashboard.DashboardAuth? DashboardAuth { get; }

    /// <summary>The Resources feed, when the dashboard is on (the dashboard benchmark reads its build time).</summary>
    internal Dashboard.ResourceFeed? DashboardFeed { get; private set; }

    /// <summary>A dashboard link with a fresh one-time code (what <c>berth up</c> and <c>berth dashboard</c> print); null without a dashboard.</summary>
    public Uri? CreateLoginUrl() => DashboardAuth is { } auth ? new Uri(Url, "login?code=" + auth.CreateCode()) : null;

    public Uri Url { get; }

    public string Token { get; }

    /// <summary>Completes when a client asked the control plane to shut down (<c>POST /v1/shutdown</c>); true: stop the replicas too.</summary>
    public Task<bool> ShutdownRequested => _shutdown.Task;

    public static async Task<ApiServer> StartAsync(ControlPlane plane, ApiServerOptions options, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(options.StateDirectory);
        var token = ReadOrCreateToken(Path.Combine(options.StateDirectory, ApiServerOptions.TokenFileName));
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        if (options.LoggerFactory is not null)
        {
            builder.Services.AddSingleton(options.LoggerFactory);
        }

        builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, options.Port));
        if (options.PipelineTriggers.Enabled)
        {
            builder.Services.AddHostedService(sp => new PipelineTriggerService(plane, options.StateDirectory, options.PipelineTriggers, sp.GetService<ILogger<PipelineTriggerService>>()));
        }

        var app = builder.Build();
        ApiServer? server = null;
        var dashboard = options.Dashboard ? StartDashboard(plane, options) : null;
        app.Use(async (context, next) =>
        {
            if (dashboard is null || context.Request.Headers.Authorization.Count > 0)
            {
                if (!Authorized(context, token, out var problem))
                {
                    await Error(context, StatusCodes.Status401Unauthorized, problem);
                    return;
                }
            }
            else if (!(context.Request.Path == "/login" && HttpMethods.IsGet(context.Request.Method)))
            {
                var session = dashboard.Auth.Find(context);
                if (session is null)
                {
                    if (context.Request.Path == "/")
                    {
                        Server.Dashboard.DashboardEndpoints.SecurityHeaders(context);
                        context.Response.StatusCode = StatusCodes.Status401Unauthorized;
                        context.Response.ContentType = "text/html; charset=utf-8";
                        await context.Response.WriteAsync(Server.Dashboard.DashboardEndpoints.SignInPage(
                            "Sign in with the link <code>berth up</code> printed, or run <code>berth dashboard</code> for a new one."), context.RequestAborted);
                        return;
                    }

                    if (context.Request.Path.StartsWithSegments("/v1"))
                    {
                        Authorized(context, token, out var missing);
                        await Error(context, StatusCodes.Status401Unauthorized, missing);
                        return;
                    }

                    await Error(context, StatusCodes.Status401Unauthorized, "not signed in: open the dashboard link 'berth up' printed, or run 'berth dashboard' for a new one");
                    return;
                }

                if (!HttpMethods.IsGet(context.Request.Method) && !HttpMethods.IsHead(context.Request.Method)
                    && !Server.Dashboard.DashboardAuth.IsSameOriginWithToken(context, session, out var refused))
                {
                    await Error(context, StatusCodes.Status403Forbidden, refused);
                    return;
                }
            }

            try
            {
                await next(context);
            }
            catch (ControlPlaneException e)
            {
                await Error(context, e.Error switch
                {
                    ControlPlaneError.NotFound => StatusCodes.Status404NotFound,
                    ControlPlaneError.Conflict => StatusCodes.Status409Conflict,
                    ControlPlaneError.Invalid => StatusCodes.Status400BadRequest,
                }, e.Message);
            }
            catch (BadRequest e)
            {
                await Error(context, StatusCodes.Status400BadRequest, e.Message);
            }
            catch (StateStoreException e)
            {
                // A full disk is 507 Insufficient Storage (RFC 4918), any other store fault 503: nothing was changed,
                // the request may be sent again once the fault is gone (Retry-After, as a 503 says).
                context.Response.Headers.RetryAfter = "1";
                await Error(context, e.Fault == StateFault.DiskFull ? StatusCodes.Status507InsufficientStorage : StatusCodes.Status503ServiceUnavailable, e.Message);
            }
            catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
            {
            }
#pragma warning disable CA1031 // the last line of defence: an answer in JSON that says what failed, never an empty 500
            catch (Exception e) when (e is not OperationCanceledException)
#pragma warning restore CA1031
            {
                await Error(context, StatusCodes.Status500InternalServerError, $"internal error: {e.GetType().Name}: {e.Message}; the control plane's log has the details");
            }
        });

        Map(app, plane, options, () => server!);
        if (dashboard is not null)
        {
            Server.Dashboard.DashboardEndpoints.Map(app, dashboard);
            app.MapPost("/v1/dashboard/login", () => Results.Json(new DashboardLink(server!.CreateLoginUrl()!.ToString()), ApiJson.Default.DashboardLink));
        }

        app.MapGet("/v1/routes", () => Results.Json<IReadOnlyList<RouteInfo>>([.. (options.Routes?.Routes ?? []).Select(r => new RouteInfo(
            r.Service, r.Endpoint.Name, r.Endpoint.Port,
            [.. r.Upstreams.Select(u => new UpstreamInfo(u.ReplicaId, u.Host, u.Port, u.Revision))]))], ApiJson.Default.IReadOnlyListRouteInfo));
        app.MapFallback(context => Error(context, StatusCodes.Status404NotFound,
            $"no such endpoint: {context.Request.Method} {context.Request.Path}; see docs/api.md"));

        await app.StartAsync(cancellationToken);
        var address = app.Urls.First();
        var url = new Uri(address.Replace("[::]", "127.0.0.1", StringComparison.Ordinal));
        server = new ApiServer(app, url, token, dashboard?.Auth);
        if (dashboard is not null)
        {
            server.DashboardFeed = dashboard.Feed;
            server._owned.Add(dashboard.Feed);
            server._owned.Add(dashboard.Sampler);
        }

        var file = Path.Combine(options.StateDirectory, ApiServerOptions.AddressFileName);
        await File.WriteAllTextAsync(file + ".tmp", JsonSerializer.Serialize(new ApiAddress(url.ToString().TrimEnd('/'), Environment.ProcessId), ApiJson.Default.ApiAddress), cancellationToken);
        File.Move(file + ".tmp", file, overwrite: true);
        return server;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
        foreach (var d in _owned)
        {
            await d.DisposeAsync();
        }
    }

    private static Server.Dashboard.DashboardContext StartDashboard(ControlPlane plane, ApiServerOptions options)
    {
        var telemetry = options.Telemetry ?? new Telemetry.TelemetryStore(new Telemetry.TelemetryOptions { TimeProvider = options.TimeProvider });
        var sampler = new Server.Dashboard.LiveSampler(plane, options.Mesh, telemetry, options.TimeProvider);
        var redactor = new Server.Dashboard.SecretRedactor(plane);
        var feed = new Server.Dashboard.ResourceFeed(plane, sampler, redactor, options.TimeProvider);
        return new Server.Dashboard.DashboardContext(plane, new Server.Dashboard.DashboardAuth(options.TimeProvider), telemetry, sampler, feed, redactor,
            options.TimeProvider, Path.Combine(options.StateDirectory, "pipelines.db"), options.ReplicaEnvironment);
    }

    private static void Map(WebApplication app, ControlPlane plane, ApiServerOptions options, Func<ApiServer> server)
    {
        var v1 = app.MapGroup("/v1");

        v1.MapGet("/app", () => Results.Json(AppView(plane, options), ApiJson.Default.AppInfo));
        v1.MapPost("/apply", async (HttpContext context) =>
        {
            var app = await ReadBodyAsync(context, (JsonTypeInfo<Application>)StrictAppJson.GetTypeInfo(typeof(Application)), "the app model as JSON (what 'berth up' sends)");
            var revision = await plane.ApplyAsync(app, "apply", context.RequestAborted, prune: QueryBool(context, "prune"));
            return Results.Json(new RevisionResponse(revision.Number), ApiJson.Default.RevisionResponse);
        });
        v1.MapGet("/services", () => Results.Json<IReadOnlyList<ServiceInfo>>([.. CurrentApp(plane).Services.Select(s => ServiceView(plane, s))], ApiJson.Default.IReadOnlyListServiceInfo));
        v1.MapGet("/services/{name}", (string name) => Results.Json(ServiceView(plane, FindService(plane, name), detail: true), ApiJson.Default.ServiceInfo));
        v1.MapPatch("/services/{name}", async (string name, HttpContext context) =>
        {
            var body = await ReadBodyAsync(context, ApiJson.Default.ServicePatchRequest, """{"image"?: "...", "command"?: ["..."], "env"?: {"NAME": "value"}}""");
            if (body.Image is null && body.Command is null && body.Env is null)
            {
                throw new BadRequest("""nothing to change: send at least one of "image", "command", "env" """.TrimEnd());
            }

            var revision = await plane.PatchServiceAsync(name, new ServicePatch
            {
                Image = body.Image,
                Command = body.Command is null ? null : [.. body.Command],
                Env = body.Env?.ToImmutableSortedDictionary(StringComparer.Ordinal),
            }, context.RequestAborted);
            return Results.Json(new RevisionResponse(revision.Number), ApiJson.Default.RevisionResponse);
        });
        v1.MapGet("/services/{name}/rollout", (string name) => Results.Json(plane.GetRollout(name), ApiJson.Default.RolloutStatus));
        RolloutEndpoints.Map(v1, plane);
        ReplicaStatsEndpoints.Map(v1, plane, options.Mesh, options.TimeProvider);
        v1.MapGet("/services/{name}/replicas", (string name) =>
        {
            FindService(plane, name);
            return Results.Json<IReadOnlyList<ReplicaInfo>>([.. plane.Replicas.Where(r => r.Service == name).Select(ReplicaView)], ApiJson.Default.IReadOnlyListReplicaInfo);
        });
        v1.MapPost("/services/{name}/scale", async (string name, HttpContext context) =>
        {
            var body = await ReadBodyAsync(context, ApiJson.Default.ScaleRequest, """{"replicas": N}""");
            if (body.Replicas is not { } n)
            {
                throw new BadRequest("""missing "replicas": send {"replicas": N} with N a whole number, 0 or more""");
            }

            var revision = await plane.ScaleAsync(name, n, context.RequestAborted);
            return Results.Json(new ScaleResponse(revision.Number, name, n), ApiJson.Default.ScaleResponse);
        });
        v1.MapPost("/services/{name}/stop", async (string name, CancellationToken ct) =>
            Results.Json(new RevisionResponse((await plane.StopServiceAsync(name, ct)).Number), ApiJson.Default.RevisionResponse));
        v1.MapPost("/services/{name}/start", async (string name, CancellationToken ct) =>
            Results.Json(new RevisionResponse((await plane.StartServiceAsync(name, ct)).Number), ApiJson.Default.RevisionResponse));
        v1.MapPost("/services/{name}/restart", async (string name, CancellationToken ct) =>
            Results.Json(new RestartServiceResponse(await plane.RestartServiceAsync(name, ct)), ApiJson.Default.RestartServiceResponse));
        v1.MapGet("/services/{name}/logs", (string name, HttpContext context) =>
        {
            if (QueryBool(context, "previous"))
            {
                FindService(plane, name);
                return StreamPreviousLogsAsync(plane, name, context);
            }

            FindService(plane, name);
            var ids = plane.Replicas.Where(r => r.Service == name && r.Handle is not null).Select(r => r.Id).ToList();
            return StreamLogsAsync(plane, ids, context);
        });

        v1.MapGet("/replicas", () => Results.Json<IReadOnlyList<ReplicaInfo>>([.. plane.Replicas.Select(ReplicaView)], ApiJson.Default.IReadOnlyListReplicaInfo));
        v1.MapGet("/replicas/{id}", (string id) => Results.Json(ReplicaView(FindReplica(plane, id)), ApiJson.Default.ReplicaInfo));
        v1.MapPost("/replicas/{id}/restart", async (string id, CancellationToken ct) =>
        {
            await plane.RestartReplicaAsync(id, ct);
            return Results.Json(new RestartReplicaResponse(id), ApiJson.Default.RestartReplicaResponse);
        });
        v1.MapPost("/replicas/{id}/stop", async (string id, CancellationToken ct) =>
        {
            await plane.StopReplicaAsync(id, ct);
            return Results.Json(new StopReplicaResponse(id), ApiJson.Default.StopReplicaResponse);
        });
        v1.MapGet("/replicas/{id}/logs", (string id, HttpContext context) =>
        {
            if (QueryBool(context, "previous"))
            {
                return StreamPreviousLogsAsync(plane, id, context);
            }

            FindReplica(plane, id);
            return StreamLogsAsync(plane, [id], context);
        });

        v1.MapGet("/revisions", () => Results.Json<IReadOnlyList<RevisionInfo>>([.. plane.Store.ListRevisions().Select(r => RevisionView(r, full: false))], ApiJson.Default.IReadOnlyListRevisionInfo));
        v1.MapGet("/revisions/{number}", (string number) =>
        {
            if (!long.TryParse(number, out var n) || n < 1)
            {
                throw new BadRequest($"revision must be a positive whole number, got '{number}'");
            }

            var r = plane.Store.GetRevision(n) ?? throw new ControlPlaneException(ControlPlaneError.NotFound,
                $"no revision {n}; the last {OrchestratorDefaults.RevisionHistoryLimit} are kept, GET /v1/revisions lists them");
            return Results.Json(RevisionView(r, full: true), ApiJson.Default.RevisionInfo);
        });

        v1.MapGet("/events", async (HttpContext context) =>
        {
            var after = QueryLong(context, "after") ?? 0;
            var service = context.Request.Query["service"].FirstOrDefault();
            var follow = QueryBool(context, "follow") || context.Request.Headers.Accept.Any(a => a?.Contains("text/event-stream", StringComparison.Ordinal) == true);
            if (!follow)
            {
                await WriteJsonAsync(context, [.. EventPage(context, plane, service).Select(EventView)], ApiJson.Default.IReadOnlyListEventInfo);
                return;
            }

            if (long.TryParse(context.Request.Headers["Last-Event-ID"].FirstOrDefault(), out var lastId))
            {
                after = lastId;
            }

            context.Response.ContentType = "text/event-stream";
            context.Response.Headers.CacheControl = "no-cache";
            await context.Response.Body.FlushAsync(context.RequestAborted);
            await foreach (var e in plane.Events.StreamAsync(after, service, context.RequestAborted))
            {
                var data = JsonSerializer.Serialize(EventView(e), ApiJson.Default.EventInfo);
                await context.Response.WriteAsync($"id: {e.Id}\nevent: {e.Type}\ndata: {data}\n\n", context.RequestAborted);
                await context.Response.Body.FlushAsync(context.RequestAborted);
            }
        });

        v1.MapPost("/shutdown", async (HttpContext context) =>
        {
            var stop = !QueryBool(context, "keep-replicas");
            context.Response.StatusCode = StatusCodes.Status202Accepted;
            await WriteJsonAsync(context, new ShutdownResponse(true, stop), ApiJson.Default.ShutdownResponse);
            server()._shutdown.TrySetResult(stop);
        });
    }

    // ---- views --------------------------------------------------------------------------------------------------

    private static Application CurrentApp(ControlPlane plane) => plane.Current?.Application ?? throw ControlPlaneMessages.NothingAppliedError();

    private static Service FindService(ControlPlane plane, string name)
    {
        var app = CurrentApp(plane);
        return app.FindService(name) ?? throw ControlPlaneMessages.NoServiceError(app, name);
    }

    private static ReplicaRecord FindReplica(ControlPlane plane, string id) =>
        plane.Replicas.FirstOrDefault(r => r.Id == id) ?? throw new ControlPlaneException(ControlPlaneError.NotFound,
            $"no replica '{id}'; GET /v1/replicas (or 'berth ps') lists them");

    private static AppInfo AppView(ControlPlane plane, ApiServerOptions options)
    {
        var current = plane.Current ?? throw ControlPlaneMessages.NothingAppliedError();
        return new AppInfo
        {
            Name = current.Application.Name,
            Revision = current.Number,
            Scheduler = JsonNamingPolicy.KebabCaseLower.ConvertName(current.Application.Scheduler.ToString()),
            Nodes = [.. plane.Nodes.Select(n => new NodeInfo(n.Name, new CpuQuantity(n.CpuMilli).ToString(), new ByteSize(n.MemoryBytes).ToString(),
                new CpuQuantity(n.AllocatedCpuMilli).ToString(), new ByteSize(n.AllocatedMemoryBytes).ToString(), n.Replicas))],
            Services = [.. current.Application.Services.Select(s => ServiceView(plane, s))],
            Drivers = [.. plane.Drivers.OrderBy(d => d.Kind).Select(d => new DriverInfo(
                JsonNamingPolicy.KebabCaseLower.ConvertName(d.Kind.ToString()), d.Capabilities.Available, d.Capabilities.UnavailableReason,
                d.Capabilities.CpuLimitsEnforced, d.Capabilities.MemoryLimitsEnforced, d.Capabilities.LimitsMechanism))],
            Warnings = [.. plane.LimitWarnings.Select(w => new LimitsWarningInfo(w.Service, w.Driver, w.Message))],
            User = HostUser.Describe(HostUser.Uid),
            Capabilities = [.. (options.Capabilities?.Invoke() ?? []).Select(c => new CapabilityInfo(c.Name, c.Usable, c.Detail, c.Fix, c.Message))],
            PortConflicts = [.. plane.PortConflicts.Select(c => new PortConflictInfo(c.Service, c.Endpoint, c.Port, c.Holder, c.Message))],
            ListenersSettled = plane.ListenersSettled,
        };
    }

    private static ServiceInfo ServiceView(ControlPlane plane, Service s, bool detail = false)
    {
        var current = plane.Current!;
        var mine = plane.Replicas.Where(r => r.Service == s.Name).ToList();
        var ports = plane.StablePorts;
        return new ServiceInfo
        {
            Name = s.Name,
            Runtime = JsonNamingPolicy.KebabCaseLower.ConvertName(s.EffectiveRuntime.ToString()),
            Desired = current.Stopped.Contains(s.Name) ? 0 : s.Replicas,
            Stopped = current.Stopped.Contains(s.Name),
            Revision = current.TemplateOf(s.Name),
            Ready = mine.Count(r => r.Phase == ReplicaPhase.Ready),
            Running = mine.Count(r => r.Phase is ReplicaPhase.Running or ReplicaPhase.Ready),
            Pending = mine.Count(r => r.Phase == ReplicaPhase.Pending),
            BackOff = mine.Count(r => r.Phase == ReplicaPhase.BackOff),
            Endpoints = [.. s.Endpoints.Select(e =>
            {
                int? port = ports.TryGetValue((s.Name, e.Name), out var p) ? p : e.Port;
                return new EndpointInfo(e.Name, JsonNamingPolicy.KebabCaseLower.ConvertName(e.Protocol.ToString()), port,
                    $"{(e.Protocol == EndpointProtocol.Tcp ? "tcp" : "http")}://127.0.0.1:{port}");
            })],
            Spec = detail ? MaskedSpec(s) : null,
        };
    }

    private static JsonNode? MaskedSpec(Service s)
    {
        var masked = s with
        {
            Env = s.Env.SetItems(s.SecretEnv.Where(s.Env.ContainsKey).Select(k => KeyValuePair.Create(k, "***"))),
            Files = [.. s.Files.Select(f => f.Kind == MountedFileKind.Secret && f.Content is not null ? f with { Content = "***" } : f)],
        };
        return JsonSerializer.SerializeToNode(masked, StateJson.Options);
    }

    /// <summary>A replica as the API (and <c>berth ps</c>) and the dashboard show it.</summary>
    internal static ReplicaInfo ReplicaView(ReplicaRecord r) => new()
    {
        Id = r.Id,
        Service = r.Service,
        Revision = r.Revision,
        Phase = JsonNamingPolicy.KebabCaseLower.ConvertName(r.Phase.ToString()),
        Reason = r.Reason,
        Node = r.Node,
        Ports = r.Ports,
        Pid = r.Handle?.Pid,
        ContainerId = r.Handle?.ContainerId,
        Restarts = r.RestartCount,
        BackOff = r.Phase == ReplicaPhase.BackOff ? new BackOffInfo(r.ConsecutiveFailures, r.NextRetryAt) : null,
        LastExitCode = r.LastExitCode,
        CreatedAt = r.CreatedAt,
        StartedAt = r.StartedAt,
        ReadyAt = r.ReadyAt,
    };

    private static RevisionInfo RevisionView(RevisionRecord r, bool full) => new()
    {
        Number = r.Number,
        CreatedAt = r.CreatedAt,
        Cause = r.Cause,
        Services = [.. r.Application.Services.Select(s => new RevisionServiceInfo(s.Name, s.Replicas, r.TemplateOf(s.Name)))],
        Stopped = [.. r.Stopped],
        Spec = full ? new RevisionSpecInfo([.. r.Application.Services.Select(MaskedSpec)]) : null,
    };

    private static EventInfo EventView(EventRecord e) => new()
    {
        Id = e.Id, Time = e.Time, Type = e.Type, Service = e.Service, Replica = e.Replica, Message = e.Message,
    };

    // ---- logs ---------------------------------------------------------------------------------------------------

    /// <summary><c>?previous=true</c>: what ran before (<see cref="ControlPlane.GetPreviousLogs"/>), one replica's lines.</summary>
    private static async Task StreamPreviousLogsAsync(ControlPlane plane, string name, HttpContext context)
    {
        var (replica, lines) = plane.GetPreviousLogs(name, new LogOptions { Tail = QueryInt(context, "tail") }, context.RequestAborted);
        context.Response.ContentType = "application/x-ndjson";
        await foreach (var line in lines)
        {
            var json = JsonSerializer.Serialize(new LogLine(replica, line.Timestamp, line.Stream == LogStream.Stdout ? "stdout" : "stderr", line.Text), ApiJson.Default.LogLine);
            await context.Response.WriteAsync(json + "\n", context.RequestAborted);
        }
    }

    private static async Task StreamLogsAsync(ControlPlane plane, IReadOnlyList<string> ids, HttpContext context)
    {
        var since = context.Request.Query["since"].FirstOrDefault() is { } text ? ParseSince(text, plane.Time) : (DateTimeOffset?)null;
        var options = new LogOptions { Follow = QueryBool(context, "follow"), Tail = QueryInt(context, "tail"), Since = since };
        context.Response.ContentType = "application/x-ndjson";
        await context.Response.Body.FlushAsync(context.RequestAborted);
        var gate = new SemaphoreSlim(1, 1);
        await Task.WhenAll(ids.Select(async id =>
        {
            await foreach (var line in plane.GetLogsAsync(id, options, context.RequestAborted))
            {
                var json = JsonSerializer.Serialize(new LogLine(id, line.Timestamp, line.Stream == LogStream.Stdout ? "stdout" : "stderr", line.Text), ApiJson.Default.LogLine);
                await gate.WaitAsync(context.RequestAborted);
                try
                {
                    await context.Response.WriteAsync(json + "\n", context.RequestAborted);
                    await context.Response.Body.FlushAsync(context.RequestAborted);
                }
                finally
                {
                    gate.Release();
                }
            }
        }));
    }

    // ---- plumbing -----------------------------------------------------------------------------------------------

    private sealed class BadRequest(string message) : Exception(message);

    /// <summary>The app model as <c>POST /v1/apply</c> reads it: no numbers in strings (<c>"replicas": "3"</c>) and no key given twice,
    /// where the store's own (web) options would take the one and the last.</summary>
    private static readonly JsonSerializerOptions StrictAppJson = new(StateJson.Options)
    {
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.Strict,
        AllowDuplicateProperties = false,
    };

    internal static async Task<T> ReadBodyAsync<T>(HttpContext context, JsonTypeInfo<T> type, string shape)
    {
        if (context.Request.ContentLength == 0)
        {
            throw new BadRequest($"empty body; send JSON {shape}");
        }

        try
        {
            return await JsonSerializer.DeserializeAsync(context.Request.Body, type, context.RequestAborted)
                ?? throw new BadRequest($"body is null; send JSON {shape}");
        }
        catch (JsonException e)
        {
            var where = e.LineNumber is { } line ? $" at line {line + 1}, byte {e.BytePositionInLine + 1}" : "";
            var what = e.Path is { Length: > 2 } path && e.Message.Contains("could not be converted", StringComparison.Ordinal) ? $" ({path[2..]} has the wrong type)" : "";
            if (e.Message.Contains("uplicate", StringComparison.Ordinal))
            {
                what = $" ({e.Path} is given twice; keep one)";
            }

            var missing = e.Message.IndexOf("missing required properties including: ", StringComparison.Ordinal);
            if (missing >= 0)
            {
                what = $" (missing {e.Message[(missing + "missing required properties including: ".Length)..].TrimEnd('.')})";
            }

            throw new BadRequest($"malformed JSON{where}{what}; send {shape}");
        }
    }

    private static async Task WriteJsonAsync<T>(HttpContext context, T value, JsonTypeInfo<T> type)
    {
        context.Response.ContentType = "application/json";
        await JsonSerializer.SerializeAsync(context.Response.Body, value, type, context.RequestAborted);
    }

    private static Task Error(HttpContext context, int status, string message)
    {
        if (context.Response.HasStarted)
        {
            return Task.CompletedTask;
        }

        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        return context.Response.WriteAsync(JsonSerializer.Serialize(new ApiError(message, status), ApiJson.Default.ApiError), context.RequestAborted);
    }

    private static bool Authorized(HttpContext context, string token, out string problem)
    {
        problem = "";
        var header = context.Request.Headers.Authorization.FirstOrDefault();
        if (string.IsNullOrEmpty(header))
        {
            problem = $"missing token: send 'Authorization: Bearer <token>' with the token in the state folder's {ApiServerOptions.TokenFileName} file";
            return false;
        }

        const string Bearer = "Bearer ";
        if (!header.StartsWith(Bearer, StringComparison.OrdinalIgnoreCase))
        {
            problem = "the Authorization header must be 'Bearer <token>'";
            return false;
        }

        var given = Encoding.UTF8.GetBytes(header[Bearer.Length..].Trim());
        if (!CryptographicOperations.FixedTimeEquals(given, Encoding.UTF8.GetBytes(token)))
        {
            problem = $"wrong token; use the one in the state folder's {ApiServerOptions.TokenFileName} file (it is replaced when the folder is reset)";
            return false;
        }

        return true;
    }

    internal static string ReadOrCreateToken(string path)
    {
        if (File.Exists(path))
        {
            var existing = File.ReadAllText(path).Trim();
            if (existing.Length >= 32)
            {
                return existing;
            }
        }

        var token = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        using (var stream = new FileStream(path, options))
        using (var writer = new StreamWriter(stream))
        {
            writer.Write(token);
        }

        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }

        return token;
    }

    /// <summary>One page of events, oldest first: after a cursor (<c>after=ID</c>, reading forwards), or else the newest <c>limit</c> before
    /// <c>before=ID</c> and since <c>since</c>. A <c>Link</c> header (RFC 8288, as GitHub's API pages) names the older and newer pages.</summary>
    private static IReadOnlyList<EventRecord> EventPage(HttpContext context, ControlPlane plane, string? service)
    {
        var limit = QueryInt(context, "limit") ?? ApiServerDefaults.EventPage;
        if (limit is < 1 or > ApiServerDefaults.MaxEventPage)
        {
            throw new BadRequest($"query 'limit' must be from 1 to {ApiServerDefaults.MaxEventPage}, got {limit}; page with 'before' or 'after' for more");
        }

        var after = QueryLong(context, "after");
        var before = QueryLong(context, "before");
        if (after is not null && before is not null)
        {
            throw new BadRequest("query 'after' and 'before' are two directions; give one of them (after=ID reads newer events, before=ID older ones)");
        }

        var since = context.Request.Query["since"].FirstOrDefault() is { } text ? ParseSince(text, plane.Time) : (DateTimeOffset?)null;
        var page = after is { } a
            ? [.. plane.Store.ListEvents(a, limit, service).Where(e => since is null || e.Time >= since)]
            : plane.Store.ListNewestEvents(limit, before, since, service);
        var links = new List<string>();
        var query = (service is null ? "" : $"&service={Uri.EscapeDataString(service)}") + (since is null ? "" : $"&since={Uri.EscapeDataString(since.Value.ToString("O", CultureInfo.InvariantCulture))}");
        if (page.Count > 0 && (after is not null || page.Count == limit))
        {
            links.Add($"</v1/events?before={page[0].Id}&limit={limit}{query}>; rel=\"prev\"");
        }

        var newest = page.Count > 0 ? page[^1].Id : after ?? (before is { } b ? b - 1 : 0);
        links.Add($"</v1/events?after={newest}&limit={limit}{query}>; rel=\"next\"");
        context.Response.Headers.Link = string.Join(", ", links);
        return page;
    }

    /// <summary><c>since</c> as docker events takes it: an RFC 3339 time, or a duration back from now (<c>10m</c>).</summary>
    private static DateTimeOffset ParseSince(string text, TimeProvider time)
    {
        if (DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var at))
        {
            return at;
        }

        return Durations.TryParse(text, out var ago, out _)
            ? time.GetUtcNow() - ago
            : throw new BadRequest($"query 'since' must be an RFC 3339 time (2026-01-02T15:04:05Z) or a duration back from now (10m, 1h30m), got '{text}'");
    }

    private static bool QueryBool(HttpContext context, string name) =>
        context.Request.Query[name].FirstOrDefault() is { } v && (v.Length == 0 || v is "1" || v.Equals("true", StringComparison.OrdinalIgnoreCase));

    private static int? QueryInt(HttpContext context, string name) =>
        context.Request.Query[name].FirstOrDefault() is { } v
            ? int.TryParse(v, out var n) && n >= 0 ? n : throw new BadRequest($"query '{name}' must be a whole number, 0 or more, got '{v}'")
            : null;

    private static long? QueryLong(HttpContext context, string name) =>
        context.Request.Query[name].FirstOrDefault() is { } v
            ? long.TryParse(v, out var n) && n >= 0 ? n : throw new BadRequest($"query '{name}' must be a whole number, 0 or more, got '{v}'")
            : null;
}
