
namespace Berth.EndToEnd.Tests;

/// <summary>
/// Issue #8's acceptance, end to end with the real <c>berth</c>: a detached control plane runs a small app as real
/// processes behind the real mesh; <c>berth pipeline run</c> builds, tests (a matrix of 2), builds an image (where a
/// Docker engine is), and deploys through the control plane's API — a good change rolls out, a broken one fails at
/// deploy and is rolled back — while a bounded loopback load through the mesh's stable port sees no failed request.
/// </summary>
[Collection(RealProcesses.Name)]
public sealed class DeliveryPipelineTests : IAsyncLifetime
{
    private static readonly TimeSpan Wait = TimeSpan.FromMinutes(2);
    private readonly AppFolder _app = new("berth-e2e-ship-");
    private readonly string _image = $"berth-e2e-ship:{Guid.NewGuid():N}";
    private readonly bool _docker = Environments.DockerAvailable || Environments.Required("BERTH_REQUIRE_DOCKER");

    public Task InitializeAsync() => Task.CompletedTask;

    // IAsyncLifetime, not IAsyncDisposable: xunit v2 never calls a test class's IAsyncDisposable.DisposeAsync (v3 does).
    // The app down (whatever state the test left it in) and its folder deleted, then the image it built removed.
    public async Task DisposeAsync()
    {
        await _app.DisposeAsync();
        if (_docker)
        {
            await RemoveImageAsync();
        }
    }

    private string Spec()
    {
        var image = _docker
            ? $"      image:\n        needs: test\n        steps:\n          - build-image: {{ context: ., dockerfile: Dockerfile, tags: [\"{_image}\"] }}"
            : "";
        return $$$"""
            name: {{{_app.Name}}}
            services:
              web:
                run: {{{TestHttpServer.Yaml}}}
                replicas: 2
                environment: { V: "1" }
                endpoints:
                  http: {}
                probes:
                  readiness: { http: /healthz, period: 500ms }
                update: { progress_deadline: 20s }   # generous: good replicas must pass readiness in time on a busy machine
                stop_grace_period: 2s
            pipelines:
              ship:
                jobs:
            {{{AcceptancePipeline.BuildAndTestJobs}}}
            {{{image}}}
                  deploy:
                    needs: {{{(_docker ? "image" : "test")}}}
                    env: { RELEASE: "2" }
                    steps:
                      # The value reaches the deployed service through a step output (issue #20, bug 4: deploy values
                      # were rendered against an empty context); "ok 2" from the mesh below proves it arrived.
                      - id: version
                        run: echo "v=$RELEASE" >> "$GITHUB_OUTPUT"
                      - deploy: { service: web, env: { V: "${{ steps.version.outputs.v }}" }, timeout: 3m }
              # The same delivery with a mistake: the new replicas answer 500, so they never pass readiness.
              ship-broken:
                jobs:
                  build:
                    steps:
                      - run: "true"
                  deploy:
                    needs: build
                    steps:
                      - deploy: { service: web, env: { V: broken, SICK: / }, timeout: 3m }
            """;
    }

    [Fact]
    public async Task PipelineRun_GoodThenBrokenDeploy_GoodRollsOutBrokenFailsAtDeployAppStaysOnPreviousRevisionZeroFailedRequests()
    {
        _app.WriteSpec(Spec());
        _app.Write("Dockerfile", "FROM scratch\nCOPY out/version /version\n");
        var berth = _app.Cli;
        var up = await berth.RunAsync("up", "-d");
        Assert.True(up.Code == 0, $"berth up -d: {up}");
        using var api = new ControlPlaneApi(berth.State);
        await Poll.UntilAsync(async () => await api.TryGetAsync("v1/services/web") is { } web && web.GetProperty("ready").GetInt32() == 2, Wait, "web: 2 Ready");
        var port = (await api.GetAsync("v1/services/web")).GetProperty("endpoints")[0].GetProperty("port").GetInt32();
        var first = (await api.GetAsync("v1/services/web")).GetProperty("revision").GetInt64();
        await using var load = LoopbackLoad.Start(port);
        await load.MoreAsync(20);

        // The good change: every job succeeds and web rolls to the new revision.
        var ship = await berth.RunAsync("pipeline", "run", "ship");
        Assert.True(ship.Code == 0, $"berth pipeline run ship: {ship}");
        var shipped = Show(await berth.RunAsync("pipeline", "show", "1", "-o", "json"));
        var jobs = new Dictionary<string, string> { ["build"] = "succeeded", ["test (unit)"] = "succeeded", ["test (smoke)"] = "succeeded", ["deploy"] = "succeeded" };
        if (_docker)
        {
            jobs["image"] = "succeeded";
        }

        Assert.Equal(jobs, shipped.Jobs);
        var good = (await api.GetAsync("v1/services/web")).GetProperty("revision").GetInt64();
        Assert.True(good > first, $"web still on revision {first} after the good deploy");
        Assert.Equal($"web at revision {good}", shipped.Steps["deploy"].Last());
        await UntilOnlyAsync(api, good, "the good revision");
        await load.MoreAsync(20);

        // The broken change: the run fails at deploy, web is rolled back to the good revision.
        var broken = await berth.RunAsync("pipeline", "run", "ship-broken");
        Assert.True(broken.Code == 3, $"berth pipeline run ship-broken should fail (exit 3): {broken}");
        var failed = Show(await berth.RunAsync("pipeline", "show", "2", "-o", "json"));
        Assert.Equal(new Dictionary<string, string> { ["build"] = "succeeded", ["deploy"] = "failed" }, failed.Jobs);
        Assert.Matches($"^rollout of web revision [0-9]+ rolled-back: .*; the app stays on its previous revision$", failed.Steps["deploy"].Last());
        var rollout = await api.GetAsync("v1/services/web/rollout");
        Assert.Equal(("rolled-back", good), (rollout.GetProperty("state").GetString(), rollout.GetProperty("revision").GetInt64()));
        Assert.Equal(good, (await api.GetAsync("v1/services/web")).GetProperty("revision").GetInt64());
        await UntilOnlyAsync(api, good, "only the good revision after the rollback");

        await load.MoreAsync(20);
        var result = await load.StopAsync();
        Assert.False(result.Capped, $"the load hit its request bound before the end: {result}");
        Assert.True(result.Failed == 0, result.ToString());
        Assert.True(result.Bodies.Keys.All(b => b is "ok 1" or "ok 2"), $"only the first and the good version may answer: {result}");
        Assert.True(result.Bodies.ContainsKey("ok 2"), $"the good version never answered: {result}");
    }

    /// <summary>Polls until web runs exactly 2 replicas, all Ready, all of <paramref name="revision"/>.</summary>
    private static Task UntilOnlyAsync(ControlPlaneApi api, long revision, string what)
    {
        var last = "";
        return Poll.UntilAsync(async () =>
        {
            var replicas = (await api.GetAsync("v1/services/web/replicas")).EnumerateArray().ToList();
            last = string.Join(", ", replicas.Select(r => $"{r.GetProperty("id").GetString()}:{r.GetProperty("revision").GetInt64()}:{r.GetProperty("phase").GetString()}"));
            return replicas.Count == 2 && replicas.All(r => r.GetProperty("revision").GetInt64() == revision && r.GetProperty("phase").GetString() == "ready");
        }, Wait, $"{what} (revision {revision}, 2 Ready); replicas now {last}");
    }

    private static (Dictionary<string, string> Jobs, Dictionary<string, List<string>> Steps) Show(CliResult show)
    {
        Assert.True(show.Code == 0, $"berth pipeline show: {show}");
        var run = JsonDocument.Parse(show.Out).RootElement;
        var jobs = run.GetProperty("jobs").EnumerateArray().ToList();
        return (
            jobs.ToDictionary(j => j.GetProperty("key").GetString()!, j => j.GetProperty("status").GetString()!),
            jobs.ToDictionary(j => j.GetProperty("key").GetString()!, j => j.GetProperty("steps").EnumerateArray().Select(s => s.GetProperty("summary").GetString() ?? "").ToList()));
    }

    private async Task RemoveImageAsync()
    {
        try
        {
            using var docker = new Docker.DotNet.DockerClientConfiguration().CreateClient();
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await docker.Images.DeleteImageAsync(_image, new Docker.DotNet.Models.ImageDeleteParameters { Force = true }, cts.Token);
        }
        catch (Exception e) when (e is Docker.DotNet.DockerApiException or HttpRequestException or OperationCanceledException)
        {
            // Not built (the run failed before) or the engine is gone: nothing to remove.
        }
    }
}
