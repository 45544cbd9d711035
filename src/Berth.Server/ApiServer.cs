using System.Collections.Immutable;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
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

namespace Berth.Server;

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
}

/// <summary>The control-plane REST API (docs/api.md): ASP.NET Core on 127.0.0.1, bearer token, JSON, server-sent events.</summary>
public sealed class ApiServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly TaskCompletionSource<bool> _shutdown = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private ApiServer(WebApplication app, Uri url, string token)
    {
        _app = app;
        Url = url;
        Token = token;
    }

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
        app.Use(async (context, next) =>
        {
            if (!Authorized(context, token, out var problem))
            {
                await Error(context, StatusCodes.Status401Unauthorized, problem);
                return;
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
                    _ => StatusCodes.Status400BadRequest,
                }, e.Message);
            }
            catch (BadRequest e)
            {
                await Error(context, StatusCodes.Status400BadRequest, e.Message);
            }
            catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
            {
            }
        });

        Map(app, plane, () => server!);
        app.MapGet("/v1/routes", () => Json((options.Routes?.Routes ?? []).Select(r => new
        {
            service = r.Service,
            endpoint = r.Endpoint.Name,
            port = r.Endpoint.Port,
            upstreams = r.Upstreams.Select(u => new { replica = u.ReplicaId, host = u.Host, port = u.Port, revision = u.Revision }),
        })));
        app.MapFallback(context => Error(context, StatusCodes.Status404NotFound,
            $"no such endpoint: {context.Request.Method} {context.Request.Path}; see docs/api.md"));

        await app.StartAsync(cancellationToken);
        var address = app.Urls.First();
        var url = new Uri(address.Replace("[::]", "127.0.0.1", StringComparison.Ordinal));
        server = new ApiServer(app, url, token);
        var file = Path.Combine(options.StateDirectory, ApiServerOptions.AddressFileName);
        await File.WriteAllTextAsync(file + ".tmp", JsonSerializer.Serialize(new { url = url.ToString().TrimEnd('/'), pid = Environment.ProcessId }), cancellationToken);
        File.Move(file + ".tmp", file, overwrite: true);
        return server;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    private static void Map(WebApplication app, ControlPlane plane, Func<ApiServer> server)
    {
        var v1 = app.MapGroup("/v1");

        v1.MapGet("/app", () => Json(AppView(plane)));
        v1.MapPost("/apply", async (HttpContext context) =>
        {
            var app = await ReadBodyAsync<Application>(context, "the app model as JSON (what 'berth up' sends)");
            var revision = await plane.ApplyAsync(app, "apply", context.RequestAborted);
            return Json(new { revision = revision.Number });
        });
        v1.MapGet("/services", () => Json(CurrentApp(plane).Services.Select(s => ServiceView(plane, s))));
        v1.MapGet("/services/{name}", (string name) => Json(ServiceView(plane, FindService(plane, name), detail: true)));
        v1.MapPatch("/services/{name}", async (string name, HttpContext context) =>
        {
            var body = await ReadBodyAsync<PatchBody>(context, """{"image"?: "...", "command"?: ["..."], "env"?: {"NAME": "value"}}""");
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
            return Json(new { revision = revision.Number });
        });
        v1.MapGet("/services/{name}/rollout", (string name) =>
        {
            var r = plane.GetRollout(name);
            return Json(new { revision = r.Revision, state = r.State, message = r.Message });
        });
        RolloutEndpoints.Map(v1, plane);
        v1.MapGet("/services/{name}/replicas", (string name) =>
        {
            FindService(plane, name);
            return Json(plane.Replicas.Where(r => r.Service == name).Select(ReplicaView));
        });
        v1.MapPost("/services/{name}/scale", async (string name, HttpContext context) =>
        {
            var body = await ReadBodyAsync<ScaleBody>(context, """{"replicas": N}""");
            if (body.Replicas is not { } n)
            {
                throw new BadRequest("""missing "replicas": send {"replicas": N} with N a whole number, 0 or more""");
            }

            var revision = await plane.ScaleAsync(name, n, context.RequestAborted);
            return Json(new { revision = revision.Number, service = name, replicas = n });
        });
        v1.MapPost("/services/{name}/stop", async (string name, CancellationToken ct) => Json(new { revision = (await plane.StopServiceAsync(name, ct)).Number }));
        v1.MapPost("/services/{name}/start", async (string name, CancellationToken ct) => Json(new { revision = (await plane.StartServiceAsync(name, ct)).Number }));
        v1.MapPost("/services/{name}/restart", async (string name, CancellationToken ct) => Json(new { restarting = await plane.RestartServiceAsync(name, ct) }));
        v1.MapGet("/services/{name}/logs", (string name, HttpContext context) =>
        {
            FindService(plane, name);
            var ids = plane.Replicas.Where(r => r.Service == name && r.Handle is not null).Select(r => r.Id).ToList();
            return StreamLogsAsync(plane, ids, context);
        });

        v1.MapGet("/replicas", () => Json(plane.Replicas.Select(ReplicaView)));
        v1.MapGet("/replicas/{id}", (string id) => Json(ReplicaView(FindReplica(plane, id))));
        v1.MapPost("/replicas/{id}/restart", async (string id, CancellationToken ct) =>
        {
            await plane.RestartReplicaAsync(id, ct);
            return Json(new { restarting = id });
        });
        v1.MapPost("/replicas/{id}/stop", async (string id, CancellationToken ct) =>
        {
            await plane.StopReplicaAsync(id, ct);
            return Json(new { stopping = id });
        });
        v1.MapGet("/replicas/{id}/logs", (string id, HttpContext context) =>
        {
            FindReplica(plane, id);
            return StreamLogsAsync(plane, [id], context);
        });

        v1.MapGet("/revisions", () => Json(plane.Store.ListRevisions().Select(r => RevisionView(r, full: false))));
        v1.MapGet("/revisions/{number}", (string number) =>
        {
            if (!long.TryParse(number, out var n) || n < 1)
            {
                throw new BadRequest($"revision must be a positive whole number, got '{number}'");
            }

            var r = plane.Store.GetRevision(n) ?? throw new ControlPlaneException(ControlPlaneError.NotFound,
                $"no revision {n}; the last {OrchestratorDefaults.RevisionHistoryLimit} are kept, GET /v1/revisions lists them");
            return Json(RevisionView(r, full: true));
        });

        v1.MapGet("/events", async (HttpContext context) =>
        {
            var after = QueryLong(context, "after") ?? 0;
            var service = context.Request.Query["service"].FirstOrDefault();
            var follow = QueryBool(context, "follow") || context.Request.Headers.Accept.Any(a => a?.Contains("text/event-stream", StringComparison.Ordinal) == true);
            if (!follow)
            {
                await WriteJsonAsync(context, plane.Store.ListEvents(after, QueryInt(context, "limit") ?? 1000, service));
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
                var data = JsonSerializer.Serialize(e, StateJson.Options);
                await context.Response.WriteAsync($"id: {e.Id}\nevent: {e.Type}\ndata: {data}\n\n", context.RequestAborted);
                await context.Response.Body.FlushAsync(context.RequestAborted);
            }
        });

        v1.MapPost("/shutdown", async (HttpContext context) =>
        {
            var stop = !QueryBool(context, "keep-replicas");
            context.Response.StatusCode = StatusCodes.Status202Accepted;
            await WriteJsonAsync(context, new { shuttingDown = true, stopReplicas = stop });
            server()._shutdown.TrySetResult(stop);
        });
    }

    // ---- views --------------------------------------------------------------------------------------------------

    private static Application CurrentApp(ControlPlane plane) =>
        plane.Current?.Application ?? throw new ControlPlaneException(ControlPlaneError.Conflict, "nothing is applied yet; run 'berth up' first");

    private static Service FindService(ControlPlane plane, string name)
    {
        var app = CurrentApp(plane);
        return app.FindService(name) ?? throw new ControlPlaneException(ControlPlaneError.NotFound,
            $"no service '{name}' in app '{app.Name}'; known: {string.Join(", ", app.Services.Select(s => s.Name))}");
    }

    private static ReplicaRecord FindReplica(ControlPlane plane, string id) =>
        plane.Replicas.FirstOrDefault(r => r.Id == id) ?? throw new ControlPlaneException(ControlPlaneError.NotFound,
            $"no replica '{id}'; GET /v1/replicas (or 'berth ps') lists them");

    private static object AppView(ControlPlane plane)
    {
        var current = plane.Current ?? throw new ControlPlaneException(ControlPlaneError.Conflict, "nothing is applied yet; run 'berth up' first");
        return new
        {
            name = current.Application.Name,
            revision = current.Number,
            scheduler = JsonNamingPolicy.KebabCaseLower.ConvertName(current.Application.Scheduler.ToString()),
            nodes = plane.Nodes.Select(n => new
            {
                name = n.Name,
                cpu = new CpuQuantity(n.CpuMilli).ToString(),
                memory = new ByteSize(n.MemoryBytes).ToString(),
                allocatedCpu = new CpuQuantity(n.AllocatedCpuMilli).ToString(),
                allocatedMemory = new ByteSize(n.AllocatedMemoryBytes).ToString(),
                replicas = n.Replicas,
            }),
            services = current.Application.Services.Select(s => ServiceView(plane, s)),
            drivers = plane.Drivers.OrderBy(d => d.Kind).Select(d => new
            {
                kind = JsonNamingPolicy.KebabCaseLower.ConvertName(d.Kind.ToString()),
                available = d.Capabilities.Available,
                unavailableReason = d.Capabilities.UnavailableReason,
                cpuLimitsEnforced = d.Capabilities.CpuLimitsEnforced,
                memoryLimitsEnforced = d.Capabilities.MemoryLimitsEnforced,
                limitsMechanism = d.Capabilities.LimitsMechanism,
            }),
            warnings = plane.LimitWarnings.Select(w => new { service = w.Service, driver = w.Driver, message = w.Message }),
        };
    }

    private static object ServiceView(ControlPlane plane, Service s, bool detail = false)
    {
        var current = plane.Current!;
        var mine = plane.Replicas.Where(r => r.Service == s.Name).ToList();
        var ports = plane.StablePorts;
        return new
        {
            name = s.Name,
            runtime = JsonNamingPolicy.KebabCaseLower.ConvertName(s.EffectiveRuntime.ToString()),
            desired = current.Stopped.Contains(s.Name) ? 0 : s.Replicas,
            stopped = current.Stopped.Contains(s.Name),
            revision = current.TemplateOf(s.Name),
            ready = mine.Count(r => r.Phase == ReplicaPhase.Ready),
            running = mine.Count(r => r.Phase is ReplicaPhase.Running or ReplicaPhase.Ready),
            pending = mine.Count(r => r.Phase == ReplicaPhase.Pending),
            backOff = mine.Count(r => r.Phase == ReplicaPhase.BackOff),
            endpoints = s.Endpoints.Select(e => new
            {
                name = e.Name,
                protocol = JsonNamingPolicy.KebabCaseLower.ConvertName(e.Protocol.ToString()),
                port = ports.TryGetValue((s.Name, e.Name), out var p) ? p : e.Port,
                url = $"{(e.Protocol == EndpointProtocol.Tcp ? "tcp" : "http")}://127.0.0.1:{(ports.TryGetValue((s.Name, e.Name), out var q) ? q : e.Port)}",
            }),
            spec = detail ? MaskedSpec(s) : null,
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

    private static object ReplicaView(ReplicaRecord r) => new
    {
        id = r.Id,
        service = r.Service,
        revision = r.Revision,
        phase = JsonNamingPolicy.KebabCaseLower.ConvertName(r.Phase.ToString()),
        reason = r.Reason,
        node = r.Node,
        ports = r.Ports,
        pid = r.Handle?.Pid,
        containerId = r.Handle?.ContainerId,
        restarts = r.RestartCount,
        backOff = r.Phase == ReplicaPhase.BackOff ? new { failuresInARow = r.ConsecutiveFailures, nextRetryAt = r.NextRetryAt } : null,
        lastExitCode = r.LastExitCode,
        createdAt = r.CreatedAt,
        startedAt = r.StartedAt,
        readyAt = r.ReadyAt,
    };

    private static object RevisionView(RevisionRecord r, bool full) => new
    {
        number = r.Number,
        createdAt = r.CreatedAt,
        cause = r.Cause,
        services = r.Application.Services.Select(s => new { name = s.Name, replicas = s.Replicas, template = r.TemplateOf(s.Name) }),
        stopped = r.Stopped,
        spec = full ? new { services = r.Application.Services.Select(MaskedSpec) } : null,
    };

    // ---- logs ---------------------------------------------------------------------------------------------------

    private static async Task StreamLogsAsync(ControlPlane plane, IReadOnlyList<string> ids, HttpContext context)
    {
        var options = new LogOptions { Follow = QueryBool(context, "follow"), Tail = QueryInt(context, "tail") };
        context.Response.ContentType = "application/x-ndjson";
        await context.Response.Body.FlushAsync(context.RequestAborted);
        var gate = new SemaphoreSlim(1, 1);
        await Task.WhenAll(ids.Select(async id =>
        {
            await foreach (var line in plane.GetLogsAsync(id, options, context.RequestAborted))
            {
                var json = JsonSerializer.Serialize(new { replica = id, time = line.Timestamp, stream = line.Stream == LogStream.Stdout ? "stdout" : "stderr", text = line.Text });
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

    private sealed record ScaleBody(int? Replicas);

    private sealed record PatchBody(string? Image, List<string>? Command, Dictionary<string, string>? Env);

    private sealed class BadRequest(string message) : Exception(message);

    private static async Task<T> ReadBodyAsync<T>(HttpContext context, string shape)
    {
        if (context.Request.ContentLength == 0)
        {
            throw new BadRequest($"empty body; send JSON {shape}");
        }

        try
        {
            return await JsonSerializer.DeserializeAsync<T>(context.Request.Body, StateJson.Options, context.RequestAborted)
                ?? throw new BadRequest($"body is null; send JSON {shape}");
        }
        catch (JsonException e)
        {
            var where = e.LineNumber is { } line ? $" at line {line + 1}, byte {e.BytePositionInLine + 1}" : "";
            var what = e.Path is { Length: > 2 } path && e.Message.Contains("could not be converted", StringComparison.Ordinal) ? $" ({path[2..]} has the wrong type)" : "";
            var missing = e.Message.IndexOf("missing required properties including: ", StringComparison.Ordinal);
            if (missing >= 0)
            {
                what = $" (missing {e.Message[(missing + "missing required properties including: ".Length)..].TrimEnd('.')})";
            }

            throw new BadRequest($"malformed JSON{where}{what}; send {shape}");
        }
    }

    private static IResult Json(object value) => Results.Json(value, StateJson.Options);

    private static async Task WriteJsonAsync(HttpContext context, object value)
    {
        context.Response.ContentType = "application/json";
        await JsonSerializer.SerializeAsync(context.Response.Body, value, StateJson.Options, context.RequestAborted);
    }

    private static Task Error(HttpContext context, int status, string message)
    {
        if (context.Response.HasStarted)
        {
            return Task.CompletedTask;
        }

        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        return context.Response.WriteAsync(JsonSerializer.Serialize(new { error = message, status }), context.RequestAborted);
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

    private static string ReadOrCreateToken(string path)
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
