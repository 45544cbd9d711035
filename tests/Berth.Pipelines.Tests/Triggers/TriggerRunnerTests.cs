
namespace Berth.Pipelines.Tests.Triggers;

public class TriggerRunnerTests
{
    [Fact]
    public async Task RunAsync_CronSchedule_FiresAtTheScheduledTimeNotBefore()
    {
        using var p = TestPipeline.Ci("""
            on: { schedule: ['*/5 * * * *'] }
            jobs: { a: { steps: [{ run: 'true' }] } }
            """);
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 1, 1, 0, 4, 59, TimeSpan.Zero));
        var fired = new ConcurrentQueue<(string Trigger, DateTimeOffset At)>();
        using var cts = new CancellationTokenSource();
        var runner = new TriggerRunner(p.Parse(), (trigger, _) =>
        {
            fired.Enqueue((trigger, time.GetUtcNow()));
            return Task.CompletedTask;
        }, time, new TriggerOptions { Watch = false });
        var loop = runner.RunAsync(cts.Token);

        await Poll.UntilAsync(() =>
        {
            if (fired.IsEmpty)
            {
                time.Advance(TimeSpan.FromSeconds(1));
            }

            return !fired.IsEmpty;
        }, TimeSpan.FromSeconds(90), "the */5 schedule to fire");
        await cts.CancelAsync();
        await loop;

        // At 00:05 — or, should the loop have started late on a busy machine, at a later multiple of 5 minutes;
        // never in between and never before.
        var (trigger, at) = fired.First();
        Assert.Equal("schedule", trigger);
        Assert.True(at >= new DateTimeOffset(2026, 1, 1, 0, 5, 0, TimeSpan.Zero), $"fired at {at:HH:mm:ss}, before 00:05");
        Assert.True(at.Minute % 5 == 0 && at.Second < 30, $"fired at {at:HH:mm:ss}, not at a */5 minute");
    }

    [Fact]
    public async Task RunAsync_WatchedFileChanges_StartsOneRunForABurst()
    {
        using var p = TestPipeline.Ci("""
            on: { watch: ['src/**/*.cs'] }
            jobs: { a: { steps: [{ run: 'true' }] } }
            """);
        Directory.CreateDirectory(Path.Combine(p.Directory, "src"));
        var fired = new ConcurrentQueue<string>();
        using var cts = new CancellationTokenSource();
        var runner = new TriggerRunner(p.Parse(), (trigger, _) =>
        {
            fired.Enqueue(trigger);
            return Task.CompletedTask;
        }, TimeProvider.System, new TriggerOptions { Debounce = TimeSpan.FromSeconds(1) });
        var loop = runner.RunAsync(cts.Token);

        // Unmatched files never trigger; the watched one does, once for the burst of writes.
        p.Write("notes.txt", "x");
        p.Write("src/App.cs", "class App {}");
        p.Write("src/App.cs", "class App { }");
        await Poll.UntilAsync(() => !fired.IsEmpty, TimeSpan.FromSeconds(60), "a watch-triggered run");
        await cts.CancelAsync();
        await loop;

        Assert.Equal(["watch"], fired.ToArray());
    }

    [Theory]
    [InlineData("app/**/*.cs|app/*.csproj", "app")]
    [InlineData("app/*.cs|docs/api/*.md|docs/*.md", "app|docs")]
    [InlineData("app/Program.cs|missing/deep/*.cs", ".")]
    [InlineData("app/gone/**/*.cs", "app")]
    [InlineData("**/*.cs|app/*.cs", ".")]
    [InlineData("*.md", ".")]
    [InlineData("../elsewhere/*.cs", ".")]
    public void FoldersFor_WatchPatterns_TheirFixedLeadingFoldersThatExistAndNothingBeside(string patterns, string expected)
    {
        // The shop's on.watch (app/**/*.cs, app/*.csproj) no longer watches the whole folder: .berth gets a write per log line.
        var root = Directory.CreateTempSubdirectory("berth-trigger-folders-").FullName;
        try
        {
            Directory.CreateDirectory(Path.Combine(root, "app"));
            Directory.CreateDirectory(Path.Combine(root, "docs", "api"));
            Directory.CreateDirectory(Path.Combine(root, ".berth", "replicas"));

            var folders = TriggerRunner.FoldersFor(root, patterns.Split('|'));

            Assert.Equal(expected.Split('|').Select(f => f == "." ? root : Path.Combine(root, f)), folders);
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }
}
