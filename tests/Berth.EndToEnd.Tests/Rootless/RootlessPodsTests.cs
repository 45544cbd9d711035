using Berth.EndToEnd.Tests.Pods;
using Berth.Testing;

namespace Berth.EndToEnd.Tests.Rootless;

/// <summary>Issue #18 §3: the two-tier Compose shape of issue #13 in rootless pods. berth runs as uid 65534; each pod is a
/// user namespace (mapping the user to itself) with its own network namespace, made by the replica's supervisor, and the
/// mesh, which cannot enter them, gets its sockets from the supervisor's helper (SCM_RIGHTS).</summary>
[Collection("rootless")]
[Trait("Category", "Rootless")]
public sealed class RootlessPodsTests
{
    [RootlessFact]
    public async Task Up_TwoTierShapeInRootlessPods_WebGetsApiByNameFromBothReplicasAndPodsAreIsolated()
    {
        using var user = new UnprivilegedBerth("pods");
        var web = Ports.Free();
        var web2 = Ports.Free();
        user.WriteSpec(PodScripts.TwoTierSpec("rootlesspods", web, web2));
        try
        {
            var up = await user.RunAsync("up", "-d");
            Assert.True(up.Code == 0, $"berth up -d as uid 65534: {up}");
            await Poll.UntilAsync(async () => (await user.ApiGetAsync("/v1/replicas")).EnumerateArray().Count(r => r.GetProperty("phase").GetString() == "ready") == 4,
                TimeSpan.FromSeconds(90), "4 ready replicas in rootless pods");
            var apis = (await user.ApiGetAsync("/v1/replicas")).EnumerateArray().Where(r => r.GetProperty("service").GetString() == "api")
                .Select(r => r.GetProperty("id").GetString()!).Order().ToList();
            using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };

            var seen = await PodScripts.ApisReachedByNameAsync(client, web, TimeSpan.FromSeconds(60),
                "web (uid 65534, port 80 of its pod) gets the api page by name from both api replicas");
            Assert.Equal(apis, seen);
            Assert.Matches("^web web2-[0-9a-f]{5} got: api api-[0-9a-f]{5}$", await client.GetStringAsync($"http://127.0.0.1:{web2}/"));
            Assert.Equal("refused: Connection refused", await client.GetStringAsync($"http://127.0.0.1:{web}/direct/8080"));

            // Each replica is the user's own process, in a user namespace of its own (not the host's).
            var hostUserNs = new FileInfo("/proc/self/ns/user").LinkTarget;
            foreach (var pid in (await user.ApiGetAsync("/v1/replicas")).EnumerateArray().Select(r => r.GetProperty("pid").GetInt32()))
            {
                Assert.NotEqual(hostUserNs, new FileInfo($"/proc/{pid}/ns/user").LinkTarget);
                Assert.Contains($"Uid:\t{UnprivilegedBerth.Uid}\t", File.ReadAllText($"/proc/{pid}/status"), StringComparison.Ordinal);
            }
        }
        finally
        {
            await user.RunAsync("down");
        }
    }
}
