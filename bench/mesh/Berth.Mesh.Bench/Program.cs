// Usage: Berth.Mesh.Bench (berth|yarp) --port N --upstreams 127.0.0.1:A,127.0.0.1:B [--admin-port M]
// berth: a MeshHost listener with every resilience feature on (round-robin, retries + budget, per-try and total
//        timeouts, service and endpoint breakers, outlier detection, limits, traceparent, Prometheus metrics).
// berth-bare: the same listener with retries, breakers and outlier detection off (what the resilience costs).
// berth-kestrel: the berth listener with Kestrel parsing every request (MeshHostOptions.OwnHttp1 = false), as before the
//        mesh's own HTTP/1.1 server.
// yarp:  plain YARP (MapReverseProxy, round-robin, no health checks) — the peer Berth is measured against.
// floor: a minimal C# proxy on nginx's design (Floor.cs: an epoll loop per core, raw sockets, no resilience) — what C#
//        itself costs next to nginx, the floor for any design of Berth's mesh. --threads N (default: the core count).
// kestrel: plain Kestrel answering "hello\n" itself (no proxying) — the floor of any Kestrel-based listener.
// berth --pods PID1,PID2: the upstreams are in pods (each in the network namespace of that pid), reached through sockets
//        the mesh makes inside them (setns), as under `network: isolated` / Docker.
// pod-memory --pods-count N --services M: RSS and descriptors of a MeshHost holding M routes and, in each of N pods
//        (unshare --net), one outbound listener per service (the data plane's cost of pods), printed as one line.
// The berth modes run the data plane's own server (DataPlaneServer, what `berth __data-plane` runs) serving a saved
// route snapshot, with the data plane's runtime settings: run.sh starts them with the environment `data-plane-env` prints
// (DataPlaneRuntime.Environment); Kestrel's pipes are scheduled inline as in the data plane process (BERTH_BENCH_KESTREL_SCHEDULING=1: Kestrel's default, to compare).
// data-plane-env: prints that environment as NAME=VALUE lines.
// Prints "ready" once listening; runs until killed.
using System.Globalization;
using Berth.Core.Model;
using Berth.Core.Routing;
using Berth.Mesh;
using Berth.Mesh.DataPlane;
using Yarp.ReverseProxy.Configuration;

var mode = args.Length > 0 ? args[0] : throw new ArgumentException("first argument: berth or yarp");
if (mode == "pod-memory")
{
    await PodMemory.RunAsync(int.Parse(Arg("--pods-count") ?? "100", CultureInfo.InvariantCulture), int.Parse(Arg("--services") ?? "5", CultureInfo.InvariantCulture));
    return;
}

var port = mode == "data-plane-env" ? 0 : int.Parse(Arg("--port") ?? throw new ArgumentException("--port is required"), CultureInfo.InvariantCulture);
var upstreams = mode == "data-plane-env" ? [] : (Arg("--upstreams") ?? throw new ArgumentException("--upstreams is required")).Split(',');

if (mode == "data-plane-env")
{
    foreach (var (name, value) in DataPlaneRuntime.Environment)
    {
        Console.WriteLine($"{name}={value}");
    }
}
else if (mode is "berth" or "berth-bare" or "berth-kestrel")
{
    var policy = mode != "berth-bare"
        ? MeshPolicy.Default with { LoadBalancing = LoadBalancing.RoundRobin, PerTryTimeout = TimeSpan.FromSeconds(5) }
        : MeshPolicy.Default with
        {
            LoadBalancing = LoadBalancing.RoundRobin,
            Timeout = null,
            Retries = new RetryPolicy { Attempts = 0 },
            CircuitBreaker = new CircuitBreakerPolicy { Enabled = false },
            OutlierDetection = new OutlierDetectionPolicy { Enabled = false },
        };
    var route = new ServiceRoute("bench", new Berth.Core.Model.Endpoint { Name = "http", Port = port }, policy,
        [.. upstreams.Select((u, i) => new Upstream($"u{i}", u.Split(':')[0], int.Parse(u.Split(':')[1], CultureInfo.InvariantCulture), 1) { Pod = PodOf(i) })]);
    var state = Directory.CreateTempSubdirectory("berth-bench-dp-");
    try
    {
        // The route as a control plane leaves it for the data plane: its saved snapshot, served at start (and the channel token).
        DataPlaneFiles.EnsureToken(state.FullName);
        File.WriteAllBytes(Path.Combine(state.FullName, DataPlaneFiles.RoutesFile),
            DataPlaneWire.Encode(new DataPlaneMessage { Type = DataPlaneMessageTypes.Snapshot, Version = 1, Routes = [route] }));
        var options = new DataPlaneServerOptions(state.FullName)
        {
            Mesh = new MeshHostOptions { OwnHttp1 = mode != "berth-kestrel", InlineScheduling = Environment.GetEnvironmentVariable("BERTH_BENCH_KESTREL_SCHEDULING") != "1",
                EventLoops = Environment.GetEnvironmentVariable("BERTH_BENCH_EVENT_LOOPS") != "0" },
        };
        await using var server = await DataPlaneServer.StartAsync(options, CancellationToken.None);
        Console.WriteLine($"ready (data plane in {state.FullName}, inline completions: {DataPlaneRuntime.InlineCompletions})");
        await WaitForSignalAsync();
    }
    finally
    {
        state.Delete(recursive: true);
    }
}
else if (mode == "yarp")
{
    var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
    builder.WebHost.UseKestrelCore().ConfigureKestrel(k =>
    {
        k.AddServerHeader = false;
        k.Listen(System.Net.IPAddress.Loopback, port);
    });
    builder.Services.AddRouting();
    builder.Services.AddReverseProxy().LoadFromMemory(
        [new RouteConfig { RouteId = "all", ClusterId = "bench", Match = new RouteMatch { Path = "{**catch-all}" } }],
        [new ClusterConfig
        {
            ClusterId = "bench",
            LoadBalancingPolicy = "RoundRobin",
            Destinations = upstreams.Select((u, i) => (Key: $"u{i}", Value: new DestinationConfig { Address = $"http://{u}" })).ToDictionary(x => x.Key, x => x.Value),
        }]);
    var app = builder.Build();
    app.UseRouting();
    app.MapReverseProxy();
    await app.StartAsync();
    Console.WriteLine("ready");
    await app.WaitForShutdownAsync();
}
else if (mode == "floor")
{
    Floor.Run(port, upstreams, int.Parse(Arg("--threads") ?? Environment.ProcessorCount.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture));
    Console.WriteLine("ready");
    await WaitForSignalAsync();
}
else if (mode == "kestrel")
{
    var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
    builder.WebHost.UseKestrelCore().ConfigureKestrel(k =>
    {
        k.AddServerHeader = false;
        k.Listen(System.Net.IPAddress.Loopback, port);
    });
    var app = builder.Build();
    var hello = "hello\n"u8.ToArray();
    app.Run(context =>
    {
        context.Response.ContentType = "text/plain";
        context.Response.ContentLength = hello.Length;
        return context.Response.Body.WriteAsync(hello).AsTask();
    });
    await app.StartAsync();
    Console.WriteLine("ready");
    await app.WaitForShutdownAsync();
}
else
{
    throw new ArgumentException($"unknown mode '{mode}': use berth, berth-bare, berth-kestrel, yarp, floor, kestrel or data-plane-env");
}

PodNetwork? PodOf(int i)
{
    if (Arg("--pods") is not { } pods)
    {
        return null;
    }

    var path = $"/proc/{pods.Split(',')[i]}/ns/net";
    return new PodNetwork($"u{i}", path) { NamespaceInode = PodSockets.InodeOf(path) };
}

string? Arg(string name)
{
    var i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
}

static async Task WaitForSignalAsync()
{
    var done = new TaskCompletionSource();
    using var term = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, c => { c.Cancel = true; done.TrySetResult(); });
    using var intr = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGINT, c => { c.Cancel = true; done.TrySetResult(); });
    await done.Task;
}
