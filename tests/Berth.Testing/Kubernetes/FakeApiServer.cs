using System.Collections.Concurrent;
using System.Net;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Berth.Testing.Kubernetes;

/// <summary>A local HTTP server (Kestrel on 127.0.0.1) answering the Kubernetes API paths apply, diff, status and delete use:
/// PATCH (server-side apply), GET of an object, GET deployments|statefulsets|jobs/{name}/status, GET pods, label-selected lists, DELETE.
/// It records every request, and keeps what is applied: it stores each object in the normalized form a real API server stores
/// (<see cref="ServerNormalization"/>), bumps resourceVersion only when a write changes something, records managedFields, answers a
/// dry run without storing, refuses objects in a missing namespace when <see cref="EnforceNamespaces"/> is set, and keeps an object with
/// finalizers (a claim's kubernetes.io/pvc-protection) until it has been read <see cref="FinalizerReads"/> times after its deletion.
/// It is a stand-in for an API server, which cannot run on these machines: it does not run pods or controllers.</summary>
public sealed class FakeApiServer : IAsyncDisposable
{
    public const string Token = "test-token";

    private readonly WebApplication _app;
    private readonly ConcurrentDictionary<string, ConcurrentQueue<string>> _statusScripts = new();
    private readonly ConcurrentDictionary<string, string> _lastStatus = new();
    private readonly Lock _lock = new();
    private readonly Dictionary<string, JsonObject> _store = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int> _readsWhileTerminating = new(StringComparer.Ordinal);
    private long _resourceVersion = 100;

    private FakeApiServer(WebApplication app, string url)
    {
        _app = app;
        Url = url;
    }

    public string Url { get; }

    public ConcurrentQueue<RecordedRequest> Requests { get; } = new();

    /// <summary>Fixed answers by "METHOD path" (path without query), taking precedence over the defaults.</summary>
    public ConcurrentDictionary<string, (HttpStatusCode Status, string Body)> Overrides { get; } = new();

    /// <summary>Fixed plain-text answers by "METHOD path", as a real server answers a path it does not serve ("404 page not found\n").</summary>
    public ConcurrentDictionary<string, (HttpStatusCode Status, string Text)> PlainTextOverrides { get; } = new();

    /// <summary>Object names answered for a collection GET (a list), by path; any other list is empty.</summary>
    public ConcurrentDictionary<string, string[]> Collections { get; } = new();

    /// <summary>Namespaces that exist (a Namespace applied for real is added); enforced only with <see cref="EnforceNamespaces"/>.</summary>
    public ConcurrentDictionary<string, bool> Namespaces { get; } = new();

    /// <summary>Refuse namespaced objects in a namespace not in <see cref="Namespaces"/>, as the NamespaceLifecycle admission plugin does. Off:
    /// every namespace exists.</summary>
    public bool EnforceNamespaces { get; set; }

    /// <summary>How many reads of a deleted object with finalizers it survives before its finalizers are done (the controller's work).</summary>
    public int FinalizerReads { get; set; } = 2;

    /// <summary>The stored object at <paramref name="path"/>, or null.</summary>
    public JsonObject? Stored(string path)
    {
        lock (_lock)
        {
            return _store.TryGetValue(path, out var o) ? (JsonObject)o.DeepClone() : null;
        }
    }

    /// <summary>Changes a stored object as another field manager would with an update (kubectl edit, kubectl scale): the change is applied,
    /// resourceVersion bumps, and a managedFields entry of that manager (operation Update, a later time) owns <paramref name="fields"/>.</summary>
    public void EditAsOtherManager(string path, string manager, Action<JsonObject> change, JsonObject fields)
    {
        lock (_lock)
        {
            var obj = _store[path];
            change(obj);
            var meta = (JsonObject)obj["metadata"]!;
            meta["resourceVersion"] = (++_resourceVersion).ToString(System.Globalization.CultureInfo.InvariantCulture);
            var managed = meta["managedFields"] as JsonArray ?? [];
            managed.Add(new JsonObject
            {
                ["manager"] = manager,
                ["operation"] = "Update",
                ["apiVersion"] = obj["apiVersion"]?.GetValue<string>(),
                ["time"] = Time(_resourceVersion),
                ["fieldsType"] = "FieldsV1",
                ["fieldsV1"] = fields,
            });
            meta["managedFields"] = managed;
        }
    }

    /// <summary>Sets a stored object's status as its controller does, through the status subresource (a managedFields entry with
    /// <c>subresource: status</c>), without touching what was applied.</summary>
    public void SetStatus(string path, string manager, JsonObject status)
    {
        lock (_lock)
        {
            var obj = _store[path];
            obj["status"] = status;
            var meta = (JsonObject)obj["metadata"]!;
            meta["resourceVersion"] = (++_resourceVersion).ToString(System.Globalization.CultureInfo.InvariantCulture);
            var managed = meta["managedFields"] as JsonArray ?? [];
            managed.Add(new JsonObject
            {
                ["manager"] = manager,
                ["operation"] = "Update",
                ["subresource"] = "status",
                ["time"] = Time(_resourceVersion),
                ["fieldsType"] = "FieldsV1",
                ["fieldsV1"] = new JsonObject { ["f:status"] = new JsonObject { ["f:currentReplicas"] = new JsonObject() } },
            });
            meta["managedFields"] = managed;
        }
    }

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

    /// <summary>A Deployment as its status subresource answers: spec replicas, and updated/total/available replicas in status.</summary>
    public static string DeploymentStatus(int replicas, int updated, int total, int available, long generation = 1, long observed = 1, string? progressingReason = null) => $$$"""
        {"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"x","generation":{{{generation}}}},
         "spec":{"replicas":{{{replicas}}},"selector":{},"template":{}},
         "status":{"observedGeneration":{{{observed}}},"replicas":{{{total}}},"updatedReplicas":{{{updated}}},"availableReplicas":{{{available}}},
           "conditions":[{"type":"Progressing","status":"{{{(progressingReason == "ProgressDeadlineExceeded" ? "False" : "True")}}}","reason":"{{{progressingReason ?? "NewReplicaSetAvailable"}}}","message":"ReplicaSet progress"}]}}
        """;

    /// <summary>A StatefulSet as its status subresource answers, with every ready replica updated.</summary>
    public static string StatefulSetStatus(int replicas, int ready) => $$$"""
        {"apiVersion":"apps/v1","kind":"StatefulSet","metadata":{"name":"x","generation":1},
         "spec":{"replicas":{{{replicas}}},"selector":{},"template":{},"serviceName":"x"},
         "status":{"observedGeneration":1,"replicas":{{{replicas}}},"readyReplicas":{{{ready}}},"updatedReplicas":{{{ready}}},"currentRevision":"r1","updateRevision":"r1"}}
        """;

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

        if (PlainTextOverrides.TryGetValue($"{request.Method} {request.Path}", out var text))
        {
            ctx.Response.StatusCode = (int)text.Status;
            ctx.Response.ContentType = "text/plain; charset=utf-8";
            await ctx.Response.WriteAsync(text.Text, ctx.RequestAborted);
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

                await ApplyAsync(ctx, request);
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
            case "GET" when Stored(request.Path) is { } stored:
                {
                    var (code, json) = ReadWhileTerminating(request.Path, stored);
                    await Answer(ctx, code, json);
                    return;
                }

            case "GET" when segments is ["api", "v1", "namespaces", var ns]:
                if (EnforceNamespaces && !Namespaces.ContainsKey(ns))
                {
                    await Answer(ctx, HttpStatusCode.NotFound, Status(404, "NotFound", $"namespaces \"{ns}\" not found"));
                }
                else
                {
                    await Answer(ctx, HttpStatusCode.OK, $$$"""{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"{{{ns}}}"},"status":{"phase":"Active"}}""");
                }

                return;
            case "GET" when request.Query.ContainsKey("labelSelector"):
                {
                    var names = (Collections.GetValueOrDefault(request.Path) ?? []).Union(StoredNames(request.Path, request.Query["labelSelector"])).ToArray();
                    var items = string.Join(',', names.Select(n => $$$"""{"metadata":{"name":"{{{n}}}"}}"""));
                    await Answer(ctx, HttpStatusCode.OK, $$$"""{"kind":"List","apiVersion":"v1","metadata":{},"items":[{{{items}}}]}""");
                    return;
                }

            case "DELETE":
                if (!request.Query.ContainsKey("dryRun"))
                {
                    Delete(request.Path);
                }

                // A Status for most kinds; the same JSON also reads as the deleted object (Services answer with it).
                await Answer(ctx, HttpStatusCode.OK, """{"kind":"Status","apiVersion":"v1","metadata":{},"code":200}""");
                return;
            default:
                await Answer(ctx, HttpStatusCode.NotFound, Status(404, "NotFound", $"the fake serves no {request.Method} {request.Path}"));
                return;
        }
    }

    private async Task ApplyAsync(HttpContext ctx, RecordedRequest request)
    {
        var segments = request.Path.Trim('/').Split('/');
        var nsIndex = Array.IndexOf(segments, "namespaces");
        var ns = nsIndex >= 0 && nsIndex + 2 < segments.Length ? segments[nsIndex + 1] : null;
        var dryRun = request.Query.ContainsKey("dryRun");
        if (ns is not null && EnforceNamespaces && !Namespaces.ContainsKey(ns))
        {
            await Answer(ctx, HttpStatusCode.NotFound, Status(404, "NotFound", $"namespaces \"{ns}\" not found"));
            return;
        }

        var applied = JsonNode.Parse(request.Body)!.AsObject();
        var normalized = ServerNormalization.Normalize(applied);
        string answer;
        lock (_lock)
        {
            _store.TryGetValue(request.Path, out var existing);
            // A real server writes (and bumps resourceVersion) when the stored object would change, or when what the manager applied is not
            // what is stored: its managed field set or values then differ from the object's (issue #19's minReadySeconds: 0, volumeMode).
            var noOp = existing is not null
                && Content(applied) == Content(normalized)
                && Content(normalized) == Content(existing);
            if (noOp)
            {
                answer = existing!.ToJsonString();
            }
            else
            {
                var meta = (JsonObject)normalized["metadata"]!;
                var oldMeta = existing?["metadata"] as JsonObject;
                var version = dryRun ? _resourceVersion : ++_resourceVersion;
                meta["uid"] = oldMeta?["uid"]?.GetValue<string>() ?? Guid.NewGuid().ToString();
                meta["resourceVersion"] = version.ToString(System.Globalization.CultureInfo.InvariantCulture);
                meta["generation"] = (oldMeta?["generation"]?.GetValue<long>() ?? 0) + 1;
                meta["creationTimestamp"] = oldMeta?["creationTimestamp"]?.DeepClone() ?? Time(version);
                if (normalized["kind"]?.GetValue<string>() == "PersistentVolumeClaim")
                {
                    meta["finalizers"] = new JsonArray("kubernetes.io/pvc-protection"); // as the PVC protection admission plugin adds it
                }

                var managed = new JsonArray();
                foreach (var entry in (oldMeta?["managedFields"] as JsonArray ?? []).OfType<JsonObject>()
                    .Where(e => e["manager"]?.GetValue<string>() != request.Query["fieldManager"]))
                {
                    managed.Add(entry.DeepClone());
                }

                managed.Insert(0, new JsonObject
                {
                    ["manager"] = request.Query["fieldManager"],
                    ["operation"] = "Apply",
                    ["apiVersion"] = normalized["apiVersion"]?.GetValue<string>(),
                    ["time"] = Time(version),
                    ["fieldsType"] = "FieldsV1",
                    ["fieldsV1"] = FieldSet(applied),
                });
                meta["managedFields"] = managed;
                if (!dryRun)
                {
                    _store[request.Path] = normalized;
                    if (normalized["kind"]?.GetValue<string>() == "Namespace")
                    {
                        Namespaces[meta["name"]!.GetValue<string>()] = true;
                    }
                }

                answer = normalized.ToJsonString();
            }
        }

        await Answer(ctx, HttpStatusCode.OK, answer);
    }

    // What an object says, without what the server keeps about it (metadata it sets, status).
    public static string Content(JsonObject obj)
    {
        var copy = (JsonObject)obj.DeepClone();
        copy.Remove("status");
        if (copy["metadata"] is JsonObject meta)
        {
            foreach (var key in new[] { "uid", "resourceVersion", "generation", "creationTimestamp", "managedFields", "finalizers", "deletionTimestamp" })
            {
                meta.Remove(key);
            }
        }

        return Canonical.FromJson(copy.ToJsonString());
    }

    // The managed field set of an applied object, in the FieldsV1 form ("f:spec": {"f:replicas": {}}); lists are owned whole.
    private static JsonObject FieldSet(JsonObject obj)
    {
        var set = new JsonObject();
        foreach (var (key, value) in obj)
        {
            if (key is "apiVersion" or "kind" || (key == "metadata" && value is null))
            {
                continue;
            }

            set[$"f:{key}"] = value is JsonObject child && key != "data" ? FieldSet(child) : new JsonObject();
        }

        return set;
    }

    private static string Time(long version) => new DateTime(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc).AddSeconds(version).ToString("yyyy-MM-ddTHH:mm:ssZ", System.Globalization.CultureInfo.InvariantCulture);

    private void Delete(string path)
    {
        lock (_lock)
        {
            if (!_store.TryGetValue(path, out var obj))
            {
                return;
            }

            var meta = (JsonObject)obj["metadata"]!;
            if (meta["finalizers"] is JsonArray { Count: > 0 })
            {
                meta["deletionTimestamp"] ??= Time(_resourceVersion);
                _readsWhileTerminating.TryAdd(path, 0);
            }
            else
            {
                _store.Remove(path);
            }
        }
    }

    // A deleted object with finalizers is answered until the controller (here: the reads counted) finishes them.
    private (HttpStatusCode Code, string Json) ReadWhileTerminating(string path, JsonObject stored)
    {
        lock (_lock)
        {
            if (_readsWhileTerminating.TryGetValue(path, out var reads))
            {
                if (reads >= FinalizerReads)
                {
                    _store.Remove(path);
                    _readsWhileTerminating.Remove(path);
                    return (HttpStatusCode.NotFound, Status(404, "NotFound", $"{path} not found"));
                }

                _readsWhileTerminating[path] = reads + 1;
            }
        }

        return (HttpStatusCode.OK, stored.ToJsonString());
    }

    private IEnumerable<string> StoredNames(string collection, string selector)
    {
        var wanted = selector.Split(',', StringSplitOptions.RemoveEmptyEntries).Select(p => p.Split('=', 2)).Where(p => p.Length == 2).ToList();
        lock (_lock)
        {
            return [.. _store
                .Where(kv => kv.Key.StartsWith(collection + "/", StringComparison.Ordinal) && !kv.Key[(collection.Length + 1)..].Contains('/'))
                .Where(kv => wanted.All(w => kv.Value["metadata"]?["labels"]?[w[0]]?.GetValue<string>() == w[1]))
                .Select(kv => kv.Value["metadata"]!["name"]!.GetValue<string>())];
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

public sealed record RecordedRequest(string Method, string Path, Dictionary<string, string> Query, string? ContentType, string Body);
