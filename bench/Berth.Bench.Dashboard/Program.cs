// Dashboard benchmark: 500 replicas (10 services × 50) on a real control plane with the in-memory driver; replicas are
// "killed" round-robin so the control plane emits about 200 events/s (exited, restarted, started, ready). Two phases in
// one run: without the dashboard (API only) and with it (the Resources feed and one signed-in SSE client).
// Reports: events/s, process CPU (% of one core) per phase, and for the dashboard phase the delay from a kill to the
// first Resources push that shows the replica no longer Ready (p50/p95/p99/max).
using System.Collections.Concurrent;
using System.Collections.Immutable;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using Berth.Core.Model;
using Berth.Orchestration;
using Berth.Orchestration.Controllers;
using Berth.Orchestration.State;
using Berth.Server;
using Berth.Testing.ControlPlanes;

var seconds = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 30;
var killsPerSecond = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 50;
Console.WriteLine($"dashboard bench: 500 replicas, {killsPerSecond} kills/s for {seconds}s per phase, {Environment.ProcessorCount} CPUs");

foreach (var dashboard in new[] { false, true })
{
    var r = await RunAsync(dashboard, seconds, killsPerSecond);
    Console.WriteLine(r);
}

static async Task<string> RunAsync(bool dashboard, int seconds, int killsPerSecond)
{
    var dir = Directory.CreateTempSubdirectory("berth-bench-dashboard-").FullName;
    var store = StateStore.Open(dir);
    var driver = new FakeDriver(TimeProvider.System);
    var plane = new ControlPlane(new OrchestratorOptions { StateDirectory = dir }, store, [driver], new RecordingRouteSink(), new ScriptedProber());
    await plane.StartAsync(CancellationToken.None);
    await plane.ApplyAsync(new Application
    {
        Name = "bench",
        Services = [.. Enumerable.Range(0, 10).Select(i => new Service
        {
            Name = $"svc{i}", Command = ["x"], Replicas = 50, Endpoints = [new Endpoint { Name = "http" }],
            Restart = RestartPolicy.Default,
            Env = ImmutableSortedDictionary<string, string>.Empty.Add("TOKEN", "bench-secret-value"), SecretEnv = ["TOKEN"],
        })],
    }, "bench", CancellationToken.None);
    var deadline = Stopwatch.StartNew();
    while (plane.Replicas.Count(x => x.Phase == ReplicaPhase.Ready) < 500)
    {
        if (deadline.Elapsed > TimeSpan.FromMinutes(2))
        {
            throw new TimeoutException("500 replicas not Ready within 2 minutes");
        }

        await Task.Delay(100);
    }

    var api = await ApiServer.StartAsync(plane, new ApiServerOptions { StateDirectory = dir, Dashboard = dashboard, PipelineTriggers = new() { Enabled = false } }, CancellationToken.None);
    var killedAt = new ConcurrentDictionary<string, (long At, int Restarts)>();
    var delays = new ConcurrentBag<double>();
    using var stop = new CancellationTokenSource();
    Task reader = Task.CompletedTask;
    HttpClient? client = null;
    if (dashboard)
    {
        var cookies = new CookieContainer();
        client = new HttpClient(new HttpClientHandler { CookieContainer = cookies }) { BaseAddress = api.Url, Timeout = Timeout.InfiniteTimeSpan };
        (await client.GetAsync(api.CreateLoginUrl())).EnsureSuccessStatusCode();
        var stream = await client.GetStreamAsync("/dashboard/api/stream");
        reader = Task.Run(async () =>
        {
            using var lines = new StreamReader(stream);
            try
            {
                while (await lines.ReadLineAsync(stop.Token) is { } line)
                {
                    if (!line.StartsWith("data: ", StringComparison.Ordinal))
                    {
                        continue;
                    }

                    var now = Stopwatch.GetTimestamp();
                    // A light client: find each killed replica's phase in the push without parsing the whole snapshot.
                    // Shown: the replica is no longer Ready, or it is again with one more restart (both can pass within a tick).
                    foreach (var (id, (at, restarts)) in killedAt)
                    {
                        var i = line.IndexOf($"\"id\":\"{id}\"", StringComparison.Ordinal);
                        if (i < 0)
                        {
                            continue;
                        }

                        var row = line.AsSpan(i, Math.Min(300, line.Length - i));
                        var r = row.IndexOf("\"restarts\":", StringComparison.Ordinal);
                        var now2 = r < 0 ? 0 : int.Parse(row[(r + 11)..][..row[(r + 11)..].IndexOfAny(',', '}')], CultureInfo.InvariantCulture);
                        if ((!row.Contains("\"phase\":\"ready\"", StringComparison.Ordinal) || now2 > restarts) && killedAt.TryRemove(id, out _))
                        {
                            delays.Add(Stopwatch.GetElapsedTime(at, now).TotalMilliseconds);
                        }
                    }
                }
            }
            catch (OperationCanceledException)
            {
            }
        });
    }

    var eventsBefore = store.CountEvents();
    var cpuBefore = Process.GetCurrentProcess().TotalProcessorTime;
    var wall = Stopwatch.StartNew();
    var ids = plane.Replicas.Select(x => x.Id).ToArray();
    var next = 0;
    var kills = 0;
    for (var tick = 0; tick < seconds * 10; tick++)
    {
        for (var k = 0; k < killsPerSecond / 10; k++)
        {
            var id = ids[next++ % ids.Length];
            var record = plane.Replicas.FirstOrDefault(x => x.Id == id);
            if (record?.Phase == ReplicaPhase.Ready && driver.IsRunning(id))
            {
                killedAt[id] = (Stopwatch.GetTimestamp(), record.RestartCount);
                driver.Exit(id);
                kills++;
            }
        }

        var due = TimeSpan.FromMilliseconds((tick + 1) * 100) - wall.Elapsed;
        if (due > TimeSpan.Zero)
        {
            await Task.Delay(due);
        }
    }

    await Task.Delay(1000); // let the last kills reach the feed
    var elapsed = wall.Elapsed;
    var cpu = Process.GetCurrentProcess().TotalProcessorTime - cpuBefore;
    var events = store.CountEvents() - eventsBefore;
    await stop.CancelAsync();
    client?.Dispose();
    await reader;
    await api.DisposeAsync();
    await plane.DisposeAsync();
    store.Dispose();
    Directory.Delete(dir, recursive: true);

    var sorted = delays.Order().ToArray();
    string P(double q) => sorted.Length == 0 ? "-" : sorted[Math.Clamp((int)Math.Ceiling(q * sorted.Length) - 1, 0, sorted.Length - 1)].ToString("0", CultureInfo.InvariantCulture);
    return $"{(dashboard ? "with dashboard   " : "without dashboard")}: {kills} kills, {events / elapsed.TotalSeconds:0} events/s, CPU {100 * cpu.TotalSeconds / elapsed.TotalSeconds:0.0}% of one core"
        + (dashboard ? $"; kill → Resources push: n={sorted.Length} (of {kills}) p50 {P(0.5)} ms, p95 {P(0.95)} ms, p99 {P(0.99)} ms, max {(sorted.Length == 0 ? "-" : sorted[^1].ToString("0", CultureInfo.InvariantCulture))} ms, missed {killedAt.Count}" : "");
}
