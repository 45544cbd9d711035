namespace Berth.Cli.Tests.Shell;

/// <summary><c>develop.hot_reload</c> end to end: the replica runs the ASP.NET Core project under <c>dotnet watch</c>; a saved
/// edit is applied in place by Hot Reload (same replica, no restart), <c>berth watch</c> reports dotnet watch's verdict, and no
/// request through the mesh's stable port fails meanwhile. An edit Hot Reload cannot apply (a rude edit) is rolled out
/// instead: new replicas under <c>dotnet watch</c>, readiness-gated, the old one serving until then.</summary>
[Collection("real processes")]
public sealed class HotReloadWatchTests : IAsyncLifetime
{
    private readonly EditLoopApp _app = new("berth-cli-hotreload-");

    private string ProgramCs => Path.Combine(_app.Dir, "app", "Program.cs");

    public async Task InitializeAsync()
    {
        // The edit-loop benchmark's project (bench/devloop/app), its answer from a method of a class.
        Directory.CreateDirectory(Path.Combine(_app.Dir, "app"));
        File.Copy(Repository.Path("bench/devloop/app/Devloop.csproj"), Path.Combine(_app.Dir, "app", "Devloop.csproj"));
        await File.WriteAllTextAsync(ProgramCs, Program("class", "v1"));
        await _app.WriteSpecAsync("hotreload", """
                run: [dotnet, out/Devloop.dll]
                working_dir: ./app
                develop:
                  hot_reload: true
                  watch:
                    - {action: rebuild, path: ./app, ignore: [bin/, obj/, out/]}
            """, update: "{max_surge: 1, max_unavailable: 0, progress_deadline: 15m}");
    }

    public Task DisposeAsync() => _app.DisposeAsync().AsTask();

    private static string Program(string kind, string body) => $$"""
        var app = WebApplication.CreateBuilder(args).Build();
        app.MapGet("/", () => new K().V());
        app.Run();
        {{kind}} K { public string V() => "{{body}}"; }
        """;

    private async Task<List<string>> ReplicasAsync() => [.. (await _app.Cli.PsAsync()).Select(r => $"{r.GetProperty("id").GetString()} restarts {r.GetProperty("restarts").GetInt32()}")];

    [Fact]
    public async Task Watch_EditSaved_HotReloadAppliesItInPlaceWithNoFailedRequest()
    {
        // dotnet watch builds the project as the replica starts: minutes on a loaded machine.
        var up = await _app.Cli.RunAsync(TimeSpan.FromMinutes(10), "up", "--wait", "--wait-timeout", "9m");
        Assert.True(up.Code == 0, up.ToString());
        Assert.Equal("v1", await _app.GetAsync());
        var before = await ReplicasAsync();
        var pid = (await _app.Cli.PsAsync()).Single().GetProperty("pid").GetInt32();
        Assert.StartsWith("dotnet\0watch\0--project\0" + Path.Combine(_app.Dir, "app") + "\0run\0", await File.ReadAllTextAsync($"/proc/{pid}/cmdline"), StringComparison.Ordinal);

        await using var watch = _app.Cli.Start("watch");
        await Poll.UntilAsync(() => watch.ErrLines.Any(l => l.StartsWith("berth: watching ", StringComparison.Ordinal)) || watch.HasExited, TimeSpan.FromMinutes(2),
            "'berth watch' watching the app folder");
        Assert.False(watch.HasExited, watch.Err);

        await using var load = LoopbackLoad.Start(_app.Port, new LoopbackLoadOptions { Clients = 2, MaxTime = TimeSpan.FromMinutes(4), MaxRequests = 50_000 });
        await load.MoreAsync(20);
        await File.WriteAllTextAsync(ProgramCs, Program("class", "v2"));
        await Poll.UntilAsync(async () => await _app.GetAsync() == "v2", TimeSpan.FromMinutes(3), $"the edit answering through the mesh; berth printed:\n{watch.Err}");
        await load.MoreAsync(20);
        var result = await load.StopAsync();

        result.AssertNoneFailedUncapped();
        Assert.True(result.Bodies.ContainsKey("v1") && result.Bodies.ContainsKey("v2"), result.ToString());
        Assert.Equal(before, await ReplicasAsync()); // in place: the same replica, never restarted
        await Poll.UntilAsync(() => watch.ErrLines.Any(l => l.StartsWith("berth: web: C# and Razor changes applied in ", StringComparison.Ordinal)), TimeSpan.FromMinutes(2),
            $"berth watch reporting dotnet watch's verdict; it printed:\n{watch.Err}");
        Assert.Contains(watch.ErrLines, l => l.StartsWith("berth: changed: app/Program.cs; web: waiting for Hot Reload in its replicas", StringComparison.Ordinal));
        Assert.Contains(watch.ErrLines, l => l.Contains("(hot reload, in place; ", StringComparison.Ordinal));
        Assert.DoesNotContain(watch.ErrLines, l => l.Contains("rolling out", StringComparison.Ordinal) || l.Contains("restarting its replicas", StringComparison.Ordinal));

        await watch.InterruptAsync();
        Assert.Equal(ExitCodes.Cancelled, (await watch.WaitAsync(TimeSpan.FromSeconds(60), "Ctrl-C to end the watch")).Code);
    }

    [Fact]
    public async Task Watch_AppliedEditThenRudeEdit_RollsNewReplicasThatServeItWithNoFailedRequest()
    {
        var up = await _app.Cli.RunAsync(TimeSpan.FromMinutes(10), "up", "--wait", "--wait-timeout", "9m");
        Assert.True(up.Code == 0, up.ToString());
        Assert.Equal("v1", await _app.GetAsync());
        var before = (await _app.Cli.PsAsync()).Single().GetProperty("id").GetString();

        await using var watch = _app.Cli.Start("watch");
        await Poll.UntilAsync(() => watch.ErrLines.Any(l => l.StartsWith("berth: watching ", StringComparison.Ordinal)) || watch.HasExited, TimeSpan.FromMinutes(2),
            "'berth watch' watching the app folder");
        Assert.False(watch.HasExited, watch.Err);

        // The new replica builds under dotnet watch before it is Ready: minutes on a loaded machine, so the load's caps are wide.
        await using var load = LoopbackLoad.Start(_app.Port, new LoopbackLoadOptions { Clients = 2, Pace = TimeSpan.FromMilliseconds(20), MaxTime = TimeSpan.FromMinutes(16), MaxRequests = 200_000 });
        await load.MoreAsync(20);
        // First an edit Hot Reload applies, so the rude one is the watch's second save (round 6 saw a second save go unseen).
        await File.WriteAllTextAsync(ProgramCs, Program("class", "v1b"));
        await Poll.UntilAsync(async () => await _app.GetAsync() == "v1b", TimeSpan.FromMinutes(5), "the first edit applied in place", TimeSpan.FromMilliseconds(250));
        await Poll.UntilAsync(() => watch.ErrLines.Any(l => l.Contains("(hot reload, in place; ", StringComparison.Ordinal)), TimeSpan.FromMinutes(2), "berth watch's verdict on the first edit");
        // class -> struct changes a type's kind: dotnet watch reports ENC0015 and keeps the old app running.
        await File.WriteAllTextAsync(ProgramCs, Program("struct", "v2"));
        try
        {
            await Poll.UntilAsync(async () => await _app.GetAsync() == "v2", TimeSpan.FromMinutes(14), "the rude edit answering through the mesh from a new replica", TimeSpan.FromMilliseconds(250));
        }
        catch (TimeoutException e)
        {
            // What to find the cause with: berth watch's verdicts, the replicas, and what dotnet watch printed in them.
            throw new TimeoutException($"{e.Message}\nberth watch printed:\n{watch.Err}\nberth ps:\n{(await _app.Cli.RunAsync("ps")).Out}\nberth logs:\n{(await _app.Cli.RunAsync("logs", "web", "--tail", "80")).Out}", e);
        }
        await load.MoreAsync(20);
        var result = await load.StopAsync();

        result.AssertNoneFailedUncapped();
        Assert.True(result.Bodies.ContainsKey("v1") && result.Bodies.ContainsKey("v1b") && result.Bodies.ContainsKey("v2"), result.ToString());
        var after = (await _app.Cli.PsAsync()).Where(r => r.GetProperty("phase").GetString() == "ready").Select(r => r.GetProperty("id").GetString()).ToList();
        Assert.DoesNotContain(before, after);
        Assert.Equal(2, watch.ErrLines.Count(l => l.StartsWith("berth: changed: app/Program.cs; web: waiting for Hot Reload in its replicas", StringComparison.Ordinal)));
        var printed = $"berth watch printed:\n{watch.Err}\nthe replicas' logs:\n{(await _app.Cli.RunAsync("logs", "web", "--tail", "120")).Out}";
        Assert.True(watch.ErrLines.Any(l => l.StartsWith("berth: web: ", StringComparison.Ordinal) && l.EndsWith("; Hot Reload cannot apply this edit, so its replicas are rolled", StringComparison.Ordinal)), printed);
        Assert.True(watch.ErrLines.Any(l => l.StartsWith("berth: web: restarting its replicas as its update policy rolls them (revision ", StringComparison.Ordinal)), printed);
        Assert.False(watch.ErrLines.Any(l => l.Contains("no Hot Reload verdict", StringComparison.Ordinal)), printed);

        await watch.InterruptAsync();
        Assert.Equal(ExitCodes.Cancelled, (await watch.WaitAsync(TimeSpan.FromSeconds(60), "Ctrl-C to end the watch")).Code);
    }
}
