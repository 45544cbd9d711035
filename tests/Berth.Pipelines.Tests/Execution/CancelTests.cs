
namespace Berth.Pipelines.Tests.Execution;

public class CancelTests
{
    private const string TreeScript = """
        sleep 300 & echo $! > c1.pid
        bash -c 'sleep 300 & wait' & echo $! > c2.pid
        echo $$ > leader.pid
        wait
        """;

    [Fact]
    public async Task Cancel_FromAnotherStoreConnection_StopsTheWholeProcessTreeWithinGrace()
    {
        using var p = TestPipeline.Ci($$"""
            jobs:
              long:
                steps:
                  - run: |
            {{Indent(TreeScript)}}
                    shell: bash
              after:
                needs: long
                steps: [{ run: touch after }]
            """);
        var options = p.Options with { KillGrace = TimeSpan.FromSeconds(60) };
        long runId = 0;
        var run = p.RunAsync(request: new RunRequest { Started = id => runId = id }, options: options);
        await Poll.UntilAsync(() => p.Exists("leader.pid") && p.Exists("c1.pid") && p.Exists("c2.pid"), TimeSpan.FromSeconds(60), "the step to start its process tree");
        var group = int.Parse(p.Read("leader.pid").Trim(), CultureInfo.InvariantCulture);
        Assert.NotEmpty(LiveMembers(group));

        var cancelledAt = DateTime.UtcNow;
        using (var other = p.Store())
        {
            other.RequestCancel(runId);
        }

        var result = await run.WaitAsync(TimeSpan.FromSeconds(120));

        // SIGTERM ended the tree: well within the 60s grace, no SIGKILL needed.
        Assert.True(DateTime.UtcNow - cancelledAt < TimeSpan.FromSeconds(60), "the tree should stop on SIGTERM, before the grace period ends");
        Assert.Equal(RunStatus.Cancelled, result.Status);
        Assert.Empty(LiveMembers(group));
        Assert.Equal(new Dictionary<string, string> { ["long"] = "cancelled", ["after"] = "cancelled" }, p.Jobs(result.RunId));
        Assert.False(p.Exists("after"));
    }

    [Fact]
    public async Task Cancel_ProcessIgnoringSigterm_IsKilledWhenGraceEnds()
    {
        using var p = TestPipeline.Ci("""
            jobs:
              stubborn:
                steps:
                  - run: |
                      trap '' TERM
                      sleep 300 & echo $! > child.pid
                      echo $$ > leader.pid
                      wait
                    shell: bash
            """);
        using var cts = new CancellationTokenSource();
        var run = p.RunAsync(options: p.Options with { KillGrace = TimeSpan.FromSeconds(1) }, cancellationToken: cts.Token);
        await Poll.UntilAsync(() => p.Exists("leader.pid") && p.Exists("child.pid"), TimeSpan.FromSeconds(60), "the step to start");
        var group = int.Parse(p.Read("leader.pid").Trim(), CultureInfo.InvariantCulture);

        await cts.CancelAsync();
        var result = await run.WaitAsync(TimeSpan.FromSeconds(120));

        Assert.Equal(RunStatus.Cancelled, result.Status);
        Assert.Empty(LiveMembers(group));
    }

    [Fact]
    public async Task Timeout_Job_StopsItsStepsAndReportsTimedOut()
    {
        using var p = TestPipeline.Ci("""
            jobs:
              slow:
                timeout: 1s
                steps:
                  - run: sleep 300
            """);

        var result = await p.RunAsync();

        Assert.Equal(RunStatus.Failed, result.Status);
        using var store = p.Store();
        var job = store.GetJobs(result.RunId)[0];
        Assert.Equal(("timed-out", "job timed out after 1s"), (job.Status, job.Message));
    }

    private static string Indent(string script) =>
        string.Join("\n", script.Split('\n').Select(l => "          " + l));

    /// <summary>Processes of the group that are not zombies (a zombie has ended; only its parent has not reaped it yet).</summary>
    private static List<int> LiveMembers(int group) =>
        [.. ProcFs.Processes().Where(p => p.State != 'Z' && p.Group == group).Select(p => p.Pid)];
}
