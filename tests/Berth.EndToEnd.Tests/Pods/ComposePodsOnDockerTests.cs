using Berth.Mesh.DataPlane;

namespace Berth.EndToEnd.Tests.Pods;

/// <summary>
/// The Compose file of issue #13 on the Docker driver, with a busybox image made offline: two replicas of a fixed-port
/// api (httpd on 8080), web calling it by name and publishing container port 80, web2 on container port 80 too. Each
/// container runs with NetworkMode none (its own loopback); api declares no port, so the mesh finds it listening.
/// </summary>
public sealed class ComposePodsOnDockerTests : IAsyncLifetime
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(120);
    private readonly DockerApp _docker = new("pod");
    private readonly int _web = Ports.Free();
    private readonly int _web2 = Ports.Free();

    public async Task InitializeAsync()
    {
        if (!await _docker.PrepareAsync())
        {
            return;
        }

        File.WriteAllText(Path.Combine(_docker.Dir, "compose.yaml"), $$"""
            name: {{_docker.Name}}
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

    public Task DisposeAsync() => _docker.DisposeAsync().AsTask();

    [DockerFact]
    public async Task Up_IssueComposeFile_AllReadyWebGetsApiByNameFromBothReplicasWeb2Beside()
    {
        await _docker.Berth.UpDetachedAsync(ready: 4, Wait);
        var apis = (await _docker.Berth.PsAsync()).Where(r => r.GetProperty("service").GetString() == "api").Select(r => r.GetProperty("id").GetString()!).ToList();
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
        Assert.Equal("none", Docker("inspect", "-f", "{{.HostConfig.NetworkMode}}", $"berth-{_docker.Name}-{apis[0]}").Trim());
    }

    [DockerFact]
    public async Task Apply_PublishedPortChangedEnvironment_RollsOutWithoutPortClash()
    {
        var compose = Path.Combine(_docker.Dir, "compose.yaml");
        string Spec(string greeting) => $$"""
            name: {{_docker.Name}}
            services:
              web:
                image: {{TestImages.Base}}
                command: ["sh", "-c", "mkdir -p /w && echo \"$$GREETING\" > /w/index.html && exec httpd -f -p 80 -h /w"]
                environment: {GREETING: {{greeting}}}
                ports: ["{{_web}}:80"]
            """;
        File.WriteAllText(compose, Spec("hello"));
        await _docker.Berth.UpDetachedAsync(ready: 1, Wait);
        using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        Assert.Equal("hello", (await client.GetStringAsync($"http://127.0.0.1:{_web}/")).Trim());
        await using var load = LoopbackLoad.Start(_web, new LoopbackLoadOptions { MaxRequests = 50_000, MaxTime = TimeSpan.FromMinutes(3) });

        File.WriteAllText(compose, Spec("changed"));
        await _docker.Berth.OkAsync("apply");

        // The new replica starts beside the old one, both on port 80 of their own pods; before pods it stayed Pending on
        // "port 80 is taken" and the rollout was rolled back after its deadline.
        await Poll.UntilAsync(async () => (await client.GetStringAsync($"http://127.0.0.1:{_web}/")).Trim() == "changed"
            && (await _docker.Berth.PsAsync()).Count(r => r.GetProperty("service").GetString() == "web") == 1, Wait, "the changed environment rolled out to the only web replica");
        var events = await _docker.Berth.EventsAsync();
        Assert.DoesNotContain(events, e => e.GetProperty("message").GetString()!.Contains("is taken", StringComparison.Ordinal));
        var result = await load.StopAsync();
        Assert.Equal(0, result.Failed);
        Assert.Equal(["changed", "hello"], result.Bodies.Keys.Select(b => b.Trim()).Order());
    }

    [DockerFact]
    public Task ControlPlaneKilled9_UnderLoadWithPods_NoRequestFailsWhileItIsGoneOrAfterItReturns() => ControlPlaneKilled9UnderLoadAsync();

    /// <summary>The same with inline socket completions in the data plane (set by the user for <c>berth up</c>): with them
    /// this test failed 3 of 3 in round 4 (docs/architecture.md, "Inline socket completions, round 9").</summary>
    [DockerFact]
    public async Task ControlPlaneKilled9_UnderLoadWithPodsAndInlineSocketCompletions_NoRequestFailsWhileItIsGoneOrAfterItReturns()
    {
        _docker.Berth.Environment[DataPlaneRuntime.InlineCompletionsVariable] = "1";
        await ControlPlaneKilled9UnderLoadAsync();
    }

    private async Task ControlPlaneKilled9UnderLoadAsync()
    {
        WriteCgiCompose();
        await _docker.Berth.UpDetachedAsync(ready: 4, Wait);
        // The data plane runs with what berth up was given (a DOTNET_ variable) or else its own default.
        const string Inline = DataPlaneRuntime.InlineCompletionsVariable;
        var inline = _docker.Berth.Environment.GetValueOrDefault(Inline) ?? Environment.GetEnvironmentVariable(Inline)
            ?? DataPlaneRuntime.Environment.FirstOrDefault(v => v.Key == Inline).Value;
        string[] expected = inline is null ? [] : [$"{Inline}={inline}"];
        Assert.Equal(expected, File.ReadAllText($"/proc/{_docker.Berth.DataPlanePid()}/environ").Split('\0').Where(v => v.StartsWith(Inline + "=", StringComparison.Ordinal)));
        var ids = (await _docker.Berth.PsAsync()).Select(r => r.GetProperty("id").GetString()!).Order(StringComparer.Ordinal).ToList();
        var dataPlane = _docker.Berth.DataPlanePid()!.Value;
        using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        // The pod's outbound listeners open on the route publication after web is Running: wait for the first answer by name.
        await Poll.UntilAsync(async () => (await client.GetStringAsync($"http://127.0.0.1:{_web}/cgi-bin/api")).StartsWith("api ", StringComparison.Ordinal),
            Wait, "web answers with api's page fetched by name");
        await using var byName = LoopbackLoad.Start(new Uri($"http://127.0.0.1:{_web}/cgi-bin/api"), new LoopbackLoadOptions { MaxRequests = 100_000, MaxTime = TimeSpan.FromMinutes(5) });
        await using var inbound = LoopbackLoad.Start(_web2, new LoopbackLoadOptions { MaxRequests = 100_000, MaxTime = TimeSpan.FromMinutes(5) });
        await Task.WhenAll(inbound.MoreAsync(100), byName.MoreAsync(50));

        await _docker.Berth.KillControlPlaneAsync();
        await Task.WhenAll(inbound.MoreAsync(200), byName.MoreAsync(100));

        // The next control plane adopts the containers and finds each pod's namespace again from the engine (the main pid of
        // each running NetworkMode-none container): its first snapshot must keep every upstream and outbound listener in its pod.
        await _docker.Berth.UpDetachedAsync(ready: 4, Wait);
        Assert.Equal(ids, (await _docker.Berth.PsAsync()).Select(r => r.GetProperty("id").GetString()!).Order(StringComparer.Ordinal));
        await Task.WhenAll(inbound.MoreAsync(200), byName.MoreAsync(100));
        var (a, b) = (await inbound.StopAsync(), await byName.StopAsync());

        a.AssertNoneFailedUncapped();
        b.AssertNoneFailedUncapped();
        Assert.Equal(["web2\n"], a.Bodies.Keys);
        Assert.All(b.Bodies.Keys, body => Assert.Matches("^api api-[0-9a-f]{5}\n$", body));
        Assert.Equal(dataPlane, _docker.Berth.DataPlanePid());
    }

    [DockerFact]
    public async Task Upgrade_WithDockerPods_ListeningSocketsPassedToTheNewDataPlane_NoRequestFails()
    {
        WriteCgiCompose();
        // The first control plane and its data planes pose as an older Berth; the next one replaces the data plane and is
        // passed its listening sockets, those inside web's pod (api's virtual address) among them.
        _docker.Berth.Environment["BERTH_DATA_PLANE_BUILD"] = "older";
        await _docker.Berth.UpDetachedAsync(ready: 4, Wait);
        var old = _docker.Berth.DataPlanePid()!.Value;
        using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        await Poll.UntilAsync(async () => (await client.GetStringAsync($"http://127.0.0.1:{_web}/cgi-bin/api")).StartsWith("api ", StringComparison.Ordinal),
            Wait, "web answers with api's page fetched by name");
        await using var byName = LoopbackLoad.Start(new Uri($"http://127.0.0.1:{_web}/cgi-bin/api"), new LoopbackLoadOptions { FreshConnections = true, MaxRequests = 100_000, MaxTime = TimeSpan.FromMinutes(5) });
        await using var inbound = LoopbackLoad.Start(_web2, new LoopbackLoadOptions { FreshConnections = true, MaxRequests = 100_000, MaxTime = TimeSpan.FromMinutes(5) });
        await Task.WhenAll(inbound.MoreAsync(100), byName.MoreAsync(50));
        await _docker.Berth.KillControlPlaneAsync("the older control plane");

        _docker.Berth.Environment.Remove("BERTH_DATA_PLANE_BUILD");
        await _docker.Berth.UpDetachedAsync(ready: 4, Wait);
        await Poll.UntilAsync(() => !Directory.Exists($"/proc/{old}") && _docker.Berth.DataPlanePid() is { } now && now != old, Wait, "the older data plane replaced by one of this build");
        await Task.WhenAll(inbound.MoreAsync(200), byName.MoreAsync(100));
        var (a, b) = (await inbound.StopAsync(), await byName.StopAsync());

        var log = File.ReadAllText(Path.Combine(_docker.Berth.State, "data-plane.log"));
        Assert.Matches($@"Took [0-9]+ listening sockets over from data plane {old} in [0-9.]+ ms", log);
        a.AssertNoneFailedUncapped();
        b.AssertNoneFailedUncapped();
        Assert.Equal(["web2\n"], a.Bodies.Keys);
        Assert.All(b.Bodies.Keys, body => Assert.Matches("^api api-[0-9a-f]{5}\n$", body));
    }

    [DockerFact]
    public async Task Up_ExtraHostsHostGateway_ReplicaReachesAServiceOnTheHostsLoopbackByHostDockerInternal()
    {
        // A service on the host's loopback only (as a developer's database would be), reached from a container with no network
        // but loopback through the name Compose gives the host.
        var hostPort = Ports.Free();
        var info = new ProcessStartInfo(TestHttpServer.Command[0]) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in TestHttpServer.Command.Skip(1))
        {
            info.ArgumentList.Add(a);
        }

        info.Environment["PORT"] = $"{hostPort}";
        info.Environment["V"] = "from the host";
        using var hostService = Process.Start(info)!;
        try
        {
            File.WriteAllText(Path.Combine(_docker.Dir, "compose.yaml"), $$"""
                name: {{_docker.Name}}
                services:
                  web:
                    image: {{TestImages.Base}}
                    extra_hosts: ["host.docker.internal:host-gateway"]
                    command: ["sh", "-c", "mkdir -p /w/cgi-bin && printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\nwget -q -O - http://host.docker.internal:{{hostPort}}/ || echo failed\\n' > /w/cgi-bin/host && chmod +x /w/cgi-bin/host && exec httpd -f -p 80 -h /w"]
                    ports: ["{{_web}}:80"]
                  api:                   # no ports: the mesh learns them from its pod
                    image: {{TestImages.Base}}
                    extra_hosts: ["host.docker.internal:host-gateway"]
                    command: ["sh", "-c", "exec httpd -f -p 8080 -h /"]
                """);
            await _docker.Berth.UpDetachedAsync(ready: 2, Wait);
            using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
            string? body = null;
            await Poll.UntilAsync(async () => (body = await client.GetStringAsync($"http://127.0.0.1:{_web}/cgi-bin/host")) == "ok from the host", Wait,
                "web reaches the host's loopback service through host.docker.internal");
            // The data plane's own sockets in api's pods (the host-gateway mirrors, the virtual-address listener for web) are not
            // taken for api's ports: only httpd's 8080 is.
            await Poll.UntilAsync(() => Task.FromResult(File.ReadAllText(Path.Combine(_docker.Berth.State, "data-plane-routes.json")).Contains("tcp-8080", StringComparison.Ordinal)),
                Wait, "api's port 8080 learnt from its pod");
            using (var applied = JsonDocument.Parse(File.ReadAllText(Path.Combine(_docker.Berth.State, "data-plane-routes.json"))))
            {
                Assert.Equal(["api.tcp-8080", "web.tcp"], applied.RootElement.GetProperty("routes").EnumerateArray()
                    .Select(r => r.GetProperty("service").GetString() + "." + r.GetProperty("endpoint").GetProperty("name").GetString()).Order(StringComparer.Ordinal));
            }


            Assert.Equal("none", Docker("inspect", "-f", "{{.HostConfig.NetworkMode}}", $"berth-{_docker.Name}-{(await _docker.Berth.PsAsync()).First(r => r.GetProperty("service").GetString() == "web").GetProperty("id").GetString()}").Trim());
            var app = await _docker.Berth.OkAsync("ps");
            Assert.Contains("web has no internet egress", app.Out + app.Err, StringComparison.Ordinal);
        }
        finally
        {
            hostService.Kill();
        }
    }

    private static string Docker(params string[] args) => DockerApp.Docker(args).Out;

    /// <summary>web answers each GET of /cgi-bin/api by fetching http://api:8080/ by name at that moment (busybox httpd CGI), so
    /// every request of a load there goes into web's pod and from there through the listener the data plane holds on api's
    /// virtual address; web2's published port is the plain inbound path into a pod.</summary>
    private void WriteCgiCompose() =>
        File.WriteAllText(Path.Combine(_docker.Dir, "compose.yaml"), $$"""
            name: {{_docker.Name}}
            services:
              api:
                image: {{TestImages.Base}}
                command: ["sh", "-c", "mkdir -p /www && echo \"api $$BERTH_REPLICA\" > /www/index.html && exec httpd -f -p 8080 -h /www"]
                deploy: {replicas: 2}
              web:
                image: {{TestImages.Base}}
                command: ["sh", "-c", "mkdir -p /w/cgi-bin && printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\nwget -q -O - http://api:8080/ || echo failed\\n' > /w/cgi-bin/api && chmod +x /w/cgi-bin/api && exec httpd -f -p 80 -h /w"]
                ports: ["{{_web}}:80"]
              web2:
                image: {{TestImages.Base}}
                command: ["sh", "-c", "mkdir -p /w && echo web2 > /w/index.html && exec httpd -f -p 80 -h /w"]
                ports: ["{{_web2}}:80"]
            """);
}
