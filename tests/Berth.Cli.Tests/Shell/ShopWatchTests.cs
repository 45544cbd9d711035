namespace Berth.Cli.Tests.Shell;

/// <summary>The issue's edit loop end to end on the shop sample (samples/shop, copied with free stable ports): <c>berth up
/// --wait</c> with the Hot Reload overlay as bench/devloop/shop.sh runs it, <c>berth watch</c>, bounded load on the frontend's
/// stable port (frontend → api → db through the mesh), and one save of app/Program.cs that changes both the frontend's answer
/// (Hot Reload applies it in place) and the api's (api, worker and db share one build: built once and all three rolled, since
/// a rebuilt service is not hot-reloadable); then a save Hot Reload cannot apply (class → struct), so the frontend is rolled
/// too. Each new answer comes through the mesh with no failed request.</summary>
[Collection("real processes")]
public sealed class ShopWatchTests : IAsyncLifetime
{
    /// <summary>As bench/devloop/shop.sh: the sample and its Hot Reload overlay (for up and watch; the other commands find the
    /// running app from berth.yaml alone).</summary>
    private static readonly string[] Files = ["-f", "berth.yaml", "-f", "berth.hot-reload.yaml"];

    private readonly EditLoopApp _app = new("berth-cli-shopwatch-");
    private readonly int _frontend = Ports.Free();

    private string ProgramCs => Path.Combine(_app.Dir, "app", "Program.cs");

    public async Task InitializeAsync()
    {
        Copy(Repository.Path("samples/shop"), _app.Dir);
        // Free stable ports: the sample's 7100-7400 may be taken on a shared machine.
        var spec = await File.ReadAllTextAsync(Path.Combine(_app.Dir, "berth.yaml"));
        foreach (var (from, to) in new[] { ("port: 7100", $"port: {_frontend}"), ("http: 7200", $"http: {Ports.Free()}"), ("http: 7300", $"http: {Ports.Free()}"), ("port: 7400", $"port: {Ports.Free()}") })
        {
            Assert.True(spec.Contains(from, StringComparison.Ordinal), $"samples/shop/berth.yaml no longer has '{from}'; update this test");
            spec = spec.Replace(from, to, StringComparison.Ordinal);
        }

        await File.WriteAllTextAsync(Path.Combine(_app.Dir, "berth.yaml"), spec);
    }

    public Task DisposeAsync() => _app.DisposeAsync().AsTask();

    /// <summary>The sample's sources without what a build or a run left in the repository's copy.</summary>
    private static void Copy(string from, string to)
    {
        foreach (var dir in Directory.EnumerateDirectories(from).Where(d => Path.GetFileName(d) is not ("bin" or "obj" or "out" or ".berth")))
        {
            Copy(dir, Directory.CreateDirectory(Path.Combine(to, Path.GetFileName(dir))).FullName);
        }

        foreach (var file in Directory.EnumerateFiles(from))
        {
            File.Copy(file, Path.Combine(to, Path.GetFileName(file)));
        }
    }

    private async Task<string> GetAsync()
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        return await http.GetStringAsync($"http://127.0.0.1:{_frontend}/");
    }

    /// <summary>What to find a failure's cause with: what berth watch printed, the replicas, and the frontend's and api's logs.</summary>
    private async Task<string> WhatHappenedAsync(BerthProcess watch) =>
        $"berth watch printed:\n{watch.Err}\nberth ps:\n{(await _app.Cli.RunAsync("ps")).Out}\n" +
        $"berth logs frontend api:\n{(await _app.Cli.RunAsync("logs", "frontend", "api", "--tail", "60")).Out}";

    /// <summary>Waits until <paramref name="answered"/> and the save's rebuild of api, worker and db (its
    /// <paramref name="rollouts"/>-th) is rolled out in full, then until every service's rollout is done; on a timeout, fails
    /// with what berth watch printed, the replicas and the logs.</summary>
    private async Task SettledAsync(BerthProcess watch, Func<Task<bool>> answered, string what, int rollouts)
    {
        try
        {
            // The api's new build and rollout run beside the frontend's compile (or its new replica's build): minutes on a
            // loaded machine.
            await Poll.UntilAsync(answered, TimeSpan.FromMinutes(12), what + " through the mesh", TimeSpan.FromMilliseconds(250));
            await Poll.UntilAsync(() => watch.ErrLines.Count(l => l.StartsWith("berth: db: rolling out revision ", StringComparison.Ordinal)) >= rollouts,
                TimeSpan.FromMinutes(5), "the rollout of db, the last of the shared build's services");
            foreach (var service in new[] { "frontend", "api", "worker", "db" })
            {
                var status = await _app.Cli.RunAsync(TimeSpan.FromMinutes(6), "rollout", "status", service, "--timeout", "5m");
                Assert.True(status.Code == 0, $"rollout status {service}: {status}");
            }
        }
        catch (Exception e) when (e is TimeoutException or HttpRequestException or TaskCanceledException or Xunit.Sdk.XunitException)
        {
            throw new TimeoutException($"{e.Message}\n{await WhatHappenedAsync(watch)}", e);
        }
    }

    [Fact]
    public async Task Watch_HotReloadableSaveThenRudeEdit_FrontendInPlaceThenRolledApiWorkerDbOneBuildEach_NoFailedRequest()
    {
        // The first up builds the shop (api, worker, db) and the frontend under dotnet watch: minutes on a loaded machine.
        var up = await _app.Cli.RunAsync(TimeSpan.FromMinutes(15), ["up", "--wait", "--wait-timeout", "14m", .. Files]);
        Assert.True(up.Code == 0, up.ToString());
        var first = await GetAsync();
        Assert.StartsWith("shop frontend (frontend-", first, StringComparison.Ordinal);
        Assert.EndsWith("orders: []\n", first, StringComparison.Ordinal);

        await using var watch = _app.Cli.Start(["watch", .. Files]);
        await Poll.UntilAsync(() => watch.ErrLines.Count(l => l.StartsWith("berth: watching ", StringComparison.Ordinal)) > 0 || watch.HasExited, TimeSpan.FromMinutes(2),
            "'berth watch' watching the shop's folder");
        Assert.False(watch.HasExited, watch.Err);

        // Bounded: at most 2 clients × one request per 50 ms, 100,000 requests, 20 minutes.
        await using var load = LoopbackLoad.Start(_frontend, new LoopbackLoadOptions { Clients = 2, Pace = TimeSpan.FromMilliseconds(50), MaxTime = TimeSpan.FromMinutes(20), MaxRequests = 100_000 });
        await load.MoreAsync(20);
        var source = await File.ReadAllTextAsync(ProgramCs);
        var edited = source
            .Replace("$\"shop frontend ({replica})", "$\"shop frontend edit1 ({replica})", StringComparison.Ordinal)
            .Replace("        return Results.Json(orders);", "        orders.Add(\"api edit1\");\n        return Results.Json(orders);", StringComparison.Ordinal);
        Assert.True(edited.Contains("frontend edit1", StringComparison.Ordinal) && edited.Contains("api edit1", StringComparison.Ordinal), "samples/shop/app/Program.cs changed; update this test's edit");
        await File.WriteAllTextAsync(ProgramCs, edited);

        static bool New(string body) => body.StartsWith("shop frontend edit1 (", StringComparison.Ordinal) && body.EndsWith("orders: [\"api edit1\"]\n", StringComparison.Ordinal);
        await SettledAsync(watch, async () => New(await GetAsync()), "both edits of the first save answering through the mesh", rollouts: 1);

        // One build for the three services that share it, and each of them rolled from it; the frontend's edit in place.
        Assert.True(watch.ErrLines.Count(l => l.StartsWith("berth: building ", StringComparison.Ordinal)) == 1, watch.Err);
        Assert.Contains("berth: building api, worker, db: dotnet build app/Shop.csproj -c Release -o app/out", watch.ErrLines);
        Assert.Contains("berth: changed: app/Program.cs; rebuilding api, worker, db", watch.ErrLines);
        Assert.Contains("berth: changed: app/Program.cs; frontend: waiting for Hot Reload in its replicas", watch.ErrLines);
        foreach (var service in new[] { "api", "worker", "db" })
        {
            Assert.Single(watch.ErrLines, l => l.StartsWith($"berth: {service}: rolling out revision ", StringComparison.Ordinal));
        }

        Assert.Contains(watch.ErrLines, l => l.StartsWith("berth: frontend: ", StringComparison.Ordinal) && l.Contains("(hot reload, in place; ", StringComparison.Ordinal));
        Assert.DoesNotContain(watch.ErrLines, l => l.StartsWith("berth: frontend: rolling out", StringComparison.Ordinal) || l.Contains("restarting its replicas", StringComparison.Ordinal));
        var frontendBefore = (await _app.Cli.PsAsync()).Single(r => r.GetProperty("service").GetString() == "frontend").GetProperty("id").GetString()!;
        Assert.Contains(frontendBefore, await GetAsync(), StringComparison.Ordinal); // the replica the answer names

        // Second save, one Hot Reload cannot apply: a class becomes a struct (ENC0015), so berth watch rolls the frontend (a
        // new replica under dotnet watch, Ready before the old one stops); api, worker and db are built and rolled again.
        var rude = edited
            .Replace("internal static class Telemetry", "internal struct Telemetry", StringComparison.Ordinal)
            .Replace("$\"shop frontend edit1 ({replica})", "$\"shop frontend edit2 ({replica})", StringComparison.Ordinal);
        Assert.True(rude.Contains("internal struct Telemetry", StringComparison.Ordinal) && rude.Contains("frontend edit2", StringComparison.Ordinal), "samples/shop/app/Program.cs changed; update this test's edit");
        await File.WriteAllTextAsync(ProgramCs, rude);
        static bool Rolled(string body) => body.StartsWith("shop frontend edit2 (", StringComparison.Ordinal);
        await SettledAsync(watch, async () => Rolled(await GetAsync()), "the second save answering from a new frontend replica", rollouts: 2);

        await load.MoreAsync(20);
        var result = await load.StopAsync();

        Assert.False(result.Capped, $"the load hit its cap, so part of the test ran without load: {result}");
        Assert.True(result.Failed == 0, $"{result}\n{await WhatHappenedAsync(watch)}");
        Assert.True(result.Bodies.ContainsKey(first) && result.Bodies.Keys.Any(New) && result.Bodies.Keys.Any(Rolled), result.ToString());
        Assert.DoesNotContain(frontendBefore, await GetAsync(), StringComparison.Ordinal);
        Assert.Contains(watch.ErrLines, l => l.StartsWith("berth: frontend: ", StringComparison.Ordinal) && l.EndsWith("; Hot Reload cannot apply this edit, so its replicas are rolled", StringComparison.Ordinal));
        Assert.Contains(watch.ErrLines, l => l.StartsWith("berth: frontend: restarting its replicas as its update policy rolls them (revision ", StringComparison.Ordinal));
        Assert.True(watch.ErrLines.Count(l => l.StartsWith("berth: building api, worker, db: ", StringComparison.Ordinal)) == 2, watch.Err);
        Assert.DoesNotContain(watch.ErrLines, l => l.Contains("no Hot Reload verdict", StringComparison.Ordinal) || l.Contains("newer change", StringComparison.Ordinal));

        await watch.InterruptAsync();
        Assert.Equal(ExitCodes.Cancelled, (await watch.WaitAsync(TimeSpan.FromSeconds(60), "Ctrl-C to end the watch")).Code);
    }
}
