using Berth.Testing;

namespace Berth.EndToEnd.Tests.Pods;

/// <summary>
/// The two-tier Compose shape of issue #13 as process services with <c>network: isolated</c>, through the real
/// <c>berth</c> program: two api replicas on the same port 8080, web and web2 both on port 80, each in its own pod; web
/// calls api by name (its /etc/hosts → api's virtual address → the mesh inside web's pod → an api replica's pod).
/// </summary>
public sealed class ProcessPodsTests : IAsyncDisposable
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);
    private readonly AppFolder _app = new("berth-pods-");
    private readonly int _web = Ports.Free();
    private readonly int _web2 = Ports.Free();

    public ProcessPodsTests() => _app.WriteSpec(PodScripts.TwoTierSpec($"pods{Guid.NewGuid().ToString("N")[..6]}", _web, _web2, retryResets: true));

    public ValueTask DisposeAsync() => _app.DisposeAsync();

    [Fact]
    public async Task Up_TwoTierShapeIsolated_WebGetsApiByNameFromBothReplicasAndWeb2ServesBeside()
    {
        await _app.Cli.UpDetachedAsync(ready: 4);
        using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        var apis = (await _app.Cli.PsAsync()).Where(r => r.GetProperty("service").GetString() == "api").Select(r => r.GetProperty("id").GetString()!).ToList();

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
        await _app.Cli.UpDetachedAsync(ready: 4);
        await using var load = LoopbackLoad.Start(_web, new LoopbackLoadOptions { MaxRequests = 20_000, MaxTime = TimeSpan.FromMinutes(2) });
        await load.MoreAsync(200);
        var victim = (await _app.Cli.PsAsync()).First(r => r.GetProperty("service").GetString() == "api");

        Process.GetProcessById(victim.GetProperty("pid").GetInt32()).Kill();
        await Poll.UntilAsync(async () => (await _app.Cli.PsAsync()).Any(r => r.GetProperty("id").GetString() == victim.GetProperty("id").GetString()
            && r.GetProperty("restarts").GetInt32() > 0 && r.GetProperty("phase").GetString() == "ready"), Wait, "the killed api replica restarted and is Ready again");
        await load.MoreAsync(200);
        var result = await load.StopAsync();

        Assert.False(result.Capped, result.ToString());
        Assert.Equal(0, result.Failed);
        Assert.All(result.Bodies.Keys, b => Assert.Matches("^web web-[0-9a-f]{5} got: api api-[0-9a-f]{5}$", b));
    }
}
