namespace Berth.Cli.Tests.Shell;

/// <summary>The edit loop without a watcher: <c>up --build</c> / <c>apply --build</c> run the builds and roll out only what a
/// build changed, readiness-gated, with no failed request under load during the swap.</summary>
[Collection("real processes")]
public sealed class BuildRolloutTests : IAsyncLifetime
{
    private readonly EditLoopApp _app = new("berth-cli-build-");

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(Path.Combine(_app.Dir, "src"));
        await File.WriteAllTextAsync(Path.Combine(_app.Dir, "src", "body.txt"), "one\n");
        await File.WriteAllTextAsync(Path.Combine(_app.Dir, "server.pl"), BuiltBodyServer.Script);
        await _app.WriteSpecAsync("buildloop", """
                build:
                  command: [sh, -c, "mkdir -p out && cp -p src/body.txt out/body.txt"]
                run: [perl, server.pl]
                replicas: 2
            """, $$"""
              other:
                run: {{TestHttpServer.Yaml}}
                endpoints:
                  http: {}
            """);
    }

    public Task DisposeAsync() => _app.DisposeAsync().AsTask();

    [Fact]
    public async Task UpBuild_SourceChanged_RollsOutOnlyThatServiceWithNoFailedRequest()
    {
        var up = await _app.Cli.RunAsync("up", "--wait");
        Assert.True(up.Code == 0, up.ToString());
        Assert.Contains("berth: building web: sh -c mkdir -p out && cp -p src/body.txt out/body.txt\n", up.Err, StringComparison.Ordinal);
        Assert.Matches(@"berth: built web in \d+\.\ds\n", up.Err);
        Assert.Equal("one", await _app.GetAsync());

        // Nothing changed: a plain apply and a build that rewrites nothing roll nothing out.
        var apply = await _app.Cli.RunAsync("apply");
        Assert.Equal(0, apply.Code);
        Assert.Equal(["berth: web: unchanged", "berth: other: unchanged"], apply.Err.Split('\n').Where(l => l.Contains(": unchanged", StringComparison.Ordinal) || l.Contains("rolling out", StringComparison.Ordinal)));
        var rebuild = await _app.Cli.RunAsync("apply", "--build");
        Assert.Equal(0, rebuild.Code);
        Assert.Contains("berth: web: unchanged\n", rebuild.Err, StringComparison.Ordinal);

        // The edit: the new body answers through the mesh after 'up --build', and no request failed while it rolled out.
        await File.WriteAllTextAsync(Path.Combine(_app.Dir, "src", "body.txt"), "two\n");
        File.SetLastWriteTimeUtc(Path.Combine(_app.Dir, "src", "body.txt"), DateTime.UtcNow.AddSeconds(5));
        await using var load = LoopbackLoad.Start(_app.Port, new LoopbackLoadOptions { Clients = 2, MaxTime = TimeSpan.FromMinutes(3), MaxRequests = 50_000 });
        await load.MoreAsync(20);
        var upBuild = await _app.Cli.RunAsync("up", "--build");
        Assert.True(upBuild.Code == 0, upBuild.ToString());
        Assert.Contains("berth: web: rolling out revision 2 (from 1); 'berth rollout status web' follows it\n", upBuild.Err, StringComparison.Ordinal);
        Assert.Contains("berth: other: unchanged\n", upBuild.Err, StringComparison.Ordinal);
        var status = await _app.Cli.RunAsync("rollout", "status", "web", "--timeout", "2m");
        Assert.True(status.Code == 0, status.ToString());
        await Poll.UntilAsync(async () => await _app.GetAsync() == "two", TimeSpan.FromSeconds(60), "the rebuilt body answering through the mesh");
        await load.MoreAsync(20);
        var result = await load.StopAsync();
        result.AssertNoneFailedUncapped();
        Assert.True(result.Bodies.ContainsKey("one") && result.Bodies.ContainsKey("two"), result.ToString());
    }

    [Fact]
    public async Task UpWatch_FileSaved_RebuildsAndRollsOutWithNoFailedRequestThenCtrlCLeavesTheAppUp()
    {
        await using var watch = _app.Cli.Start("up", "--watch");
        await Poll.UntilAsync(() => watch.ErrLines.Any(l => l.StartsWith("berth: watching ", StringComparison.Ordinal)) || watch.HasExited, TimeSpan.FromMinutes(2),
            "'berth up --watch' watching the build folder");
        Assert.False(watch.HasExited, watch.Err);
        Assert.Contains($"berth: watching {_app.Dir} for web", watch.ErrLines);
        Assert.Equal("one", await _app.GetAsync());

        await using var load = LoopbackLoad.Start(_app.Port, new LoopbackLoadOptions { Clients = 2, MaxTime = TimeSpan.FromMinutes(3), MaxRequests = 50_000 });
        await load.MoreAsync(20);
        await File.WriteAllTextAsync(Path.Combine(_app.Dir, "src", "body.txt"), "two\n");
        await Poll.UntilAsync(async () => await _app.GetAsync() == "two", TimeSpan.FromMinutes(2), $"the saved body answering through the mesh; berth printed:\n{watch.Err}");
        await load.MoreAsync(20);
        var result = await load.StopAsync();
        result.AssertNoneFailedUncapped();
        Assert.Contains(watch.ErrLines, l => l.StartsWith("berth: changed: src/body.txt", StringComparison.Ordinal) && l.EndsWith("; rebuilding web", StringComparison.Ordinal));
        Assert.Contains("berth: web: rolling out revision 2 (from 1); 'berth rollout status web' follows it", watch.ErrLines);
        Assert.Contains("berth: other: unchanged", watch.ErrLines);

        // The rollout finishes (the new body seen above may come from the first new replica while an old one still serves).
        var rolled = await _app.Cli.RunAsync("rollout", "status", "web", "--timeout", "2m");
        Assert.True(rolled.Code == 0, rolled.ToString());
        await watch.InterruptAsync();
        var ended = await watch.WaitAsync(TimeSpan.FromSeconds(60), "Ctrl-C to end the watch");
        Assert.Equal(ExitCodes.Cancelled, ended.Code);
        Assert.Equal("two", await _app.GetAsync()); // the app stays up: Ctrl-C ends the watch, 'berth down' the app
    }
}
