using Berth.Runtime.Docker;
using Berth.Runtime.Tests.Docker;
using Berth.Testing;

namespace Berth.EndToEnd.Tests.Pods;

/// <summary>
/// The Compose file of issue #13 on the Docker driver, with a busybox image made offline: two replicas of a fixed-port
/// api (httpd on 8080), web calling it by name and publishing container port 80, web2 on container port 80 too. Each
/// container runs with NetworkMode none (its own loopback); api declares no port, so the mesh finds it listening.
/// </summary>
public sealed class ComposePodsOnDockerTests : IAsyncLifetime
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(120);
    private readonly string _dir = Directory.CreateTempSubdirectory("berth-pods-docker-").FullName;
    private readonly string _app = "pod" + Guid.NewGuid().ToString("N")[..8];
    private readonly BerthCli _berth;
    private readonly int _web = Ports.Free();
    private readonly int _web2 = Ports.Free();

    public ComposePodsOnDockerTests() => _berth = new BerthCli(_dir);

    public async Task InitializeAsync()
    {
        if (!Environments.DockerAvailable)
        {
            return;
        }

        using var driver = await DockerDriver.ConnectAsync(new DockerDriverOptions(), CancellationToken.None);
        await TestImages.EnsureAsync(driver);
        File.WriteAllText(Path.Combine(_dir, "compose.yaml"), $$"""
            name: {{_app}}
            services:
              api:                       # two replicas of a fixed-port image
                image: {{TestImages.Base}}
                command: ["sh", "-c", "mkdir -p /www && echo \"api $$BERTH_REPLICA\" > /www/index.html && exec httpd -f -p 8080 -h /www"]
                deploy: {replicas: 2}
              web:                       # calls the api by its service name, publishes container port 80
                image: {{TestImages.Base}}
                command: ["sh", "-c", "mkdir -p /w; (while true; do wget -q -O /w/t http://api:8080/ && mv /w/t /w/index.html; sleep 0.2; done) & exec httpd -f -p 80 -h /w"]
                ports: ["{{_web}}:80"]
              web2:                      # a second service on container port 80
                image: {{TestImages.Base}}
                command: ["sh", "-c", "mkdir -p /w && echo web2 > /w/index.html && exec httpd -f -p 80 -h /w"]
                ports: ["{{_web2}}:80"]
            """);
    }

    public async Task DisposeAsync()
    {
        if (!Environments.DockerAvailable)
        {
            return;
        }

        try
        {
            await _berth.DownAsync();
        }
        finally
        {
            Directory.Delete(_dir, recursive: true);
        }
    }

    [DockerFact]
    public async Task Up_IssueComposeFile_AllReadyWebGetsApiByNameFromBothReplicasWeb2Beside()
    {
        await _berth.UpDetachedAsync(ready: 4, Wait);
        var apis = (await _berth.PsAsync()).Where(r => r.GetProperty("service").GetString() == "api").Select(r => r.GetProperty("id").GetString()!).ToList();
        using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };

        var seen = new HashSet<string>();
        await Poll.UntilAsync(async () =>
        {
            var response = await client.GetAsync($"http://127.0.0.1:{_web}/");
            var body = (await response.Content.ReadAsStringAsync()).Trim();
            if (response.IsSuccessStatusCode && body.StartsWith("api ", StringComparison.Ordinal))
            {
                seen.Add(body["api ".Length..]);
            }

            return seen.Count == 2;
        }, Wait, "web serves the api page it fetched by name, from both api replicas");

        Assert.Equal(apis.Order(), seen.Order());
        Assert.Equal("web2", (await client.GetStringAsync($"http://127.0.0.1:{_web2}/")).Trim());
        Assert.Equal("none", Docker("inspect", "-f", "{{.HostConfig.NetworkMode}}", $"berth-{_app}-{apis[0]}").Trim());
    }

    [DockerFact]
    public async Task Apply_PublishedPortChangedEnvironment_RollsOutWithoutPortClash()
    {
        var compose = Path.Combine(_dir, "compose.yaml");
        string Spec(string greeting) => $$"""
            name: {{_app}}
            services:
              web:
                image: {{TestImages.Base}}
                command: ["sh", "-c", "mkdir -p /w && echo \"$$GREETING\" > /w/index.html && exec httpd -f -p 80 -h /w"]
                environment: {GREETING: {{greeting}}}
                ports: ["{{_web}}:80"]
            """;
        File.WriteAllText(compose, Spec("hello"));
        await _berth.UpDetachedAsync(ready: 1, Wait);
        using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        Assert.Equal("hello", (await client.GetStringAsync($"http://127.0.0.1:{_web}/")).Trim());
        await using var load = LoopbackLoad.Start(_web, new LoopbackLoadOptions { MaxRequests = 50_000, MaxTime = TimeSpan.FromMinutes(3) });

        File.WriteAllText(compose, Spec("changed"));
        await _berth.OkAsync("apply");

        // The new replica starts beside the old one, both on port 80 of their own pods; before pods it stayed Pending on
        // "port 80 is taken" and the rollout was rolled back after its deadline.
        await Poll.UntilAsync(async () => (await client.GetStringAsync($"http://127.0.0.1:{_web}/")).Trim() == "changed"
            && (await _berth.PsAsync()).Count(r => r.GetProperty("service").GetString() == "web") == 1, Wait, "the changed environment rolled out to the only web replica");
        var events = await _berth.EventsAsync();
        Assert.DoesNotContain(events, e => e.GetProperty("message").GetString()!.Contains("is taken", StringComparison.Ordinal));
        var result = await load.StopAsync();
        Assert.Equal(0, result.Failed);
        Assert.Equal(["changed", "hello"], result.Bodies.Keys.Select(b => b.Trim()).Order());
    }

    private static string Docker(params string[] args)
    {
        var info = new ProcessStartInfo("docker") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        using var p = Process.Start(info)!;
        var output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return output;
    }
}
