
namespace Berth.EndToEnd.Tests;

/// <summary>The README's main path, through the real <c>berth</c> program as a newcomer runs it: <c>berth up -f
/// samples/shop/berth.yaml</c> in the foreground (a copy of the sample, as OS processes, on the sample's own ports), an
/// order through :7200, a read through :7100, <c>berth ps</c>, then Ctrl-C — after which no process, cgroup or listening
/// port of the app is left.</summary>
[Collection(RealProcesses.Name)]
public sealed class ReadmeMainPathTests : IDisposable
{
    private static readonly int[] SamplePorts = [7100, 7200, 7300, 7400];
    private readonly string _dir = Directory.CreateTempSubdirectory("berth-readme-").FullName;

    public ReadmeMainPathTests() => Repository.CopySample("samples/shop", Path.Combine(_dir, "samples", "shop"));

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task UpForeground_ShopSample_OrderThroughApiReadThroughFrontendPsThenCtrlCLeavesNothingBehind()
    {
        var busy = SamplePorts.Where(Listening).ToList();
        Assert.True(busy.Count == 0, $"the sample's ports {string.Join(", ", busy)} are already in use on this machine; stop what listens there");
        const string spec = "samples/shop/berth.yaml";
        // Empty groups an earlier, killed run of an app named 'shop' left on this machine are not this run's to answer for.
        var cgroupsBefore = AppCgroups().ToHashSet(StringComparer.Ordinal);
        var cli = new BerthCli(_dir);
        List<JsonElement> replicas;
        List<string> cgroupsDuringRun;
        int apiPort;
        await using (var up = cli.Start("up", "-f", spec))
        {
            // Builds the sample with dotnet first: generous on a busy machine.
            await Poll.UntilAsync(() => up.HasExited || up.ErrLines.Any(l => l.Contains("'shop' is up: 6/6 replicas ready", StringComparison.Ordinal)), TimeSpan.FromMinutes(5),
                $"'berth up -f {spec}' to report the shop up; stderr so far:\n{up.Err}");
            Assert.False(up.HasExited, $"berth up exited early:\n{up.Err}");

            using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { Timeout = TimeSpan.FromSeconds(30) };
            using var placed = await http.PostAsync("http://127.0.0.1:7200/orders?item=tea&qty=2", null);
            var body = await placed.Content.ReadAsStringAsync();
            Assert.True(placed.IsSuccessStatusCode, $"POST :7200/orders: {(int)placed.StatusCode} {body}");
            using (var order = JsonDocument.Parse(body))
            {
                Assert.Equal("tea", order.RootElement.GetProperty("item").GetString());
                Assert.Equal(9.0m, order.RootElement.GetProperty("price").GetDecimal()); // the worker's price: 2 × (1.5 + 3)
            }

            var page = await http.GetStringAsync("http://127.0.0.1:7100/");
            Assert.Contains("tea:2:9", page, StringComparison.Ordinal);

            var ps = await cli.OkAsync("ps", "-f", spec);
            foreach (var service in new[] { "frontend", "api", "worker", "db" })
            {
                Assert.Contains(ps.Out.Split('\n'), l => l.StartsWith(service + "-", StringComparison.Ordinal) && l.Contains(" ready ", StringComparison.Ordinal));
            }

            replicas = [.. JsonDocument.Parse((await cli.OkAsync("ps", "-f", spec, "-o", "json")).Out).RootElement.EnumerateArray().Select(r => r.Clone())];
            // The worker autoscales (min 2, max 4, target 70% CPU): under load its JIT start alone can add replicas.
            var counts = replicas.GroupBy(r => r.GetProperty("service").GetString()!).ToDictionary(g => g.Key, g => g.Count());
            var described = string.Join(", ", counts.Select(c => $"{c.Key}={c.Value}"));
            Assert.True(counts.GetValueOrDefault("frontend") == 1 && counts.GetValueOrDefault("api") == 2 && counts.GetValueOrDefault("db") == 1
                && counts.GetValueOrDefault("worker") is >= 2 and <= 4 && counts.Count == 4, $"replicas per service: {described}");
            apiPort = new Uri(JsonDocument.Parse(File.ReadAllText(Path.Combine(_dir, "samples", "shop", ".berth", "api.json"))).RootElement.GetProperty("url").GetString()!).Port;

            // Where this machine enforces limits (root with cgroup v1, as CI), each replica runs in a cgroup of its own.
            cgroupsDuringRun = AppCgroups();
            var memoryGroups = cgroupsDuringRun.Where(d => d.StartsWith("/sys/fs/cgroup/memory/", StringComparison.Ordinal)).Select(Path.GetFileName).ToHashSet(StringComparer.Ordinal);
            Assert.True(!Environments.CgroupsWritable || replicas.All(r => memoryGroups.Contains(r.GetProperty("id").GetString())),
                $"replicas {string.Join(", ", replicas.Select(r => r.GetProperty("id").GetString()))}; replica cgroups while running: {string.Join(", ", cgroupsDuringRun)}");

            await up.InterruptAsync();
            var ended = await up.WaitAsync(TimeSpan.FromSeconds(90), "berth up to stop everything and exit after Ctrl-C");
            Assert.Equal(ExitCodes.Cancelled, ended.Code);
            Assert.Contains("'shop' stopped", ended.Err, StringComparison.Ordinal);
        }

        // Nothing left: no process of the app, no replica cgroup, no listening port.
        var left = Processes().Where(p => p.CommandLine.Contains(_dir, StringComparison.Ordinal) || p.Cwd.StartsWith(_dir, StringComparison.Ordinal)).ToList();
        Assert.True(left.Count == 0, $"processes left after Ctrl-C: {string.Join("; ", left.Select(p => $"{p.Pid} {p.CommandLine}"))}");
        Assert.All(replicas, r => Assert.False(Directory.Exists($"/proc/{r.GetProperty("pid").GetInt32()}"), $"replica {r.GetProperty("id")} (pid {r.GetProperty("pid")}) still runs"));
        var cgroups = AppCgroups().Where(c => !cgroupsBefore.Contains(c)).ToList();
        Assert.True(cgroups.Count == 0, $"replica cgroups left after Ctrl-C: {string.Join(", ", cgroups)} (while running: {string.Join(", ", cgroupsDuringRun)})");
        var listening = SamplePorts.Append(apiPort).Where(Listening).ToList();
        Assert.True(listening.Count == 0, $"ports still listening after Ctrl-C: {string.Join(", ", listening)}");
    }

    /// <summary>The replica cgroups of the app 'shop' (berth/shop/&lt;replica&gt;) in every v1 controller and in a v2 tree.</summary>
    private static List<string> AppCgroups() =>
        [.. Directory.EnumerateDirectories("/sys/fs/cgroup").Append("/sys/fs/cgroup").Select(c => Path.Combine(c, "berth", "shop"))
            .Where(Directory.Exists).SelectMany(Directory.EnumerateDirectories)];

    /// <summary>Whether a socket listens on TCP port <paramref name="port"/> (any address, IPv4 or IPv6), from /proc/net.</summary>
    private static bool Listening(int port)
    {
        var hex = port.ToString("X4", CultureInfo.InvariantCulture);
        return new[] { "/proc/net/tcp", "/proc/net/tcp6" }.Where(File.Exists).SelectMany(File.ReadLines).Skip(1)
            .Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Any(f => f.Length > 3 && f[3] == "0A" && f[1].EndsWith(":" + hex, StringComparison.Ordinal));
    }

    private static IEnumerable<(int Pid, string CommandLine, string Cwd)> Processes()
    {
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out var pid))
            {
                continue;
            }

            string commandLine, cwd;
            try
            {
                commandLine = File.ReadAllText(Path.Combine(dir, "cmdline")).Replace('\0', ' ');
                cwd = new DirectoryInfo(Path.Combine(dir, "cwd")).LinkTarget ?? "";
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                continue; // gone meanwhile, or not ours to read
            }

            yield return (pid, commandLine, cwd);
        }
    }
}
