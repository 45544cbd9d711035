using Berth.Runtime.Tests.Docker;

namespace Berth.Chaos.Tests;

/// <summary>A scenario that starts its own dockerd (root, and the dockerd binary): skips without them, fails in CI
/// (BERTH_REQUIRE_DOCKER=1).</summary>
public sealed class OwnDockerdTheoryAttribute : TheoryAttribute
{
    public OwnDockerdTheoryAttribute()
    {
        var why = !Berth.Runtime.Capabilities.HostUser.IsRoot ? "starting a dockerd of the test's own needs root (CI runs as root)"
            : !File.Exists("/usr/sbin/dockerd") && !File.Exists("/usr/bin/dockerd") ? "no dockerd binary (.ci/setup-docker.sh installs docker.io)"
            : null;
        if (why is not null && !Environments.Required("BERTH_REQUIRE_DOCKER"))
        {
            Skip = why;
        }
    }
}

/// <summary>
/// Issue #14's chaos suite: <c>kill -9</c> of the Docker engine under a Docker app, with the test's OWN dockerd (its own
/// socket, data root and exec root; the machine's engine is never touched), under paced loopback load on host networking.
/// While the engine is gone the containers keep serving (containerd and the shims outlive dockerd), the API answers and
/// says the engine is unreachable; once it is back, Berth has its replicas running again: the same containers with live
/// restore, new ones without it (dockerd stops what it finds running at start), and no event is lost.
/// </summary>
[Collection("chaos")]
[Trait("Category", "Chaos")]
public sealed class DockerdChaosTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(120);

    [OwnDockerdTheory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Kill9_Dockerd_ApiSaysEngineGoneReplicasBackAfterRestartNothingLost(bool liveRestore)
    {
        await using var engine = await OwnDockerd.StartAsync(liveRestore);
        await TestImages.EnsureBaseAsync(new Uri(engine.Host));
        await using var app = new ChaosApp(liveRestore ? "dockerd-live" : "dockerd");
        app.Cli.Environment["DOCKER_HOST"] = engine.Host;
        app.WriteSpec($$"""
            name: {{app.Name}}
            services:
              web:
                image: {{TestImages.Base}}
                network: host
                run: [sh, -c, "mkdir -p /w && echo ok > /w/index.html && exec httpd -f -p 127.0.0.1:$$PORT -h /w"]
                replicas: 2
                endpoints:
                  http: {port: {{app.Port}}}
                probes:
                  readiness: {http: /, period: 500ms}
                stop_grace_period: 1s
                mesh:
                  retries: {on: [connect-failure, reset, 502, 503, 504]}
            """);
        await app.UpAsync(2);
        using var api = app.Api();
        var before = await ContainersAsync(app);
        var replicas = (await app.Cli.PsAsync()).Select(r => r.GetProperty("id").GetString()!).ToList();
        var events = await app.EventIdsAsync();
        // Longer than the other scenarios' 2 minutes: a dockerd start on a loaded 2-core machine may take a while.
        await using var load = app.Load(minutes: 5);
        await load.MoreAsync(200);

        await engine.KillAsync();
        var clock = Stopwatch.StartNew();
        await load.MoreAsync(200);
        var gone = $"the engine at {engine.Host} (from DOCKER_HOST) stopped answering at ";
        await Poll.UntilAsync(async () =>
        {
            var (status, _, body) = await api.SendAsync(HttpMethod.Get, "/v1/app");
            Assert.True(status == 200, $"GET /v1/app while the engine is gone: {status} {body}");
            return body.Contains(gone, StringComparison.Ordinal);
        }, Deadline, $"GET /v1/app's docker capability saying '{gone}…'");
        await Poll.UntilAsync(async () => (await app.Cli.PsAsync()).Count(r => r.GetProperty("phase").GetString() == "ready"
                && r.TryGetProperty("reason", out var why) && why.GetString()!.StartsWith("runtime not answering since ", StringComparison.Ordinal)) == 2,
            Deadline, "both replicas still Ready in ps, each saying its runtime does not answer");
        await load.MoreAsync(200);

        await engine.StartAgainAsync();
        await Poll.UntilAsync(async () => await app.ReadyAsync() == 2 && (await ContainersAsync(app)).Count == 2
                && !(await app.Cli.PsAsync()).Any(r => r.TryGetProperty("reason", out var why) && why.GetString()!.StartsWith("runtime not answering", StringComparison.Ordinal)),
            Deadline, $"2 ready containers again after dockerd came back, none saying its runtime does not answer; dockerd log:\n{engine.Log}");
        var recovery = clock.Elapsed;
        await load.MoreAsync(200);
        var result = await load.StopAsync();

        var after = await ContainersAsync(app);
        // Each replica says once that its runtime stopped answering, and once that it answers again, in that order.
        var transitions = (await app.Cli.EventsAsync()).Where(e => e.GetProperty("type").GetString() is "runtime-unreachable" or "runtime-reachable").ToList();
        Assert.All(replicas, id => Assert.Equal(["runtime-unreachable", "runtime-reachable"],
            transitions.Where(e => e.GetProperty("replica").GetString() == id).Select(e => e.GetProperty("type").GetString())));
        var lost = events.Except(await app.EventIdsAsync()).Count();
        new ChaosResult($"kill -9 of dockerd (the test's own; live restore {(liveRestore ? "on" : "off")}), restarted", result, recovery,
            $"events {lost}; containers {(after.Order().SequenceEqual(before.Order()) ? "the same (adopted)" : "replaced")}").Report(output);
        Assert.Equal(0, lost);
        if (liveRestore)
        {
            Assert.Equal(before.Order(), after.Order());
            result.AssertNoneFailedUncapped();
        }
        else
        {
            Assert.Empty(before.Intersect(after));
        }
    }

    /// <summary>The running containers' ids, by <c>berth ps</c>.</summary>
    private static async Task<List<string>> ContainersAsync(ChaosApp app) =>
        [.. (await app.Cli.PsAsync()).Where(r => r.GetProperty("phase").GetString() is "running" or "ready" && r.TryGetProperty("containerId", out _))
            .Select(r => r.GetProperty("containerId").GetString()!)];
}
