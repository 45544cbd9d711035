using Berth.Testing.ControlPlanes;

namespace Berth.EndToEnd.Tests;

/// <summary>Pipelines with <c>on.schedule</c> and <c>on.watch</c> run while the control plane serves: runs go to the app's
/// <c>.berth/pipelines.db</c>, start and end show as control-plane events.</summary>
[Collection(RealProcesses.Name)]
public sealed class PipelineTriggerTests() : AppFolderTest("berth-e2e-triggers-")
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(90);
    // Writes the app's berth.yaml: one idle service and the pipelines: block given (indented as under pipelines:); returns its path.
    private string WriteSpec(string pipelines) => App.WriteSpec(Spec(pipelines));

    private string Spec(string pipeline) => $$"""
        name: {{App.Name}}
        services:
          idle:
            run: [sleep, "600"]
            stop_grace_period: 2s
        pipelines:
        {{pipeline}}
        """;

    [Fact]
    public async Task ServingControlPlane_CronScheduleComes_RunsThePipelineAtThatTimeAndRearmsOnlyWhenAnApplyChangesTriggers()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 1, 1, 0, 4, 30, TimeSpan.Zero));
        await using var served = await ServeAsync("""
              nightly:
                on: { schedule: ['*/5 * * * *'] }
                jobs:
                  stamp:
                    steps:
                      - run: echo "run $BERTH_RUN_ID on $BERTH_PIPELINE" >> stamps.txt
                        shell: sh
            """, time);
        var (spec, state, store, plane) = (served.Spec, served.ControlPlane.Directory, served.ControlPlane.Store, served.ControlPlane.Plane);
        await Poll.UntilAsync(() => Events(store, PipelineEvents.Armed).Count == 1, Wait, "the schedule armed");
        Assert.Equal("pipeline nightly runs on cron '*/5 * * * *' (UTC)", Events(store, PipelineEvents.Armed)[0].Message);

        // 00:04:59 is not yet a */5 minute; 00:05:00 is.
        time.Advance(TimeSpan.FromSeconds(29));
        Assert.Empty(Runs(state));
        time.Advance(TimeSpan.FromSeconds(1));
        await Poll.UntilAsync(() => Events(store, PipelineEvents.Succeeded).Count == 1, Wait,
            $"the scheduled run to succeed; events: {string.Join(" | ", store.ListEvents().Where(e => e.Type.StartsWith("pipeline-", StringComparison.Ordinal)).Select(e => $"{e.Type} {e.Message}"))}");

        var run = Assert.Single(Runs(state));
        Assert.Equal(("nightly", "schedule", RunStatus.Succeeded), (run.Pipeline, run.Trigger, run.Status));
        Assert.Equal(new DateTimeOffset(2026, 1, 1, 0, 5, 0, TimeSpan.Zero), run.Created);
        Assert.Equal($"run {run.Id} on nightly\n", await File.ReadAllTextAsync(App.File("stamps.txt")));
        Assert.Equal($"run {run.Id} of pipeline nightly started on schedule; 'berth pipeline logs {run.Id}' follows it", Events(store, PipelineEvents.Started).Single().Message);
        Assert.Equal($"run {run.Id} of pipeline nightly succeeded; 'berth pipeline show {run.Id}' has the details", Events(store, PipelineEvents.Succeeded).Single().Message);

        // A revision that leaves the triggers alone (a scale, a deploy step's patch) keeps them armed as they are;
        // an apply that changes the schedule re-arms it.
        await plane.ScaleAsync("idle", 2, CancellationToken.None);
        await File.WriteAllTextAsync(spec, (await File.ReadAllTextAsync(spec)).Replace("*/5 * * * *", "0 3 * * *", StringComparison.Ordinal));
        await plane.ApplyAsync(SpecLoader.LoadFile(spec).Application!, "apply", CancellationToken.None);
        await Poll.UntilAsync(() => Events(store, PipelineEvents.Armed).Count >= 2, Wait, "the new schedule armed");
        Assert.Equal(["pipeline nightly runs on cron '*/5 * * * *' (UTC)", "pipeline nightly runs on cron '0 3 * * *' (UTC)"],
            Events(store, PipelineEvents.Armed).Select(e => e.Message));

        time.Advance(TimeSpan.FromMinutes(5));
        Assert.Single(Runs(state));
    }

    [Fact]
    public async Task ServingControlPlane_PipelineDefinitionInvalid_ReportsWhereAndArmsNothing()
    {
        await using var served = await ServeAsync("""
              nightly:
                on: { schedule: ['*/5 * * * *'] }
                jobs:
                  stamp:
                    needs: nope
                    steps:
                      - run: "true"
            """);
        var (spec, store) = (served.Spec, served.ControlPlane.Store);
        await Poll.UntilAsync(() => Events(store, PipelineEvents.Invalid).Count == 1, Wait, "the invalid pipelines reported");

        var message = Events(store, PipelineEvents.Invalid).Single().Message;
        Assert.StartsWith($"1 error(s) in the pipelines of {spec}, none runs on triggers until they are fixed and applied: {spec}:", message, StringComparison.Ordinal);
        Assert.Contains("nope", message, StringComparison.Ordinal);
        Assert.Empty(Events(store, PipelineEvents.Armed));
    }

    [Fact]
    public async Task BerthUpDetached_WatchedFileChanges_RunsThePipelineIntoTheAppsRunStore()
    {
        WriteSpec("""
              build:
                on: { watch: ['src/**'] }
                jobs:
                  copy:
                    steps:
                      - run: cp src/input.txt built.txt
            """);
        Directory.CreateDirectory(App.File("src"));
        var berth = App.Cli;
        var up = await berth.RunAsync("up", "-d");
        Assert.True(up.Code == 0, $"berth up -d: {up}");
        await Poll.UntilAsync(async () => (await berth.EventsAsync()).Any(e => e.GetProperty("type").GetString() == PipelineEvents.Armed), Wait, "the watch armed");
        Assert.Empty(Runs(berth.State));

        // Written whole and moved in, as editors save: one change, the content complete when it is seen.
        await File.WriteAllTextAsync(App.File("input.tmp"), "v1");
        File.Move(App.File("input.tmp"), App.File("src/input.txt"));
        await Poll.UntilAsync(() => Runs(berth.State) is [{ Status: var s }] && RunStatus.IsFinal(s), Wait, "a watch-triggered run to end");

        var run = Assert.Single(Runs(berth.State));
        Assert.Equal(("build", "watch", RunStatus.Succeeded), (run.Pipeline, run.Trigger, run.Status));
        Assert.Equal("v1", await File.ReadAllTextAsync(App.File("built.txt")));
        var list = await berth.RunAsync("pipeline", "list", "-o", "json");
        Assert.Contains("\"trigger\": \"watch\"", list.Out, StringComparison.Ordinal);
        await Poll.UntilAsync(async () => (await berth.EventsAsync()).Any(e => e.GetProperty("type").GetString() == PipelineEvents.Succeeded), Wait, "the pipeline-succeeded event");
        var pipelineEvents = (await berth.EventsAsync()).Select(e => e.GetProperty("type").GetString()).Where(t => t!.StartsWith("pipeline-", StringComparison.Ordinal));
        Assert.Equal([PipelineEvents.Armed, PipelineEvents.Started, PipelineEvents.Succeeded], pipelineEvents);
    }

    /// <summary>Writes the spec with <paramref name="pipelines"/> (see <see cref="WriteSpec"/>), starts a control plane on real
    /// processes keeping its state in the app's own .berth as berth up does, and its API server, which runs the pipelines'
    /// triggers (on <paramref name="time"/>, default the system clock), and applies the spec; disposing takes it all down.</summary>
    private async Task<ServedApp> ServeAsync(string pipelines, TimeProvider? time = null)
    {
        var spec = WriteSpec(pipelines);
        var cp = await ProcessPlane.StartInAsync(App.State);
        ApiServer? api = null;
        try
        {
            var triggers = new PipelineTriggerOptions { Time = time ?? TimeProvider.System };
            api = await ApiServer.StartAsync(cp.Plane, new ApiServerOptions { StateDirectory = cp.Directory, PipelineTriggers = triggers }, CancellationToken.None);
            var loaded = SpecLoader.LoadFile(spec);
            Assert.True(loaded.Succeeded, string.Join("\n", loaded.Diagnostics));
            await cp.Plane.ApplyAsync(loaded.Application!, "up", CancellationToken.None);
            return new ServedApp(spec, cp, api);
        }
        catch
        {
            if (api is not null)
            {
                await api.DisposeAsync();
            }

            await cp.DisposeAsync();
            throw;
        }
    }

    /// <summary>The spec's path, the control plane serving it and its API server (disposed first, as it was started last).</summary>
    private sealed record ServedApp(string Spec, ProcessPlane ControlPlane, ApiServer Api) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            await Api.DisposeAsync();
            await ControlPlane.DisposeAsync();
        }
    }

    private static List<EventRecord> Events(StateStore store, string type) => [.. store.ListEvents(0, int.MaxValue).Where(e => e.Type == type)];

    private static IReadOnlyList<RunRecord> Runs(string state)
    {
        var db = Path.Combine(state, "pipelines.db");
        if (!File.Exists(db))
        {
            return [];
        }

        using var runs = new RunStore(db);
        return runs.ListRuns(100);
    }
}
