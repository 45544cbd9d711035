
namespace Berth.Rollouts.Tests.Acceptance;

/// <summary>The real <c>berth</c> program: a detached control plane over real processes; <c>berth apply</c> starts a rollout,
/// the control plane is killed with SIGKILL mid-rollout and started again, and the rollout finishes with nothing lost.</summary>
[Collection("real processes")]
public sealed class CliRolloutTests : IDisposable
{
    private readonly AppFolder _app = new("berth-cli-rollout-");

    public CliRolloutTests()
    {
        Spec("V: \"1\"");
    }

    public void Dispose() => _app.Dispose();

    private void Spec(string env)
    {
        _app.WriteSpec(TestHttpServer.App("clirollout", environment: env, extra: "update: {progress_deadline: 10s}"));
    }

    private CliResult Berth(params string[] args) => _app.Cli.Run(args);

    private CliResult Ok(params string[] args) => _app.Cli.OkAsync(args).GetAwaiter().GetResult();

    private List<EventRecord> Events()
    {
        using var store = StateStore.Open(_app.State);
        return [.. store.ListEvents(0, int.MaxValue)];
    }

    private List<long> Revisions()
    {
        using var store = StateStore.Open(_app.State);
        return [.. store.ListRevisions().Select(r => r.Number).Order()];
    }

    [Fact]
    public async Task Apply_ControlPlaneKilled9MidRollout_RestartFinishesRolloutAndLosesNoRevisionOrEvent()
    {
        Ok("up", "-d");
        Ok("rollout", "status", "web", "--timeout", "90s");

        Spec("V: \"2\", DELAY: \"2\"");
        var apply = Ok("apply");
        Assert.Contains("web: rolling out revision 2 (from 1)", apply.Err, StringComparison.Ordinal);
        await Poll.UntilAsync(() => Events().Any(e => e.Type == "scheduled" && e.Message.Length > 0 && Events().Any(x => x.Type == "rollout-started")),
            TimeSpan.FromSeconds(60), "the rollout under way");

        using (var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(_app.Path, ".berth", "api.json"))))
        {
            Process.GetProcessById(doc.RootElement.GetProperty("pid").GetInt32()).Kill();
        }

        await Poll.UntilAsync(() => Berth("ps").Code != 0, TimeSpan.FromSeconds(30), "the control plane gone");
        var before = Events();
        Assert.True(Revisions().SequenceEqual([1L, 2L]), $"revisions {string.Join(",", Revisions())}; events:\n{string.Join("\n", before.Select(e => $"{e.Type} {e.Replica} {e.Message}"))}");
        Assert.DoesNotContain(before, e => e.Type == "rollout-complete" && e.Message.StartsWith("revision 2", StringComparison.Ordinal));

        Ok("up", "-d");
        // The rollout finishes: a new replica caught mid-start by the kill is started again cleanly (issue #5: its
        // unrecorded earlier run used to hold its port and have its SIGKILL read as the new run's exit, a crash loop).
        var status = Berth("rollout", "status", "web", "--timeout", "120s");
        Assert.True(status.Code == 0 && status.Out.Contains("web revision 2: complete: 2/2 replicas of revision 2 ready", StringComparison.Ordinal),
            $"rollout status after the restart exited {status.Code}: {status.Out}{status.Err}\nevents:\n{string.Join("\n", Events().Select(e => $"{e.Time:HH:mm:ss.fff} {e.Type} {e.Replica} {e.Message}"))}");
        const long good = 2;

        var after = Events();
        Assert.Equal(before.Select(e => (e.Id, e.Type, e.Message)), after.Take(before.Count).Select(e => (e.Id, e.Type, e.Message)));
        Assert.Equal([1L, 2L], Revisions().Take(2));
        await Poll.UntilAsync(() => JsonDocument.Parse(Ok("ps", "-o", "json").Out).RootElement.EnumerateArray()
            .Count(r => r.GetProperty("revision").GetInt64() == good && r.GetProperty("phase").GetString() == "ready") == 2
            && JsonDocument.Parse(Ok("ps", "-o", "json").Out).RootElement.GetArrayLength() == 2, TimeSpan.FromSeconds(120), $"2 Ready replicas of revision {good}");

        // A broken version through the CLI: status waits, then reports the automatic rollback and fails.
        Spec("V: \"3\", SICK: \"/\"");
        Ok("apply");
        var broken = Berth("rollout", "status", "web", "--timeout", "120s");
        Assert.Equal(3, broken.Code);
        Assert.Matches($@"web revision {good}: rolled-back: rolled back to revision {good}: new replica web-[0-9a-f]{{5}} not ready within the progress deadline of 10s: readiness probe failing: HTTP 500", broken.Out);
        var history = JsonDocument.Parse(Ok("rollout", "history", "web", "-o", "json").Out).RootElement.EnumerateArray().ToList();
        Assert.Equal(good, history.Single(h => h.GetProperty("current").GetBoolean()).GetProperty("revision").GetInt64());
        Assert.True(history[^1].GetProperty("revision").GetInt64() > good, "the broken revision is in the history");
    }
}
