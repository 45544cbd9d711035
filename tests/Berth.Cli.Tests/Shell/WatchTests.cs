namespace Berth.Cli.Tests.Shell;

/// <summary><c>berth watch</c> with Compose's <c>develop.watch</c> rules on real process replicas: sync copies without a
/// restart and leaves ignored files alone, sync+restart rolls the replicas with no failed request, a newer change stops a
/// running build with every process it started, and Ctrl-C during a build ends the build's whole process group.</summary>
[Collection("real processes")]
public sealed class WatchTests : IAsyncLifetime
{
    private readonly EditLoopApp _app = new("berth-cli-watch-");
    private readonly string _marks = Directory.CreateTempSubdirectory("berth-cli-watch-marks-").FullName;

    /// <summary>Answers with www/body.txt as it is at each request ("none" while it is missing): what a sync changes, live.</summary>
    private const string LiveServer = """
        use IO::Socket::INET; $| = 1;
        my $s = IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => $ENV{PORT}, Listen => 128, ReuseAddr => 1) or die "listen: $!";
        while (my $c = $s->accept) { while (my $l = <$c>) { last if $l =~ /^\r?\n$/ }
          my $b = "none"; if (open(my $f, "<", "www/body.txt")) { $b = <$f>; chomp $b; close $f }
          print $c "HTTP/1.1 200 OK\r\nContent-Length: " . length($b) . "\r\nConnection: close\r\n\r\n$b"; close $c; }
        """;

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(Path.Combine(_app.Dir, "src"));
        Directory.CreateDirectory(Path.Combine(_app.Dir, "out"));
        await File.WriteAllTextAsync(Path.Combine(_app.Dir, "src", "body.txt"), "one\n");
        await File.WriteAllTextAsync(Path.Combine(_app.Dir, "out", "body.txt"), "one\n");
        await File.WriteAllTextAsync(Path.Combine(_app.Dir, "live.pl"), LiveServer);
        await File.WriteAllTextAsync(Path.Combine(_app.Dir, "start.pl"), BuiltBodyServer.Script);
    }

    public async Task DisposeAsync()
    {
        await _app.DisposeAsync();
        Directory.Delete(_marks, recursive: true);
    }

    private Task WriteSpecAsync(string web) => _app.WriteSpecAsync("watchloop", web);

    /// <summary>Brings web up with both replicas Ready: two replicas of the Perl server <paramref name="script"/> with the one
    /// watch rule <paramref name="rule"/>.</summary>
    private async Task UpTwoWatchedReplicasAsync(string script, string rule)
    {
        await WriteSpecAsync($"""
                run: [perl, {script}]
                replicas: 2
                develop:
                  watch:
                    - {rule}
            """);
        await _app.Cli.UpDetachedAsync(ready: 2);
    }

    private async Task<BerthProcess> StartWatchAsync(string ready)
    {
        var watch = _app.Cli.Start("watch");
        await Poll.UntilAsync(() => watch.ErrLines.Any(l => l.StartsWith(ready, StringComparison.Ordinal)) || watch.HasExited, TimeSpan.FromMinutes(2),
            $"'berth watch' printing '{ready}'");
        Assert.False(watch.HasExited, watch.Err);
        return watch;
    }

    /// <summary>Whether a process is still there: /proc/PID exists and it is not a zombie waiting for its parent.</summary>
    private static bool Alive(int pid) =>
        File.Exists($"/proc/{pid}/stat") && ReadStat(pid) is { } stat && stat[(stat.LastIndexOf(')') + 2)..].FirstOrDefault() != 'Z';

    private static string? ReadStat(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/stat");
        }
        catch (IOException)
        {
            return null;
        }
    }

    private async Task<(int Parent, int Child)> BuildPidsAsync(string what)
    {
        var (parent, child) = (Path.Combine(_marks, "parent"), Path.Combine(_marks, "child"));
        await Poll.UntilAsync(() => File.Exists(parent) && File.Exists(child) && File.ReadAllText(parent).Trim().Length > 0 && File.ReadAllText(child).Trim().Length > 0,
            TimeSpan.FromMinutes(2), what);
        return (int.Parse(File.ReadAllText(parent).Trim()), int.Parse(File.ReadAllText(child).Trim()));
    }

    /// <summary>A build that, while src/body.txt says "slow", leaves a child sleeping and waits for it (its pids in the marks folder).</summary>
    private string SlowBuild => $"""
            build:
              command: [sh, -c, "if grep -q slow src/body.txt; then sleep 600 & echo $$! > {_marks}/child; echo $$$$ > {_marks}/parent; wait; fi; cp src/body.txt out/body.txt"]
        """;

    [Fact]
    public async Task Watch_SyncRule_CopiesIntoTheWorkingDirWithoutARestartIgnoringWhatItShould()
    {
        await UpTwoWatchedReplicasAsync("live.pl", """{action: sync, path: ./src, target: www, ignore: ["*.tmp"], initial_sync: true}""");
        Assert.Equal("none", await _app.GetAsync());
        var before = (await _app.Cli.PsAsync()).Select(r => $"{r.GetProperty("id").GetString()}:{r.GetProperty("pid")}").Order().ToList();

        await using var watch = await StartWatchAsync("berth: web: initial sync: ");
        Assert.Contains($"berth: watching {_app.Dir}/src for web (sync → {_app.Dir}/www)", watch.ErrLines);
        Assert.Contains($"berth: web: initial sync: synced 1 file into {_app.Dir}/www", watch.ErrLines);
        Assert.Equal("one", await _app.GetAsync());

        // A burst (an editor writing several files): one sync for all of them; the ignored file and the editor's swap file stay out.
        await File.WriteAllTextAsync(Path.Combine(_app.Dir, "src", "scratch.tmp"), "x");
        await File.WriteAllTextAsync(Path.Combine(_app.Dir, "src", ".body.txt.swp"), "x");
        // The two real changes land as an editor's atomic saves do (written beside, renamed in), back to back: written one
        // after the other with async writes, a loaded CI machine could pause the test longer than the watch's 300 ms quiet
        // period between them, and the one burst became two syncs.
        var staged = Directory.CreateTempSubdirectory("berth-watch-stage-").FullName;
        await File.WriteAllTextAsync(Path.Combine(staged, "a.txt"), "a");
        await File.WriteAllTextAsync(Path.Combine(staged, "body.txt"), "two\n");
        File.Move(Path.Combine(staged, "a.txt"), Path.Combine(_app.Dir, "src", "a.txt"));
        File.Move(Path.Combine(staged, "body.txt"), Path.Combine(_app.Dir, "src", "body.txt"), overwrite: true);
        Directory.Delete(staged);
        await Poll.UntilAsync(async () => await _app.GetAsync() == "two", TimeSpan.FromMinutes(1), $"the synced body answering; berth printed:\n{watch.Err}");

        // The sync's line is printed once its copies are done, so it can trail the new body by a moment.
        await Poll.UntilAsync(() => watch.ErrLines.Any(l => l.StartsWith("berth: changed: ", StringComparison.Ordinal)), TimeSpan.FromSeconds(30), $"the sync's line; berth printed:\n{watch.Err}");
        Assert.Single(watch.ErrLines, l => l.StartsWith("berth: changed: src/a.txt, src/body.txt; web: synced 2 files into " + _app.Dir + "/www (", StringComparison.Ordinal));
        Assert.False(File.Exists(Path.Combine(_app.Dir, "www", "scratch.tmp")));
        Assert.False(File.Exists(Path.Combine(_app.Dir, "www", ".body.txt.swp")));
        Assert.Equal("a", await File.ReadAllTextAsync(Path.Combine(_app.Dir, "www", "a.txt")));
        var after = (await _app.Cli.PsAsync()).Select(r => $"{r.GetProperty("id").GetString()}:{r.GetProperty("pid")}").Order().ToList();
        Assert.Equal(before, after); // the same replicas, the same processes: sync restarts nothing

        // A deleted file is deleted in the target too.
        File.Delete(Path.Combine(_app.Dir, "src", "a.txt"));
        await Poll.UntilAsync(() => !File.Exists(Path.Combine(_app.Dir, "www", "a.txt")), TimeSpan.FromMinutes(1), $"www/a.txt deleted; berth printed:\n{watch.Err}");

        await watch.InterruptAsync();
        Assert.Equal(ExitCodes.Cancelled, (await watch.WaitAsync(TimeSpan.FromSeconds(60), "Ctrl-C to end the watch")).Code);
    }

    [Fact]
    public async Task Watch_SyncRestartRule_RollsTheReplicasWithNoFailedRequest()
    {
        await UpTwoWatchedReplicasAsync("start.pl", "{action: sync+restart, path: ./src, target: out}");
        await using var watch = await StartWatchAsync("berth: watching ");
        Assert.Equal("one", await _app.GetAsync());

        await using var load = LoopbackLoad.Start(_app.Port, new LoopbackLoadOptions { Clients = 2, MaxTime = TimeSpan.FromMinutes(3), MaxRequests = 50_000 });
        await load.MoreAsync(20);
        await File.WriteAllTextAsync(Path.Combine(_app.Dir, "src", "body.txt"), "two\n");
        await Poll.UntilAsync(async () => await _app.GetAsync() == "two", TimeSpan.FromMinutes(2), $"the restarted replicas answering the synced body; berth printed:\n{watch.Err}");
        var status = await _app.Cli.RunAsync("rollout", "status", "web", "--timeout", "2m");
        Assert.True(status.Code == 0, status.ToString());
        await load.MoreAsync(20);
        var result = await load.StopAsync();

        result.AssertNoneFailedUncapped();
        Assert.True(result.Bodies.ContainsKey("one") && result.Bodies.ContainsKey("two"), result.ToString());
        Assert.Contains(watch.ErrLines, l => l.StartsWith($"berth: changed: src/body.txt; web: synced 1 file into {_app.Dir}/out; restarting (", StringComparison.Ordinal));
        Assert.Contains("berth: web: restarting its replicas as its update policy rolls them (revision 2); 'berth rollout status web' follows it", watch.ErrLines);
        Assert.Equal(2, (await _app.Cli.PsAsync()).Count(r => r.GetProperty("revision").GetInt64() == 2 && r.GetProperty("phase").GetString() == "ready"));

        // A plain apply keeps the restart stamp: nothing rolls again.
        var apply = await _app.Cli.RunAsync("apply");
        Assert.Contains("berth: web: unchanged\n", apply.Err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Watch_ChangeDuringABuild_StopsThatBuildAndItsChildThenBuildsTheNewer()
    {
        await WriteSpecAsync(SlowBuild + """

                run: [perl, start.pl]
                develop:
                  watch:
                    - {action: rebuild, path: ./src}
            """);
        await _app.Cli.UpDetachedAsync(ready: 1);
        await using var watch = await StartWatchAsync("berth: watching ");

        await File.WriteAllTextAsync(Path.Combine(_app.Dir, "src", "body.txt"), "slow\n");
        var (parent, child) = await BuildPidsAsync($"the slow build started (its pids in {_marks}); berth printed:\n{watch.Err}");
        Assert.True(Alive(parent) && Alive(child));
        await File.WriteAllTextAsync(Path.Combine(_app.Dir, "src", "body.txt"), "three\n");

        await Poll.UntilAsync(() => !Alive(parent) && !Alive(child), TimeSpan.FromMinutes(1), $"the stopped build ({parent}) and its sleeping child ({child}) gone; berth printed:\n{watch.Err}");
        await Poll.UntilAsync(async () => await _app.GetAsync() == "three", TimeSpan.FromMinutes(2), $"the newer change built and answering; berth printed:\n{watch.Err}");
        Assert.Contains("berth: web: a newer change arrived; stopping this build to start again", watch.ErrLines);
        Assert.Single(watch.ErrLines, l => l == "berth: web: rolling out revision 2 (from 1); 'berth rollout status web' follows it");
    }

    [Fact]
    public async Task Up_CtrlCDuringTheBuild_EndsTheBuildAndTheChildItLeftSleeping()
    {
        await File.WriteAllTextAsync(Path.Combine(_app.Dir, "src", "body.txt"), "slow\n");
        await WriteSpecAsync(SlowBuild + """

                run: [perl, start.pl]
            """);
        await using var up = _app.Cli.Start("up");
        var (parent, child) = await BuildPidsAsync($"the build started by 'berth up' (its pids in {_marks})");
        Assert.True(Alive(parent) && Alive(child));

        await up.InterruptAsync();
        var ended = await up.WaitAsync(TimeSpan.FromSeconds(60), "Ctrl-C to end 'berth up' during its build");

        await Poll.UntilAsync(() => !Alive(parent) && !Alive(child), TimeSpan.FromSeconds(30), $"the build ({parent}) and its sleeping child ({child}) gone after Ctrl-C; berth printed:\n{ended}");
        Assert.Equal(ExitCodes.Cancelled, ended.Code);
        Assert.Matches(@"berth: build of web stopped after \d+\.\ds \(SIGINT\)\n", ended.Err);
    }
}
