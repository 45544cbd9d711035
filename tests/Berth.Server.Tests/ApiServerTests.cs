using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Berth.Testing.ControlPlanes;

namespace Berth.Server.Tests;

/// <summary>The API over real HTTP on loopback, in front of a control plane with an in-memory driver.</summary>
public sealed class ApiServerTests : IAsyncLifetime
{
    private readonly ControlPlaneHarness _h = new("berth-api-", realClock: true);
    private ApiServer _server = null!;
    private HttpClient _http = null!;

    public async Task InitializeAsync()
    {
        await _h.StartAsync();
        await _h.Plane.ApplyAsync(new Application
        {
            Name = "shop",
            Services =
            [
                new Service
                {
                    Name = "api", Command = ["api"], Replicas = 2, Endpoints = [new Endpoint { Name = "http" }],
                    Env = System.Collections.Immutable.ImmutableSortedDictionary<string, string>.Empty.Add("DB_PASSWORD", "hunter2").Add("MODE", "dev"),
                    SecretEnv = ["DB_PASSWORD"],
                    Files = [new MountedFile { Name = "db-password", Kind = MountedFileKind.Secret, Target = "/run/secrets/db-password", Content = "swordfish" }],
                },
            ],
        }, "up", CancellationToken.None);
        _server = await ApiServer.StartAsync(_h.Plane, new ApiServerOptions { StateDirectory = _h.Directory }, CancellationToken.None);
        _http = new HttpClient { BaseAddress = _server.Url };
        _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", File.ReadAllText(Path.Combine(_h.Directory, "api-token")));
        await Poll.UntilAsync(() => _h.Plane.Replicas.Count(r => r.Phase == ReplicaPhase.Ready) == 2, TimeSpan.FromSeconds(20), "2 replicas ready");
    }

    public async Task DisposeAsync()
    {
        _http.Dispose();
        await _server.DisposeAsync();
        await _h.DisposeAsync();
    }

    private static async Task<(HttpStatusCode Status, string Error)> ErrorOf(HttpResponseMessage response)
    {
        var body = await response.Content.ReadAsStringAsync();
        using var doc = JsonDocument.Parse(body);
        return (response.StatusCode, doc.RootElement.GetProperty("error").GetString()!);
    }

    private static StringContent JsonBody(string json) => new(json, Encoding.UTF8, "application/json");

    /// <summary>POSTs <paramref name="json"/> to <paramref name="path"/> and returns the status and error of the answer.</summary>
    private async Task<(HttpStatusCode Status, string Error)> PostErrorAsync(string path, string json) => await ErrorOf(await _http.PostAsync(path, JsonBody(json)));

    [Fact]
    public void Start_WritesLoopbackAddressAndOwnerOnlyToken()
    {
        Assert.Equal("127.0.0.1", _server.Url.Host);
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(_h.Directory, "api.json")));
        Assert.Equal(_server.Url.ToString().TrimEnd('/'), doc.RootElement.GetProperty("url").GetString());
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(_h.Directory, "api-token")));
        }

        Assert.Equal(64, _server.Token.Length);
    }

    [Fact]
    public async Task Get_MissingToken_401SaysWhereTheTokenIs()
    {
        using var anonymous = new HttpClient { BaseAddress = _server.Url };
        var (status, error) = await ErrorOf(await anonymous.GetAsync("/v1/services"));
        Assert.Equal(HttpStatusCode.Unauthorized, status);
        Assert.Equal("missing token: send 'Authorization: Bearer <token>' with the token in the state folder's api-token file", error);
    }

    [Fact]
    public async Task Get_WrongToken_401()
    {
        using var client = new HttpClient { BaseAddress = _server.Url };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", "not-the-token");
        var (status, error) = await ErrorOf(await client.GetAsync("/v1/services"));
        Assert.Equal(HttpStatusCode.Unauthorized, status);
        Assert.StartsWith("wrong token;", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Scale_UnknownService_404NamesTheKnownOnes()
    {
        Assert.Equal((HttpStatusCode.NotFound, "no service 'nope' in app 'shop'; known: api"), await PostErrorAsync("/v1/services/nope/scale", """{"replicas": 2}"""));
    }

    [Fact]
    public async Task Scale_NegativeReplicas_400()
    {
        Assert.Equal((HttpStatusCode.BadRequest, "replicas must be 0 or more, got -3"), await PostErrorAsync("/v1/services/api/scale", """{"replicas": -3}"""));
    }

    private const string Scale = "/v1/services/api/scale";
    private const string Undo = "/v1/services/api/rollout/undo";
    private const string UndoHint = "; send {\"toRevision\": N} (a revision from GET /v1/services/{name}/rollout/history) or no body for the previous one";

    [Theory]
    [InlineData(Scale, "{\"replicas\": ", "malformed JSON at line 1, byte 14; send {\"replicas\": N}")]
    [InlineData(Scale, "{\"replicas\": \"five\"}", "malformed JSON at line 1, byte 20 (replicas has the wrong type); send {\"replicas\": N}")]
    [InlineData(Scale, "{}", "missing \"replicas\": send {\"replicas\": N} with N a whole number, 0 or more")]
    [InlineData(Scale, "", "empty body; send JSON {\"replicas\": N}")]
    [InlineData(Undo, "{\"toRevision\": -1}", "toRevision must be a positive whole number, got -1" + UndoHint)]
    [InlineData(Undo, "{\"toRevision\": \"3\"}", "toRevision must be a positive whole number, got \"3\"" + UndoHint)]
    [InlineData(Undo, "{\"toRevision\": 1.5}", "toRevision must be a positive whole number, got 1.5" + UndoHint)]
    [InlineData(Undo, "[1]", "the body must be a JSON object" + UndoHint)]
    [InlineData(Undo, "null", "the body must be a JSON object" + UndoHint)]
    [InlineData(Undo, "{\"toRevision\": ", "malformed JSON at line 1, byte 16" + UndoHint)]
    [InlineData("/v1/apply", "{\"name\": \"shop\", \"services\": [null]}", "$.services[0]: a service, not null")]
    [InlineData("/v1/apply", "{\"name\": \"shop\", \"services\": null}", "malformed JSON at line 1, byte 34 (services has the wrong type); send the app model as JSON (what 'berth up' sends)")]
    [InlineData("/v1/apply", "{\"services\": []}", "malformed JSON at line 1, byte 17 (missing 'name'); send the app model as JSON (what 'berth up' sends)")]
    public async Task ScaleUndoApply_BadBody_400WithWhatToSend(string path, string body, string expected)
    {
        Assert.Equal((HttpStatusCode.BadRequest, expected), await PostErrorAsync(path, body));
    }

    [Fact]
    public async Task Get_UnknownEndpointOrReplicaOrRevision_404()
    {
        Assert.Equal((HttpStatusCode.NotFound, "no such endpoint: GET /v1/nothing; see docs/api.md"), await ErrorOf(await _http.GetAsync("/v1/nothing")));
        Assert.Equal((HttpStatusCode.NotFound, "no replica 'api-zzz'; GET /v1/replicas (or 'berth ps') lists them"), await ErrorOf(await _http.GetAsync("/v1/replicas/api-zzz")));
        Assert.Equal((HttpStatusCode.NotFound, "no revision 99; the last 10 are kept, GET /v1/revisions lists them"), await ErrorOf(await _http.GetAsync("/v1/revisions/99")));
        Assert.Equal((HttpStatusCode.BadRequest, "revision must be a positive whole number, got '-1'"), await ErrorOf(await _http.GetAsync("/v1/revisions/-1")));
    }

    [Fact]
    public async Task Scale_Valid_SameRevisionAndReplicasFollow()
    {
        var response = await _http.PostAsync("/v1/services/api/scale", JsonBody("""{"replicas": 4}"""));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal(1, doc.RootElement.GetProperty("revision").GetInt64());
        await Poll.UntilAsync(async () =>
        {
            using var replicas = JsonDocument.Parse(await _http.GetStringAsync("/v1/services/api/replicas"));
            return replicas.RootElement.EnumerateArray().Count(r => r.GetProperty("phase").GetString() == "ready") == 4;
        }, TimeSpan.FromSeconds(20), "4 ready replicas via the API");
        using var revisions = JsonDocument.Parse(await _http.GetStringAsync("/v1/revisions"));
        // A scale is no new pod template: the count goes into the current revision (issue #14 §7).
        var only = Assert.Single(revisions.RootElement.EnumerateArray());
        Assert.Equal("up", only.GetProperty("cause").GetString());
        Assert.Equal(4, only.GetProperty("services").EnumerateArray().Single(s => s.GetProperty("name").GetString() == "api").GetProperty("replicas").GetInt32());
    }

    [Fact]
    public async Task GetService_SecretEnv_Masked()
    {
        var body = await _http.GetStringAsync("/v1/services/api");
        Assert.DoesNotContain("hunter2", body, StringComparison.Ordinal);
        Assert.DoesNotContain("swordfish", body, StringComparison.Ordinal); // a Compose secret's content, as the env secret
        Assert.DoesNotContain("swordfish", await _http.GetStringAsync("/v1/revisions/1"), StringComparison.Ordinal);
        using var doc = JsonDocument.Parse(body);
        var env = doc.RootElement.GetProperty("spec").GetProperty("env");
        Assert.Equal("***", env.GetProperty("DB_PASSWORD").GetString());
        Assert.Equal("dev", env.GetProperty("MODE").GetString());
        Assert.DoesNotContain("hunter2", await _http.GetStringAsync("/v1/revisions/1"), StringComparison.Ordinal);
        Assert.DoesNotContain("hunter2", await _http.GetStringAsync("/v1/events"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Patch_Env_ReturnsRevisionAndRolloutCompletes()
    {
        var response = await _http.PatchAsync("/v1/services/api", JsonBody("""{"env": {"MODE": "prod"}}"""));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var revision = doc.RootElement.GetProperty("revision").GetInt64();
        await Poll.UntilAsync(async () =>
        {
            using var rollout = JsonDocument.Parse(await _http.GetStringAsync("/v1/services/api/rollout"));
            return rollout.RootElement.GetProperty("state").GetString() == "complete" && rollout.RootElement.GetProperty("revision").GetInt64() == revision;
        }, TimeSpan.FromSeconds(20), "rollout complete");
        Assert.Equal((HttpStatusCode.BadRequest, "nothing to change: send at least one of \"image\", \"command\", \"env\""),
            await ErrorOf(await _http.PatchAsync("/v1/services/api", JsonBody("{}"))));
    }

    [Fact]
    public async Task Patch_ImageOnAProcessService_409SayingWhyAndNothingChanged()
    {
        var revision = _h.Plane.Current!.Number;
        var replicas = _h.Plane.Replicas.Select(r => r.Id).Order().ToList();

        var (status, error) = await ErrorOf(await _http.PatchAsync("/v1/services/api", JsonBody("""{"image": "shop/api:2", "env": {"MODE": "prod"}}""")));

        Assert.Equal(HttpStatusCode.Conflict, status);
        Assert.Equal("service 'api' runs as a process (run: with no image); a PATCH does not move a service to Docker, because its run:, " +
            "working_dir and volumes mean something else in a container. To run it from an image, set image: (and runtime: docker) in the spec " +
            "and apply it with 'berth up'; to change the process, PATCH \"command\" or \"env\"", error);
        Assert.Equal(revision, _h.Plane.Current!.Number);
        Assert.Equal("dev", _h.Plane.Current.Application.FindService("api")!.Env["MODE"]);
        Assert.Null(_h.Plane.Current.Application.FindService("api")!.Image);
        Assert.Equal(replicas, _h.Plane.Replicas.Select(r => r.Id).Order().ToList());
    }

    private async Task<(List<long> Ids, string Link)> EventPageAsync(string query)
    {
        using var response = await _http.GetAsync($"/v1/events?{query}");
        Assert.True(response.IsSuccessStatusCode, $"GET /v1/events?{query}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return ([.. doc.RootElement.EnumerateArray().Select(e => e.GetProperty("id").GetInt64())], string.Join(", ", response.Headers.GetValues("Link")));
    }

    [Fact]
    public async Task Events_MoreThanAPage_NewestFirstPageWithCursors()
    {
        var start = new DateTimeOffset(2026, 3, 1, 0, 0, 0, TimeSpan.Zero);
        var ids = Enumerable.Range(0, 2500)
            .Select(i => _h.Store.AppendEvent(new EventRecord { Time = start.AddSeconds(i), Type = "load", Service = "load", Message = $"event {i}" }).Id)
            .ToList();

        var (newest, link) = await EventPageAsync("service=load");
        Assert.Equal(ids[^1000..], newest);
        Assert.Contains($"</v1/events?before={ids[1500]}&limit=1000&service=load>; rel=\"prev\"", link, StringComparison.Ordinal);
        Assert.Contains($"</v1/events?after={ids[^1]}&limit=1000&service=load>; rel=\"next\"", link, StringComparison.Ordinal);

        var (older, _) = await EventPageAsync($"service=load&before={ids[1500]}");
        Assert.Equal(ids[500..1500], older);
        var (oldest, _) = await EventPageAsync($"service=load&before={ids[500]}");
        Assert.Equal(ids[..500], oldest);

        Assert.Equal(ids[^5..], (await EventPageAsync("service=load&limit=5")).Ids);
        Assert.Equal(ids[10..13], (await EventPageAsync($"service=load&after={ids[9]}&limit=3")).Ids);
        Assert.Equal(ids[2490..], (await EventPageAsync($"service=load&since={Uri.EscapeDataString(start.AddSeconds(2490).ToString("O"))}")).Ids);
        Assert.Equal(ids[2490..2495], (await EventPageAsync($"service=load&since=2026-03-01T00:41:30Z&limit=5&before={ids[2495]}")).Ids);
        Assert.Empty((await EventPageAsync("service=load&since=1m")).Ids);
    }

    [Theory]
    [InlineData("limit=0", "query 'limit' must be from 1 to 10000, got 0; page with 'before' or 'after' for more")]
    [InlineData("limit=10001", "query 'limit' must be from 1 to 10000, got 10001; page with 'before' or 'after' for more")]
    [InlineData("after=1&before=9", "query 'after' and 'before' are two directions; give one of them (after=ID reads newer events, before=ID older ones)")]
    [InlineData("since=yesterday", "query 'since' must be an RFC 3339 time (2026-01-02T15:04:05Z) or a duration back from now (10m, 1h30m), got 'yesterday'")]
    public async Task Events_BadPaging_400WithHowToFix(string query, string error) =>
        Assert.Equal((HttpStatusCode.BadRequest, error), await ErrorOf(await _http.GetAsync($"/v1/events?{query}")));

    private static string AppJson(string name, params (string Name, int Replicas)[] services) => JsonSerializer.Serialize(new Application
    {
        Name = name,
        Services = [.. services.Select(s => new Service { Name = s.Name, Command = ["api"], Replicas = s.Replicas })],
    }, StateJson.Options);

    [Fact]
    public async Task Apply_ManyProblems_400WithEveryOneAndItsJsonPath()
    {
        var body = AppJson("../../x", ("../../x", 2), ("ok", -1), ("ok", 1));

        var (status, error) = await ErrorOf(await _http.PostAsync("/v1/apply", JsonBody(body)));

        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("4 problems: $.name: '../../x' is not a valid app name; use lowercase letters, digits, '-' and '_', starting with a letter or digit; "
            + "$.services[0].name: '../../x' is not a valid service name; use letters, digits, '-' and '_', starting with a letter or digit; "
            + "$.services[1].replicas: must be between 0 and 10000, got -1; "
            + "$.services: service names must be unique; repeated: ok", error);
        Assert.Equal(2, _h.Plane.Replicas.Count(r => r.Service == "api"));
    }

    [Fact]
    public async Task Apply_ReplicasAsStringOrKeyTwice_400NamingTheKey()
    {
        var asString = AppJson("shop", ("api", 2)).Replace("\"replicas\":2", "\"replicas\":\"3\"", StringComparison.Ordinal);
        var twice = AppJson("shop", ("api", 2)).Replace("\"replicas\":2", "\"replicas\":2,\"replicas\":0", StringComparison.Ordinal);

        var (status, error) = await ErrorOf(await _http.PostAsync("/v1/apply", JsonBody(asString)));
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("(services[0].replicas has the wrong type)", error, StringComparison.Ordinal);
        (status, error) = await ErrorOf(await _http.PostAsync("/v1/apply", JsonBody(twice)));
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("($.services[0].replicas is given twice; keep one)", error, StringComparison.Ordinal);
        Assert.Equal(2, _h.Plane.Current!.Application.FindService("api")!.Replicas);
    }

    [Fact]
    public async Task Apply_NullListOrMissingEndpointName_400WithItsPathAndNothingChanged()
    {
        var withNull = AppJson("shop", ("api", 3)).Replace("\"command\":[\"api\"]", "\"command\":null", StringComparison.Ordinal);
        var node = JsonNode.Parse(AppJson("shop", ("api", 3)))!;
        node["services"]![0]!["endpoints"] = JsonNode.Parse("""[{"port": 8080, "protocol": "http"}]""");

        var (status, error) = await ErrorOf(await _http.PostAsync("/v1/apply", JsonBody(withNull)));
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("services[0].command", error, StringComparison.Ordinal);
        (status, error) = await ErrorOf(await _http.PostAsync("/v1/apply", JsonBody(node.ToJsonString())));
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("$.services[0].endpoints[0].name: missing (null); give it a value ('berth up' always sends it)", error, StringComparison.Ordinal);
        Assert.Equal(2, _h.Plane.Current!.Application.FindService("api")!.Replicas);
        (await _http.PatchAsync("/v1/services/api", JsonBody("""{"env": {"VERSION": "1"}}"""))).EnsureSuccessStatusCode();
    }

    [Fact]
    public async Task Apply_NoServicesOrRename_409UnlessPrune()
    {
        var (status, error) = await ErrorOf(await _http.PostAsync("/v1/apply", JsonBody(AppJson("shop"))));
        Assert.Equal((HttpStatusCode.Conflict, "$.services: an app with no services removes all 1 running (api); apply with prune to do that ('berth up --prune', POST /v1/apply?prune=true), or 'berth down'"), (status, error));
        (status, error) = await ErrorOf(await _http.PostAsync("/v1/apply", JsonBody(AppJson("other", ("api", 2)))));
        Assert.Equal((HttpStatusCode.Conflict, "$.name: renaming the app 'shop' to 'other' removes every replica of 'shop'; apply with prune to do that ('berth up --prune', POST /v1/apply?prune=true)"), (status, error));
        Assert.Equal(2, _h.Plane.Replicas.Count(r => r.Service == "api" && r.Phase == ReplicaPhase.Ready));

        (await _http.PostAsync("/v1/apply?prune=true", JsonBody(AppJson("shop")))).EnsureSuccessStatusCode();
        await Poll.UntilAsync(() => _h.Plane.Replicas.Count(r => r.Service == "api" && !r.IsFinished) == 0, TimeSpan.FromSeconds(20), "every api replica gone after a pruning apply");
    }

    [Fact]
    public async Task Events_ServerSentStream_ReplaysThenFollowsLiveEvents()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/events?follow=true");
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));
        using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cts.Token);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cts.Token));

        var sawReplay = false;
        var scaled = false;
        while (await reader.ReadLineAsync(cts.Token) is { } line)
        {
            sawReplay |= line == "event: revision";
            if (sawReplay && !scaled)
            {
                scaled = true;
                (await _http.PostAsync("/v1/services/api/scale", JsonBody("""{"replicas": 1}"""), cts.Token)).EnsureSuccessStatusCode();
            }

            if (line.StartsWith("data: ", StringComparison.Ordinal) && line.Contains("\"type\":\"scaled\"", StringComparison.Ordinal))
            {
                Assert.Contains("scaled to 1", line, StringComparison.Ordinal);
                return;
            }
        }

        Assert.Fail("the stream ended before the scaled event");
    }

    [Fact]
    public async Task Logs_Replica_NdjsonLines()
    {
        var id = _h.Plane.Replicas.First().Id;
        var body = await _http.GetStringAsync($"/v1/replicas/{id}/logs");
        using var doc = JsonDocument.Parse(body.Split('\n')[0]);
        Assert.Equal($"hello from {id}", doc.RootElement.GetProperty("text").GetString());
        Assert.Equal("stdout", doc.RootElement.GetProperty("stream").GetString());
    }

    [Theory]
    [InlineData("10m", 2)]
    [InlineData("2000-01-02T03:04:05Z", 2)]
    [InlineData("2999-01-02T03:04:05Z", 0)]
    public async Task Logs_ServiceSince_OnlyLinesFromThatTimeOn(string since, int lines)
    {
        // berth watch follows a hot-reload service's logs from the moment of a change (an app that logs every request pushed
        // dotnet watch's verdict out of a fixed tail between two polls).
        var body = await _http.GetStringAsync($"/v1/services/api/logs?since={Uri.EscapeDataString(since)}");

        Assert.Equal(lines, body.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);
    }

    [Fact]
    public async Task Shutdown_Post_SignalsTheHost()
    {
        var response = await _http.PostAsync("/v1/shutdown", null);
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        Assert.True(await _server.ShutdownRequested.WaitAsync(TimeSpan.FromSeconds(5)));
    }
}
