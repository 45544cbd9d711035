
namespace Berth.Pipelines.Tests.Execution;

public class PipelineEngineTests
{
    [Fact]
    public async Task RunAsync_Needs_RunsJobsInDependencyOrderAndIndependentOnesAtOnce()
    {
        // a and b can only both finish if they run at the same time: each waits for the other's file.
        using var p = TestPipeline.Ci("""
            jobs:
              a:
                steps:
                  - run: touch a.started
                  - run: "for i in $(seq 600); do [ -f b.started ] && exit 0; sleep 0.05; done; exit 1"
                    shell: bash
              b:
                steps:
                  - run: touch b.started
                  - run: "for i in $(seq 600); do [ -f a.started ] && exit 0; sleep 0.05; done; exit 1"
                    shell: bash
              c:
                needs: [a, b]
                steps:
                  - run: "test -f a.started && test -f b.started && echo c-ran > c.txt"
                    shell: sh
            """);

        var result = await p.RunSucceededAsync();

        Assert.Equal("c-ran\n", p.Read("c.txt"));
        Assert.Equal(new Dictionary<string, string> { ["a"] = "succeeded", ["b"] = "succeeded", ["c"] = "succeeded" }, p.Jobs(result.RunId));
        using var store = p.Store();
        Assert.Equal(["", "", "a,b"], store.GetJobs(result.RunId).OrderBy(j => j.Key, StringComparer.Ordinal).Select(j => string.Join(',', j.Needs)));
    }

    [Fact]
    public async Task RunAsync_MaxParallelOne_RunsOneJobAtATime()
    {
        using var p = TestPipeline.Ci("""
            max-parallel: 1
            jobs:
              a:
                steps:
                  - run: "mkdir lock && sleep 0.2 && rmdir lock"
                    shell: sh
              b:
                steps:
                  - run: "mkdir lock && sleep 0.2 && rmdir lock"
                    shell: sh
            """);

        await p.RunSucceededAsync();
    }

    [Fact]
    public async Task RunAsync_FailedStep_SkipsLaterStepsAndDependentsButRunsFailureHandlers()
    {
        using var p = TestPipeline.Ci("""
            jobs:
              build:
                steps:
                  - run: sh -c "echo boom >&2; exit 3"
                  - run: touch not-reached
                  - run: touch on-failure
                    if: failure()
                  - run: touch always
                    if: always()
              deploy:
                needs: build
                steps:
                  - run: touch deployed
              notify:
                needs: build
                if: failure()
                steps:
                  - run: touch notified
            """);

        var result = await p.RunAsync();

        Assert.Equal(RunStatus.Failed, result.Status);
        var steps = p.Steps(result.RunId).Where(s => s.JobKey == "build").ToList();
        Assert.Equal(["failed", "skipped", "succeeded", "succeeded"], steps.Select(s => s.Status));
        Assert.Equal(3, steps[0].ExitCode);
        Assert.Contains("boom", p.Logs(result.RunId, "build"));
        Assert.False(p.Exists("not-reached"));
        Assert.True(p.Exists("on-failure") && p.Exists("always") && p.Exists("notified"));
        Assert.False(p.Exists("deployed"));
        Assert.Equal("skipped", p.Jobs(result.RunId)["deploy"]);
    }

    [Fact]
    public async Task RunAsync_Matrix_ExpandsIncludeExcludeAndPassesValues()
    {
        using var p = TestPipeline.Ci("""
            jobs:
              test:
                strategy:
                  matrix:
                    config: [Debug, Release]
                    arch: [x64, arm64]
                    exclude: [{ config: Debug, arch: arm64 }]
                    include: [{ config: Release, arch: x64, extra: yes }, { config: Checked, arch: x64 }]
                env: { CONFIG: "${{ matrix.config }}" }
                steps:
                  - run: "touch out-$CONFIG-${{ matrix.arch }}${{ matrix.extra }}"
                    shell: sh
            """);

        var result = await p.RunSucceededAsync();

        Assert.Equal(["test (Checked, x64)", "test (Debug, x64)", "test (Release, arm64)", "test (Release, x64, yes)"], p.Jobs(result.RunId).Keys.Order());
        var files = Directory.GetFiles(p.Directory, "out-*").Select(Path.GetFileName).Order();
        Assert.Equal(["out-Checked-x64", "out-Debug-x64", "out-Release-arm64", "out-Release-x64yes"], files);
    }

    [Fact]
    public async Task RunAsync_MatrixFailFast_CancelsTheOtherCombinations()
    {
        using var p = TestPipeline.Ci("""
            jobs:
              test:
                strategy:
                  matrix: { n: [fail, slow] }
                steps:
                  - run: "if [ ${{ matrix.n }} = fail ]; then exit 1; fi; touch slow.started; sleep 300"
                    shell: bash
            """);

        var result = await p.RunAsync();

        Assert.Equal(RunStatus.Failed, result.Status);
        var jobs = p.Jobs(result.RunId);
        Assert.Equal("failed", jobs["test (fail)"]);
        Assert.Equal("cancelled", jobs["test (slow)"]);
    }

    [Fact]
    public async Task RunAsync_RetryOnExitCode_RetriesOnlyThatCode()
    {
        using var p = TestPipeline.Ci("""
            jobs:
              flaky:
                steps:
                  - run: "echo x >> tries; [ $(wc -l < tries) -ge 3 ] || exit 75"
                    shell: bash
                    retry: { attempts: 5, on-exit-codes: [75] }
              broken:
                steps:
                  - run: "echo x >> broken-tries; exit 2"
                    shell: bash
                    retry: { attempts: 5, on-exit-codes: [75] }
            """);

        var result = await p.RunAsync();

        var steps = p.Steps(result.RunId).ToDictionary(s => s.JobKey);
        Assert.Equal(("succeeded", 3), (steps["flaky"].Status, steps["flaky"].Attempts));
        Assert.Equal(("failed", 1, 2), (steps["broken"].Status, steps["broken"].Attempts, steps["broken"].ExitCode!.Value));
        Assert.Equal(3, p.Read("tries").Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);
    }

    [Fact]
    public async Task RunAsync_StepTimeout_StopsTheStepAndContinueOnErrorKeepsTheJobGoing()
    {
        using var p = TestPipeline.Ci("""
            jobs:
              slow:
                steps:
                  - run: sleep 300
                    timeout: 1s
                    continue-on-error: true
                  - run: touch after-timeout
            """);

        var result = await p.RunSucceededAsync();

        var steps = p.Steps(result.RunId);
        Assert.Equal("timed-out", steps[0].Status);
        Assert.Equal("timed out after 1s; continue-on-error", steps[0].Summary);
        Assert.True(p.Exists("after-timeout"));
    }

    [Fact]
    public async Task RunAsync_IfOverEnvAndBranch_DecidesPerStep()
    {
        using var p = TestPipeline.Ci("""
            env: { TARGET: prod }
            jobs:
              ship:
                steps:
                  - run: touch on-main
                    if: branch == 'main' && env.TARGET == 'prod'
                  - run: touch on-dev
                    if: ${{ branch == 'dev' }}
            """);

        var result = await p.RunSucceededAsync(request: new RunRequest { Branch = "main" });

        Assert.True(p.Exists("on-main"));
        Assert.False(p.Exists("on-dev"));
        Assert.Equal(["succeeded", "skipped"], p.Steps(result.RunId).Select(s => s.Status));
    }

    [Fact]
    public async Task RunAsync_Artifacts_ReachJobsThatNeedThemInTheirOwnWorkspace()
    {
        using var p = TestPipeline.Ci("""
            jobs:
              build:
                workspace: isolated
                artifacts: [dist]
                steps:
                  - run: "mkdir -p dist/bin && echo built > dist/bin/app.txt"
                    shell: sh
              test:
                needs: build
                workspace: isolated
                steps:
                  - run: "cp dist/bin/app.txt @DIR@/received.txt"
                    shell: sh
            """);

        var result = await p.RunSucceededAsync();

        Assert.Equal("built\n", File.ReadAllText(Path.Combine(p.Directory, "received.txt")));
        Assert.False(p.Exists("dist/bin/app.txt"));
    }

    [Fact]
    public async Task RunAsync_MissingArtifact_FailsTheJobWithTheFix()
    {
        using var p = TestPipeline.Ci("""
            jobs:
              build:
                artifacts: [dist/*.zip]
                steps: [{ run: 'true' }]
            """);

        var result = await p.RunAsync();

        Assert.Equal(RunStatus.Failed, result.Status);
        using var store = p.Store();
        Assert.Equal($"artifact 'dist/*.zip' matched no files in {p.Directory}; did the job write it?", store.GetJobs(result.RunId)[0].Message);
    }

    [Fact]
    public async Task RunAsync_Cache_SavedAfterSuccessAndRestoredByKeyOrRestoreKey()
    {
        using var p = TestPipeline.Ci("""
            jobs:
              build:
                workspace: isolated
                cache:
                  key: deps-${{ hashFiles('lock.txt') }}
                  restore-keys: [deps-]
                  paths: [deps]
                steps:
                  - run: "cp @DIR@/lock.txt . 2>/dev/null || true; if [ -f deps/pkg ]; then echo restored; else mkdir -p deps && echo downloaded > deps/pkg; fi"
                    shell: sh
            """);
        p.Write("lock.txt", "v1");

        var first = await p.RunAsync();
        var second = await p.RunAsync();

        Assert.Equal(RunStatus.Succeeded, first.Status);
        Assert.Contains("cache miss for key deps-", string.Join("\n", p.Logs(first.RunId)));
        Assert.Contains("cache saved for key deps-", string.Join("\n", p.Logs(first.RunId)));
        Assert.Contains("restored", p.Logs(second.RunId));
        Assert.Contains(p.Logs(second.RunId), l => l.StartsWith("cache hit for key deps-", StringComparison.Ordinal));
    }

    [Fact]
    public async Task RunAsync_Secrets_MaskedInLogsWholeSplitAcrossWritesAndLines()
    {
        const string secret = "pa55w0rd-XYZ-123";
        using var p = TestPipeline.Ci("""
            secrets: [API_KEY]
            jobs:
              leak:
                env: { API_KEY: "${{ secrets.API_KEY }}" }
                steps:
                  - run: |
                      echo "whole: $API_KEY"
                      printf 'split: %s' "${API_KEY:0:5}"; sleep 0.2; printf '%s\n' "${API_KEY:5}"
                      printf 'lines: %s\n%s\n' "${API_KEY:0:7}" "${API_KEY:7}"
                      echo "stderr: $API_KEY" >&2
                      exit 1
                    shell: bash
            """);

        var result = await p.RunAsync(request: new RunRequest { Secrets = new Dictionary<string, string> { ["API_KEY"] = secret } });

        var logs = p.Logs(result.RunId, "leak");
        Assert.Contains("whole: ***", logs);
        Assert.Contains("split: ***", logs);
        Assert.Contains("lines: ***", logs);
        Assert.Contains("***", logs);
        Assert.Contains("stderr: ***", logs);
        using var store = p.Store();
        var everything = string.Join("\n", logs.Concat(store.GetSteps(result.RunId).Select(s => s.Summary)).Concat(store.GetJobs(result.RunId).Select(j => j.Message)));
        Assert.DoesNotContain(secret[..5], everything, StringComparison.Ordinal);
        Assert.DoesNotContain(secret[7..], everything, StringComparison.Ordinal);
        var db = File.ReadAllBytes(Path.Combine(p.State, "pipelines.db"));
        Assert.DoesNotContain(secret, System.Text.Encoding.UTF8.GetString(db), StringComparison.Ordinal);
    }

    [Fact]
    public async Task RerunFailed_RunsOnlyFailedJobsAndDependents()
    {
        using var p = TestPipeline.Ci("""
            jobs:
              build:
                workspace: isolated
                artifacts: [out.txt]
                steps:
                  - run: "echo build >> @DIR@/build-count; echo artifact > out.txt"
                    shell: sh
              lint:
                steps:
                  - run: "echo lint >> lint-count"
                    shell: sh
              test:
                needs: build
                workspace: isolated
                steps:
                  - run: "cat out.txt && test -f @DIR@/fixed"
                    shell: sh
              deploy:
                needs: test
                steps:
                  - run: "echo deploy >> deploy-count"
                    shell: sh
            """);

        var first = await p.RunAsync();
        p.Write("fixed", "");
        var rerun = await p.RunAsync(request: new RunRequest { RerunFailedOf = first.RunId });

        Assert.Equal(RunStatus.Failed, first.Status);
        Assert.Equal(new Dictionary<string, string> { ["build"] = "succeeded", ["lint"] = "succeeded", ["test"] = "failed", ["deploy"] = "skipped" }, p.Jobs(first.RunId));
        Assert.Equal(RunStatus.Succeeded, rerun.Status);
        Assert.Equal(new Dictionary<string, string> { ["build"] = "reused", ["lint"] = "reused", ["test"] = "succeeded", ["deploy"] = "succeeded" }, p.Jobs(rerun.RunId));
        Assert.Equal("build\n", p.Read("build-count"));
        Assert.Equal("lint\n", p.Read("lint-count"));
        Assert.Equal("deploy\n", p.Read("deploy-count"));
        Assert.Contains("artifact", p.Logs(rerun.RunId, "test"));
        using var store = p.Store();
        Assert.Equal(("rerun", (long?)first.RunId), (store.GetRun(rerun.RunId)!.Trigger, store.GetRun(rerun.RunId)!.RerunOf));
    }

    [Fact]
    public async Task RunAsync_MissingProgram_FailsWithClearMessage()
    {
        using var p = TestPipeline.OneJob("""
            - run: [no-such-program-berth, --flag]
            - run: no-such-program-berth --flag
              if: always()
            """);

        var result = await p.RunAsync();

        Assert.Equal(RunStatus.Failed, result.Status);
        Assert.Equal("command 'no-such-program-berth' not found on PATH; install it or give its full path", p.Steps(result.RunId)[0].Summary);
        // A string is a bash script, as on GitHub: bash says what is missing and exits 127.
        Assert.Equal("exit code 127", p.Steps(result.RunId)[1].Summary);
        Assert.Contains(p.Logs(result.RunId), l => l.Contains("no-such-program-berth: command not found", StringComparison.Ordinal));
    }

    [Fact]
    public async Task RunAsync_WorkingDirectoryAndEnv_LayerJobOverPipelineAndStepOverJob()
    {
        using var p = TestPipeline.Ci("""
            env: { A: pipeline, B: pipeline, C: pipeline }
            jobs:
              build:
                working-directory: sub
                env: { B: job, C: job }
                steps:
                  - run: "pwd > where.txt; echo $A-$B-$C-$D > env.txt"
                    shell: sh
                    env: { C: step, D: "${{ env.B }}" }
                  - run: "pwd > where.txt"
                    shell: sh
                    working-directory: deeper
            """);
        p.Write("sub/deeper/.keep", "");

        var result = await p.RunSucceededAsync();

        Assert.Equal(Path.Combine(p.Directory, "sub") + "\n", p.Read("sub/where.txt"));
        Assert.Equal(Path.Combine(p.Directory, "sub", "deeper") + "\n", p.Read("sub/deeper/where.txt"));
        Assert.Equal("pipeline-job-step-job\n", p.Read("sub/env.txt"));
    }

    [Fact]
    public async Task RunAsync_JobContinueOnError_DependentsStillRun()
    {
        using var p = TestPipeline.Ci("""
            jobs:
              optional:
                continue-on-error: true
                steps: [{ run: 'false' }]
              next:
                needs: optional
                steps: [{ run: touch next-ran }]
            """);

        var result = await p.RunSucceededAsync();

        Assert.Equal("failed", p.Jobs(result.RunId)["optional"]);
        Assert.True(p.Exists("next-ran"));
    }
}
