using Xunit.Abstractions;

namespace Berth.EndToEnd.Tests.Pods;

/// <summary>
/// The two-tier Compose shape of issue #13 as process services with <c>network: isolated</c>, through the real
/// <c>berth</c> program: two api replicas on the same port 8080, web and web2 both on port 80, each in its own pod; web
/// calls api by name (its /etc/hosts → api's virtual address → the mesh inside web's pod → an api replica's pod).
/// </summary>
public sealed class ProcessPodsTests : AppFolderTest
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);
    private readonly int _web = Ports.Free();
    private readonly int _web2 = Ports.Free();
    private readonly int _api = Ports.Free();
    private readonly ITestOutputHelper _output;

    public ProcessPodsTests(ITestOutputHelper output)
        : base("berth-pods-")
    {
        _output = output;
        App.WriteSpec(PodScripts.TwoTierSpec($"pods{Guid.NewGuid().ToString("N")[..6]}", _web, _web2, retryResets: true, api: _api));
    }

    [Fact]
    public async Task Up_TwoTierShapeIsolated_WebGetsApiByNameFromBothReplicasAndWeb2ServesBeside()
    {
        await App.Cli.UpDetachedAsync(ready: 4);
        using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        var apis = (await App.Cli.PsAsync()).Where(r => r.GetProperty("service").GetString() == "api").Select(r => r.GetProperty("id").GetString()!).ToList();

        var seen = await PodScripts.ApisReachedByNameAsync(client, _web, Wait, "web gets the api page by name from both api replicas");
        Assert.Equal(apis.Order(), seen);
        Assert.Matches("^web web2-[0-9a-f]{5} got: api api-[0-9a-f]{5}$", await client.GetStringAsync($"http://127.0.0.1:{_web2}/"));
        Assert.Matches(@"^api=127\.77\.\d+\.\d+$", await client.GetStringAsync($"http://127.0.0.1:{_web}/name"));

        // Isolation: api listens on 8080 in its own pods; in web's pod nothing does, and the host has neither.
        Assert.Equal("refused: Connection refused", await client.GetStringAsync($"http://127.0.0.1:{_web}/direct/8080"));
    }

    [Fact]
    public async Task KillCallee_UnderLoadThroughTheServiceName_NoFailedGet()
    {
        await App.Cli.UpDetachedAsync(ready: 4);
        await using var load = LoopbackLoad.Start(_web, new LoopbackLoadOptions { MaxRequests = 20_000, MaxTime = TimeSpan.FromMinutes(2) });
        await load.MoreAsync(200);
        var victim = (await App.Cli.PsAsync()).First(r => r.GetProperty("service").GetString() == "api");

        Process.GetProcessById(victim.GetProperty("pid").GetInt32()).Kill();
        await Poll.UntilAsync(async () => (await App.Cli.PsAsync()).Any(r => r.GetProperty("id").GetString() == victim.GetProperty("id").GetString()
            && r.GetProperty("restarts").GetInt32() > 0 && r.GetProperty("phase").GetString() == "ready"), Wait, "the killed api replica restarted and is Ready again");
        await load.MoreAsync(200);
        var result = await load.StopAsync();

        Assert.False(result.Capped, result.ToString());
        Assert.Equal(0, result.Failed);
        Assert.All(result.Bodies.Keys, b => Assert.Matches("^web web-[0-9a-f]{5} got: api api-[0-9a-f]{5}$", b));
    }

    [Fact]
    public async Task ControlPlaneKilled9_UnderLoadWithPods_NoRequestFailsWhileItIsGoneOrAfterItReturns()
    {
        await App.Cli.UpDetachedAsync(ready: 4);
        var apis = await ReplicasAsync("api");
        var dataPlane = App.Cli.DataPlanePid()!.Value;
        // Two loads: into api's pods through its stable port (the mesh's sockets made in each pod), and from inside web's pod
        // by api's name (web's /etc/hosts → api's virtual address → the listener the data plane holds in web's pod).
        await using var inbound = LoopbackLoad.Start(_api, new LoopbackLoadOptions { MaxRequests = 100_000, MaxTime = TimeSpan.FromMinutes(5) });
        await using var byName = LoopbackLoad.Start(_web, new LoopbackLoadOptions { MaxRequests = 100_000, MaxTime = TimeSpan.FromMinutes(5) });
        await Task.WhenAll(inbound.MoreAsync(100), byName.MoreAsync(100));

        await App.Cli.KillControlPlaneAsync();
        await Task.WhenAll(inbound.MoreAsync(300), byName.MoreAsync(300));

        // The next control plane adopts the replicas and finds each pod's namespace again (from the recorded supervisor pid,
        // checked by inode): its first snapshot must keep every upstream and outbound listener in its pod.
        await App.Cli.UpDetachedAsync(ready: 4);
        Assert.Equal(apis, await ReplicasAsync("api"));
        await Task.WhenAll(inbound.MoreAsync(300), byName.MoreAsync(300));
        await App.Cli.OkAsync("scale", "api=3");
        await Poll.UntilAsync(async () => await App.Cli.CountAsync("ready") == 5, Wait, "5 Ready replicas after 'berth scale api=3'");
        var third = (await ReplicasAsync("api")).Except(apis).Single();
        await Poll.UntilAsync(() => Task.FromResult(inbound.Answered($"api {third}")), Wait, $"the stable port reaches {third}, started by the new control plane");
        await Task.WhenAll(inbound.MoreAsync(200), byName.MoreAsync(200));
        var (a, b) = (await inbound.StopAsync(), await byName.StopAsync());

        _output.WriteLine($"control plane kill -9 with pods, into api's pods: {a}");
        _output.WriteLine($"control plane kill -9 with pods, web → api by name: {b}");
        a.AssertNoneFailedUncapped();
        b.AssertNoneFailedUncapped();
        Assert.All(b.Bodies.Keys, body => Assert.Matches("^web web-[0-9a-f]{5} got: api api-[0-9a-f]{5}$", body));
        Assert.Equal(dataPlane, App.Cli.DataPlanePid());
    }

    [Fact]
    public async Task DataPlaneKilled9_WithPods_StableAndNamedTrafficResumesWithinAMeasuredGap()
    {
        await App.Cli.UpDetachedAsync(ready: 4);
        var standbyFile = Path.Combine(App.Cli.State, "data-plane-standby.json");
        await Poll.UntilAsync(() => File.Exists(standbyFile) && File.ReadAllText(Path.Combine(App.Cli.State, "control-plane.log")).Contains("Standby data plane", StringComparison.Ordinal),
            Wait, "the standby data plane started and connected");
        var old = App.Cli.DataPlanePid()!.Value;
        using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false, ConnectTimeout = TimeSpan.FromSeconds(1), PooledConnectionLifetime = TimeSpan.Zero })
        {
            Timeout = TimeSpan.FromSeconds(5),
        };
        Assert.StartsWith("api api-", await http.GetStringAsync($"http://127.0.0.1:{_api}/"), StringComparison.Ordinal);
        Assert.StartsWith("web web-", await http.GetStringAsync($"http://127.0.0.1:{_web}/"), StringComparison.Ordinal);

        Process.GetProcessById(old).Kill();
        var clock = Stopwatch.StartNew();
        var inbound = await FirstAnsweredAsync(http, _api, "^api api-[0-9a-f]{5}$", clock);
        var byName = await FirstAnsweredAsync(http, _web, "^web web-[0-9a-f]{5} got: api api-[0-9a-f]{5}$", clock);
        _output.WriteLine($"data plane kill -9 with pods: into api's pods first answered {inbound.TotalMilliseconds:0} ms after the kill, " +
            $"web → api by name {byName.TotalMilliseconds:0} ms after it");
        await Poll.UntilAsync(() => App.Cli.DataPlanePid() is { } now && now != old, TimeSpan.FromSeconds(30), "data-plane.json naming the data plane that replaced the killed one");

        await using var load = LoopbackLoad.Start(_web, new LoopbackLoadOptions { MaxRequests = 10_000, MaxTime = TimeSpan.FromMinutes(2) });
        await load.MoreAsync(200);
        var result = await load.StopAsync();
        result.AssertNoneFailedUncapped();
        Assert.All(result.Bodies.Keys, body => Assert.Matches("^web web-[0-9a-f]{5} got: api api-[0-9a-f]{5}$", body));
    }

    [Fact]
    public async Task Upgrade_WithPods_ListenersInThePodsAndOnTheHostPassedToTheNewDataPlane_NoRequestFails()
    {
        // The first control plane and its data planes pose as an older Berth; the next one replaces the data plane.
        App.Cli.Environment["BERTH_DATA_PLANE_BUILD"] = "older";
        await App.Cli.UpDetachedAsync(ready: 4);
        var old = App.Cli.DataPlanePid()!.Value;
        // Fresh connections: each request into api's stable port is a connect on the host, and each call web makes by name is a
        // connect to the listener the data plane holds in web's pod; a listener closed for any moment refuses some.
        var fresh = new LoopbackLoadOptions { FreshConnections = true, MaxRequests = 100_000, MaxTime = TimeSpan.FromMinutes(5) };
        await using var inbound = LoopbackLoad.Start(_api, fresh);
        await using var byName = LoopbackLoad.Start(_web, fresh);
        await Task.WhenAll(inbound.MoreAsync(100), byName.MoreAsync(100));
        await App.Cli.KillControlPlaneAsync("the older control plane");

        App.Cli.Environment.Remove("BERTH_DATA_PLANE_BUILD");
        await App.Cli.UpDetachedAsync(ready: 4);
        await Poll.UntilAsync(() => !Directory.Exists($"/proc/{old}") && App.Cli.DataPlanePid() is { } now && now != old, Wait, "the older data plane replaced by one of this build");
        await Task.WhenAll(inbound.MoreAsync(300), byName.MoreAsync(300));
        var (a, b) = (await inbound.StopAsync(), await byName.StopAsync());

        var log = File.ReadAllText(Path.Combine(App.Cli.State, "data-plane.log"));
        var took = System.Text.RegularExpressions.Regex.Match(log, $@"Took [0-9]+ listening sockets over from data plane {old} in [0-9.]+ ms");
        _output.WriteLine($"upgrade with pods, into api's pods: {a}; web → api by name: {b}; {took.Value}");
        a.AssertNoneFailedUncapped();
        b.AssertNoneFailedUncapped();
        Assert.All(b.Bodies.Keys, body => Assert.Matches("^web web-[0-9a-f]{5} got: api api-[0-9a-f]{5}$", body));
        Assert.True(took.Success, $"the new data plane should have taken the old one's listening sockets over:\n{log}");
    }

    /// <summary>GETs one at a time (bounded: 60 s or 100,000 tries) until the port answers a body matching
    /// <paramref name="pattern"/>; returns the time on <paramref name="clock"/> then.</summary>
    private static async Task<TimeSpan> FirstAnsweredAsync(HttpClient http, int port, string pattern, Stopwatch clock)
    {
        string? last = null;
        for (var tries = 0; clock.Elapsed < TimeSpan.FromSeconds(60) && tries < 100_000; tries++)
        {
            try
            {
                var body = await http.GetStringAsync($"http://127.0.0.1:{port}/");
                if (System.Text.RegularExpressions.Regex.IsMatch(body, pattern))
                {
                    return clock.Elapsed;
                }

                last = body;
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
            {
                last = e.Message;
            }

            await Task.Delay(1);
        }

        throw new Xunit.Sdk.XunitException($"port {port} answered nothing matching {pattern} within 60 s of the data plane's SIGKILL (last: {last})");
    }

    private async Task<List<string>> ReplicasAsync(string service) =>
        [.. (await App.Cli.PsAsync()).Where(r => r.GetProperty("service").GetString() == service).Select(r => r.GetProperty("id").GetString()!).Order(StringComparer.Ordinal)];
}
