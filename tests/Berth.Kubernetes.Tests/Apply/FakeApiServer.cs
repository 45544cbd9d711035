
namespace Berth.Kubernetes.Tests.Apply;

/// <summary>A local HTTP server (Kestrel on 127.0.0.1) answering the few Kubernetes API paths apply and delete use:
/// PATCH (server-side apply), GET deployments|statefulsets/{name}/status, GET pods, DELETE. It records every request.
/// It is a stand-in for an API server, which cannot run on these machines — it checks what is sent, it does not run pods.</summary>
internal sealed class FakeApiServer : IAsyncDisposable
{
    public const string Token = "test-token";

    private readonly WebApplication _app;
    private readonly ConcurrentDictionary<string, ConcurrentQueue<string>> _statusScripts = new();
    private readonly ConcurrentDictionary<string, string> _lastStatus = new();

    private FakeApiServer(WebApplication app, string url)
    {
        _app = app;
        Url = url;
    }

    public string Url { get; }

    public ConcurrentQueue<RecordedRequest> Requests { get; } = new();

    /// <summary>Fixed answers by "METHOD path" (path without query), taking precedence over the defaults.</summary>
    public ConcurrentDictionary<string, (HttpStatusCode Status, string Body)> Overrides { get; } = new();

    /// <summary>Object names answered for a collection GET (a list), by path; any other list is empty.</summary>
    public ConcurrentDictionary<string, string[]> Collections { get; } = new();

    /// <summary>Pod list JSON answered for any pod list; default none.</summary>
    public string PodsJson { get; set; } = """{"kind":"PodList","apiVersion":"v1","items":[]}""";

    public static async Task<FakeApiServer> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        var app = builder.Build();
        FakeApiServer? server = null;
        app.Run(ctx => server!.HandleAsync(ctx));
        await app.StartAsync();
        var url = app.Urls.Single();
        server = new FakeApiServer(app, url);
        return server;
    }

    /// <summary>Answers successive status reads of a Deployment or StatefulSet with these objects (JSON); the last repeats.</summary>
    public void ScriptStatus(string kindPlural, string name, params string[] statuses)
    {
        var queue = new ConcurrentQueue<string>(statuses);
        _statusScripts[$"{kindPlural}/{name}"] = queue;
    }

    /// <summary>Writes a kubeconfig naming this server: context 'fake' (namespace team-a, current) and 'other' (namespace team-b).</summary>
    public string WriteKubeconfig(string directory)
    {
        var path = Path.Combine(directory, "kubeconfig");
        File.WriteAllText(path, $"""
            apiVersion: v1
            kind: Config
            clusters:
            - name: fake
              cluster:
                server: {Url}
            contexts:
            - name: fake
              context:
                cluster: fake
                user: fake
                namespace: team-a
            - name: other
              context:
                cluster: fake
                user: fake
                namespace: team-b
            current-context: fake
            users:
            - name: fake
              user:
                token: {Token}
            """);
        return path;
    }

    private async Task HandleAsync(HttpContext ctx)
    {
        using var reader = new StreamReader(ctx.Request.Body);
        var body = await reader.ReadToEndAsync(ctx.RequestAborted);
        var request = new RecordedRequest(
            ctx.Request.Method,
            ctx.Request.Path.Value ?? "",
            ctx.Request.Query.ToDictionary(q => q.Key, q => q.Value.ToString()),
            ctx.Request.ContentType,
            body);
        Requests.Enqueue(request);

        if (ctx.Request.Headers.Authorization.ToString() != $"Bearer {Token}")
        {
            await Answer(ctx, HttpStatusCode.Unauthorized, Status(401, "Unauthorized", "Unauthorized"));
            return;
        }

        if (Overrides.TryGetValue($"{request.Method} {request.Path}", out var fixedAnswer))
        {
            await Answer(ctx, fixedAnswer.Status, fixedAnswer.Body);
            return;
        }

        var segments = request.Path.Trim('/').Split('/');
        var name = segments[^1];
        switch (request.Method)
        {
            case "PATCH":
                if (request.ContentType?.StartsWith("application/apply-patch+yaml", StringComparison.Ordinal) != true)
                {
                    await Answer(ctx, HttpStatusCode.UnsupportedMediaType, Status(415, "UnsupportedMediaType", $"expected application/apply-patch+yaml, got {request.ContentType}"));
                    return;
                }

                if (request.Query.GetValueOrDefault("fieldManager") is not { Length: > 0 })
                {
                    await Answer(ctx, HttpStatusCode.BadRequest, Status(400, "BadRequest", "fieldManager is required for apply requests"));
                    return;
                }

                await Answer(ctx, HttpStatusCode.OK, $$$"""{"metadata":{"name":"{{{name}}}","generation":1}}""");
                return;
            case "GET" when segments[^1] == "status" && segments.Length >= 3:
                {
                    var key = $"{segments[^3]}/{segments[^2]}";
                    if (_statusScripts.TryGetValue(key, out var queue) && queue.TryDequeue(out var next))
                    {
                        _lastStatus[key] = next;
                    }

                    if (_lastStatus.TryGetValue(key, out var status))
                    {
                        await Answer(ctx, HttpStatusCode.OK, status);
                    }
                    else
                    {
                        await Answer(ctx, HttpStatusCode.NotFound, Status(404, "NotFound", $"{key} not found"));
                    }

                    return;
                }

            case "GET" when segments[^1] == "pods":
                await Answer(ctx, HttpStatusCode.OK, PodsJson);
                return;
            case "GET" when request.Query.ContainsKey("labelSelector"):
                {
                    var names = Collections.GetValueOrDefault(request.Path) ?? [];
                    var items = string.Join(',', names.Select(n => $$$"""{"metadata":{"name":"{{{n}}}"}}"""));
                    await Answer(ctx, HttpStatusCode.OK, $$$"""{"kind":"List","apiVersion":"v1","metadata":{},"items":[{{{items}}}]}""");
                    return;
                }

            case "DELETE":
                // A Status for most kinds; the same JSON also reads as the deleted object (Services answer with it).
                await Answer(ctx, HttpStatusCode.OK, """{"kind":"Status","apiVersion":"v1","metadata":{},"code":200}""");
                return;
            default:
                await Answer(ctx, HttpStatusCode.NotFound, Status(404, "NotFound", $"the fake serves no {request.Method} {request.Path}"));
                return;
        }
    }

    public static string Status(int code, string reason, string message) =>
        $$$"""{"kind":"Status","apiVersion":"v1","status":"Failure","message":{{{System.Text.Json.JsonSerializer.Serialize(message)}}},"reason":"{{{reason}}}","code":{{{code}}}}""";

    private static async Task Answer(HttpContext ctx, HttpStatusCode status, string json)
    {
        ctx.Response.StatusCode = (int)status;
        ctx.Response.ContentType = "application/json";
        await ctx.Response.WriteAsync(json, ctx.RequestAborted);
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}

internal sealed record RecordedRequest(string Method, string Path, Dictionary<string, string> Query, string? ContentType, string Body);
