namespace Berth.EndToEnd.Tests.Pods;

/// <summary>
/// <c>egress: true</c>: a process pod gets a userspace network through slirp4netns (a tap device and a default route in the
/// pod, the helper a child of the replica's supervisor), stopped with the replica and on <c>berth down</c>; a pod that
/// cannot have one is told so. No traffic leaves loopback here: the machine has no outside network to reach, and the
/// network rule forbids trying (nothing is sent to the tap device's gateway or any other address).
/// </summary>
public sealed class PodEgressTests() : AppFolderTest("berth-pod-egress-")
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(120);
    private readonly string _name = "egress" + Guid.NewGuid().ToString("N")[..6];
    private readonly int _out = Ports.Free();
    private readonly int _plain = Ports.Free();

    [Fact]
    public async Task ProcessPodsAskingForEgress_Slirp4netnsGivesEachATapAndADefaultRoute_StoppedWithTheReplicaAndOnDown()
    {
        // CI installs it (.ci/setup-runtime.sh): a missing helper fails here rather than skipping what this test shows.
        Assert.True(PodEgress.Find() is not null, "slirp4netns is not on PATH: install it (apt-get install slirp4netns; .ci/setup-runtime.sh does)");
        App.WriteSpec($$"""
            name: {{_name}}
            services:
              out:
                run: [perl, -e, {{PodScripts.Yaml(PodScripts.Api)}}]
                network: isolated
                egress: true
                replicas: 2
                endpoints:
                  http: {port: {{_out}}, target_port: 8080}
              plain:
                run: [perl, -e, {{PodScripts.Yaml(PodScripts.Api)}}]
                network: isolated
                endpoints:
                  http: {port: {{_plain}}, target_port: 8080}
            """);
        var up = await App.Cli.OkAsync("up", "-d");
        Assert.DoesNotContain("has no egress", up.Out + up.Err, StringComparison.Ordinal);
        await Poll.UntilAsync(async () => await App.Cli.CountAsync("ready") == 3, Wait, "3 Ready replicas");

        var ps = await App.Cli.PsAsync();
        var outs = ps.Where(r => r.GetProperty("service").GetString() == "out").ToDictionary(r => r.GetProperty("id").GetString()!, r => r.GetProperty("pid").GetInt32());
        var plain = ps.Single(r => r.GetProperty("service").GetString() == "plain").GetProperty("pid").GetInt32();
        var host = ReadLink("/proc/self/ns/net");
        var helpers = new Dictionary<string, int>();
        foreach (var (id, pid) in outs)
        {
            Assert.NotEqual(host, ReadLink($"/proc/{pid}/ns/net"));
            // /proc/PID/net/route is the route table of PID's network namespace: the pod's.
            Assert.Contains(File.ReadAllLines($"/proc/{pid}/net/route"), l => l.StartsWith("tap0\t00000000\t", StringComparison.Ordinal));
            var supervisor = Supervisor(id);
            helpers[id] = Assert.Single(ChildrenNamed(supervisor, PodEgress.Program));
        }

        Assert.DoesNotContain(File.ReadAllLines($"/proc/{plain}/net/route"), l => l.StartsWith("tap0", StringComparison.Ordinal));
        Assert.Empty(ChildrenNamed(Supervisor(ps.Single(r => r.GetProperty("service").GetString() == "plain").GetProperty("id").GetString()!), PodEgress.Program));
        Assert.DoesNotContain(File.ReadAllLines("/proc/self/net/route"), l => l.StartsWith("tap0", StringComparison.Ordinal));
        // The pod's loopback and the mesh are untouched by the helper: the stable port still reaches both replicas' pods.
        using (var client = new HttpClient { Timeout = TimeSpan.FromSeconds(30) })
        {
            var seen = new HashSet<string>();
            await Poll.UntilAsync(async () =>
            {
                seen.Add((await client.GetStringAsync($"http://127.0.0.1:{_out}/"))["api ".Length..]);
                return seen.Count == 2;
            }, Wait, "the stable port answers from both egress pods");
            Assert.Equal(outs.Keys.Order(), seen.Order());
        }

        var ps2 = await App.Cli.OkAsync("ps");
        Assert.DoesNotContain("has no egress", ps2.Out + ps2.Err, StringComparison.Ordinal);

        await App.Cli.OkAsync("scale", "out=1");
        await Poll.UntilAsync(async () => (await App.Cli.PsAsync()).Count(r => r.GetProperty("service").GetString() == "out") == 1, Wait, "one out replica after 'berth scale out=1'");
        var kept = (await App.Cli.PsAsync()).Single(r => r.GetProperty("service").GetString() == "out").GetProperty("id").GetString()!;
        var stopped = outs.Keys.Single(id => id != kept);
        await Poll.UntilAsync(() => !Directory.Exists($"/proc/{helpers[stopped]}"), Wait, $"the stopped replica {stopped}'s slirp4netns ({helpers[stopped]}) gone");
        Assert.True(Directory.Exists($"/proc/{helpers[kept]}"), $"the kept replica {kept}'s slirp4netns ({helpers[kept]}) should still run");

        await App.Cli.OkAsync("down");
        await Poll.UntilAsync(() => !Directory.Exists($"/proc/{helpers[kept]}"), Wait, $"slirp4netns of {kept} ({helpers[kept]}) gone after 'berth down'");
    }

    [DockerFact]
    public async Task DockerPodAskingForEgress_UpAndPsSayItHasNone()
    {
        await TestImages.EnsureAsync();

        App.Write("compose.yaml", $$"""
            name: {{_name}}
            services:
              box:
                image: {{TestImages.Base}}
                command: ["sh", "-c", "exec httpd -f -p 8080 -h /"]
                x-berth: {egress: true}
            """);
        const string Said = "box has no egress: its pods hold only loopback (egress: true gives a userspace network to process pods only); " +
            "write network_mode: host (network: host) for a container that needs the outside world";

        var up = await App.Cli.OkAsync("up", "-d");
        Assert.Contains(Said, up.Out + up.Err, StringComparison.Ordinal);
        await Poll.UntilAsync(async () => await App.Cli.CountAsync("ready") == 1, Wait, "box Ready");
        var ps = await App.Cli.OkAsync("ps");
        Assert.Contains(Said, ps.Out + ps.Err, StringComparison.Ordinal);
    }

    private static string ReadLink(string path) => new FileInfo(path).LinkTarget ?? "";

    /// <summary>The supervisor pid the process driver recorded for a replica.</summary>
    private int Supervisor(string replica) =>
        int.Parse(File.ReadAllLines(Path.Combine(App.State, "replicas", replica, "pid")).Single(l => l.StartsWith("supervisor=", StringComparison.Ordinal))["supervisor=".Length..],
            System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Pids of the processes whose parent is <paramref name="parent"/> and whose name is <paramref name="comm"/>.</summary>
    private static List<int> ChildrenNamed(int parent, string comm)
    {
        var found = new List<int>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid))
            {
                continue;
            }

            try
            {
                var stat = File.ReadAllText(Path.Combine(dir, "stat"));
                var open = stat.IndexOf('(', StringComparison.Ordinal);
                var close = stat.LastIndexOf(')');
                var fields = stat[(close + 2)..].Split(' ');
                if (stat[(open + 1)..close] == comm && fields[1] == parent.ToString(System.Globalization.CultureInfo.InvariantCulture))
                {
                    found.Add(pid);
                }
            }
            catch (IOException)
            {
                // gone meanwhile
            }
        }

        return found;
    }
}
