using System.Diagnostics;
using System.Globalization;
using Berth.Runtime;
using Berth.Runtime.Docker;
using Berth.Runtime.Process;
using Berth.Runtime.Tests.Docker;

// Start-to-running latency: the time from asking to start a replica until the driver says it runs
// (process: the supervisor reports the command exec'd; Docker: the engine has started the container).
// Each driver is also measured starting the same replica in a pod (its own network namespace holding only loopback,
// issue #13), interleaved one start each with the host-network start so both see the same machine.
// usage: Berth.Bench.Runtime [STARTS] [--no-docker]
var starts = args.Length > 0 && int.TryParse(args[0], CultureInfo.InvariantCulture, out var n) ? n : 200;
var withDocker = !args.Contains("--no-docker");
var root = Directory.CreateTempSubdirectory("berth-bench-runtime").FullName;
var app = "bench" + Environment.ProcessId.ToString(CultureInfo.InvariantCulture);
Console.Error.WriteLine($"{starts} starts per driver; {Environment.ProcessorCount} cores; {DateTime.UtcNow:u}");

var results = new List<(string Name, List<double> Ms)>();
var process = new ProcessDriver(new ProcessDriverOptions { StateRoot = Path.Combine(root, "runtime") });
results.Add(("process driver (perl supervisor, cgroup v1 limits)", await MeasureAsync(process, i => new ReplicaSpec
{
    App = app,
    Service = "bench",
    ReplicaId = $"p{i}",
    Command = ["sleep", "300"],
    StateDirectory = Path.Combine(root, "replicas", $"p{i}"),
    CpuLimit = Berth.Core.Model.CpuQuantity.Parse("100m"),
    MemoryLimit = Berth.Core.Model.ByteSize.Parse("32Mi"),
})));

var pod = new PodSpec([new("api", "127.77.0.1"), new("web", "127.77.0.2")]);
var (hostMs, podMs) = await InterleavedAsync(process, i => new ReplicaSpec
{
    App = app,
    Service = "bench",
    ReplicaId = $"q{i}",
    Command = ["sleep", "300"],
    StateDirectory = Path.Combine(root, "replicas", $"q{i}"),
}, pod);
results.Add(("process driver, host network (no limits)", hostMs));
results.Add(("process driver, in a pod (no limits)", podMs));

if (withDocker)
{
    using var docker = await DockerDriver.ConnectAsync(new DockerDriverOptions(), CancellationToken.None);
    if (!docker.Capabilities.Available)
    {
        Console.Error.WriteLine(docker.Capabilities.UnavailableReason);
        return 1;
    }

    await TestImages.EnsureAsync(docker);
    var driverMs = new List<double>();
    var cliMs = new List<double>();
    var cliNoneMs = new List<double>();

    // One start of each first, not counted: JIT, the engine's first container from this image, the socket.
    var warm = await docker.StartAsync(new ReplicaSpec { App = app, Service = "bench", ReplicaId = "warm", Image = TestImages.App, Command = ["sleep", "300"], StateDirectory = Path.Combine(root, "warm") }, CancellationToken.None);
    await docker.StopAsync(warm, TimeSpan.Zero, CancellationToken.None);
    await docker.RemoveAsync(warm, CancellationToken.None);
    await RunAsync("docker", "rm", "-f", (await RunAsync("docker", "run", "-d", "--network", "host", TestImages.App, "sleep", "300")).Trim());

    // Interleaved, one of each in turn, so both see the same machine load.
    for (var i = 0; i < starts; i++)
    {
        var spec = new ReplicaSpec
        {
            App = app,
            Service = "bench",
            ReplicaId = $"d{i}",
            Image = TestImages.App,
            Command = ["sleep", "300"],
            StateDirectory = Path.Combine(root, "replicas", $"d{i}"),
            CpuLimit = Berth.Core.Model.CpuQuantity.Parse("100m"),
            MemoryLimit = Berth.Core.Model.ByteSize.Parse("32Mi"),
        };
        var clock = Stopwatch.StartNew();
        var handle = await docker.StartAsync(spec, CancellationToken.None);
        driverMs.Add(clock.Elapsed.TotalMilliseconds);
        await docker.StopAsync(handle, TimeSpan.Zero, CancellationToken.None);
        await docker.RemoveAsync(handle, CancellationToken.None);

        var name = $"berth-bench-cli-{app}-{i}";
        clock.Restart();
        var id = await RunAsync("docker", "run", "-d", "--name", name, "--network", "host", "--cpus", "0.1", "--memory", "32m", "--memory-swap", "32m", TestImages.App, "sleep", "300");
        cliMs.Add(clock.Elapsed.TotalMilliseconds);
        await RunAsync("docker", "rm", "-f", id.Trim());

        // The engine's own cost of a network namespace: the same run with --network none (what a Berth pod asks for).
        clock.Restart();
        id = await RunAsync("docker", "run", "-d", "--name", name + "-none", "--network", "none", "--cpus", "0.1", "--memory", "32m", "--memory-swap", "32m", TestImages.App, "sleep", "300");
        cliNoneMs.Add(clock.Elapsed.TotalMilliseconds);
        await RunAsync("docker", "rm", "-f", id.Trim());
    }

    results.Add(("docker driver (Engine API)", driverMs));
    results.Add(("docker run -d (CLI, same image and limits)", cliMs));
    results.Add(("docker run -d --network none (CLI, same image and limits)", cliNoneMs));
    var (dockerHost, dockerPod) = await InterleavedAsync(docker, i => new ReplicaSpec
    {
        App = app,
        Service = "bench",
        ReplicaId = $"e{i}",
        Image = TestImages.App,
        Command = ["sleep", "300"],
        StateDirectory = Path.Combine(root, "replicas", $"e{i}"),
    }, pod);
    results.Add(("docker driver, host network", dockerHost));
    results.Add(("docker driver, in a pod (NetworkMode none + names)", dockerPod));
}

Console.WriteLine("| what | starts | p50 ms | p99 ms | mean ms |");
Console.WriteLine("| --- | ---: | ---: | ---: | ---: |");
foreach (var (name, ms) in results)
{
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {name} | {ms.Count} | {Percentile(ms, 50):0.0} | {Percentile(ms, 99):0.0} | {ms.Average():0.0} |"));
}

Directory.Delete(root, recursive: true);
return 0;

async Task<List<double>> MeasureAsync(IWorkloadDriver driver, Func<int, ReplicaSpec> spec)
{
    var ms = new List<double>();
    var warm = await driver.StartAsync(spec(-1) with { ReplicaId = "warm" }, CancellationToken.None); // JIT, not counted
    await driver.StopAsync(warm, TimeSpan.Zero, CancellationToken.None);
    await driver.RemoveAsync(warm, CancellationToken.None);
    for (var i = 0; i < starts; i++)
    {
        var clock = Stopwatch.StartNew();
        var handle = await driver.StartAsync(spec(i), CancellationToken.None);
        ms.Add(clock.Elapsed.TotalMilliseconds);
        await driver.StopAsync(handle, TimeSpan.Zero, CancellationToken.None);
        await driver.RemoveAsync(handle, CancellationToken.None);
    }

    return ms;
}

async Task<(List<double> Host, List<double> Pod)> InterleavedAsync(IWorkloadDriver driver, Func<int, ReplicaSpec> spec, PodSpec pod)
{
    List<double> host = [], inPod = [];
    for (var i = 0; i < starts; i++)
    {
        foreach (var (list, s) in new[] { (host, spec(2 * i)), (inPod, spec((2 * i) + 1) with { Pod = pod }) })
        {
            var clock = Stopwatch.StartNew();
            var handle = await driver.StartAsync(s, CancellationToken.None);
            list.Add(clock.Elapsed.TotalMilliseconds);
            await driver.StopAsync(handle, TimeSpan.Zero, CancellationToken.None);
            await driver.RemoveAsync(handle, CancellationToken.None);
        }
    }

    return (host, inPod);
}

static double Percentile(List<double> values, double p)
{
    var sorted = values.Order().ToList();
    var rank = (int)Math.Ceiling(p / 100 * sorted.Count) - 1;
    return sorted[Math.Clamp(rank, 0, sorted.Count - 1)];
}

static async Task<string> RunAsync(string file, params string[] args)
{
    var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
    foreach (var a in args)
    {
        start.ArgumentList.Add(a);
    }

    using var p = Process.Start(start)!;
    var output = await p.StandardOutput.ReadToEndAsync();
    var error = await p.StandardError.ReadToEndAsync();
    await p.WaitForExitAsync();
    return p.ExitCode == 0 ? output : throw new InvalidOperationException($"{file} {string.Join(' ', args)} failed: {error}");
}
