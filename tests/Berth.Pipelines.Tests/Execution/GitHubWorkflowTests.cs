namespace Berth.Pipelines.Tests.Execution;

/// <summary>
/// Workflows as a GitHub user writes them, run for real (bash, processes, SQLite): each test states the behaviour
/// GitHub documents (workflow syntax, contexts, workflow commands) and checks Berth does the same.
/// </summary>
public sealed class GitHubWorkflowTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task RunAsync_FailedAncestorAboveAJobThatRanOnFailure_SkipsTheJobsBelowIt()
    {
        // Issue #20 bug 1: without if:, a job's implied success() looks at every ancestor, not only its needs.
        using var p = TestPipeline.Ci("""
            jobs:
              fail:
                steps: [{ run: exit 1 }]
              suc1:
                needs: fail
                if: success() || failure()
                steps: [{ run: 'true' }]
              next:
                needs: suc1
                steps: [{ run: touch next.ran }]
              cleanup:
                needs: next
                if: always()
                steps: [{ run: 'echo "next=${{ needs.next.result }}" > cleanup.txt' }]
              report:
                needs: suc1
                if: failure()
                steps: [{ run: 'echo "suc1=${{ needs.suc1.result }}" > report.txt' }]
            """);

        var result = await p.RunAsync();

        Assert.Equal(RunStatus.Failed, result.Status);
        Assert.Equal(
            new Dictionary<string, string> { ["fail"] = "failed", ["suc1"] = "succeeded", ["next"] = "skipped", ["cleanup"] = "succeeded", ["report"] = "succeeded" },
            p.Jobs(result.RunId));
        Assert.False(p.Exists("next.ran"));
        Assert.Equal("next=skipped\n", p.Read("cleanup.txt"));
        Assert.Equal("suc1=success\n", p.Read("report.txt"));
    }

    [Fact]
    public async Task RunAsync_StatusFunctionsAndStepsContext_AfterAFailedStep()
    {
        using var p = TestPipeline.OneJob("""
            - id: soft
              run: exit 4
              continue-on-error: true
            - id: hard
              run: exit 3
            - run: touch success.ran
              if: success()
            - run: touch plain.ran
            - run: 'echo "${{ job.status }} ${{ steps.hard.outcome }}/${{ steps.hard.conclusion }} ${{ steps.soft.outcome }}/${{ steps.soft.conclusion }}" > failure.txt'
              if: failure()
            - run: touch always.ran
              if: always()
            - run: touch cancelled.ran
              if: cancelled()
            """);

        var result = await p.RunAsync();

        Assert.Equal(RunStatus.Failed, result.Status);
        Assert.Equal(["failed", "failed", "skipped", "skipped", "succeeded", "succeeded", "skipped"], p.Steps(result.RunId).Select(s => s.Status));
        Assert.Equal("failure failure/failure failure/success\n", p.Read("failure.txt"));
        Assert.Equal((false, false, true, false), (p.Exists("success.ran"), p.Exists("plain.ran"), p.Exists("always.ran"), p.Exists("cancelled.ran")));
    }

    [Fact]
    public async Task RunAsync_CancelledDuringAStep_RunsOnlyCancelledAndAlwaysStepsWithinTheGrace()
    {
        using var p = TestPipeline.OneJob("""
            - run: sleep 60
            - run: touch next.ran
            - run: touch cancelled.ran
              if: cancelled()
            - run: touch always.ran
              if: always()
            - run: touch failure.ran
              if: failure()
            """);
        using var cts = new CancellationTokenSource();

        var run = p.RunAsync(cancellationToken: cts.Token);
        await UntilAsync(() => p.Steps(1).Any(s => s.Status == RunStatus.Running), "the first step to run");
        await cts.CancelAsync();
        var result = await run.WaitAsync(Deadline);

        Assert.Equal(RunStatus.Cancelled, result.Status);
        Assert.Equal((false, true, true, false), (p.Exists("next.ran"), p.Exists("cancelled.ran"), p.Exists("always.ran"), p.Exists("failure.ran")));
        Assert.Equal("cancelled", p.Jobs(result.RunId)["a"]);
    }

    [Fact]
    public async Task RunAsync_MatrixIncludeExcludeFailFast_CancelsTheOtherLegsAndSaysWhy()
    {
        using var p = TestPipeline.Ci("""
            max-parallel: 8
            jobs:
              test:
                strategy:
                  matrix:
                    os: [a, b]
                    v: ['1', '2']
                    exclude: [{ os: b, v: '2' }]
                    include:
                      - { os: a, v: '1', extra: x }   # extends the matching leg
                      - { os: c, v: '9' }             # adds a leg
                steps:
                  - run: |
                      echo "${{ matrix.os }}-${{ matrix.v }}-${{ matrix.extra }}-${{ strategy.job-total }}" > "leg-${{ matrix.os }}${{ matrix.v }}.txt"
                      if [ "${{ matrix.os }}" = b ]; then
                        # fail once the other legs run, so that fail-fast has legs to cancel
                        for i in $(seq 600); do [ -f leg-a1.txt ] && [ -f leg-a2.txt ] && [ -f leg-c9.txt ] && break; sleep 0.1; done
                        exit 1
                      fi
                      sleep 60
              all:
                strategy:
                  fail-fast: false
                  matrix: { n: ['1', '2'] }
                steps:
                  - run: '[ "${{ matrix.n }}" = 2 ] || exit 1'
            """);

        var result = await p.RunAsync().WaitAsync(Deadline);

        Assert.Equal(RunStatus.Failed, result.Status);
        using var store = p.Store();
        var jobs = store.GetJobs(result.RunId).ToDictionary(j => j.Key);
        Assert.Equal(["test (a, 1, x)", "test (a, 2)", "test (b, 1)", "test (c, 9)", "all (1)", "all (2)"], jobs.Keys);
        Assert.Equal("failed", jobs["test (b, 1)"].Status);
        foreach (var leg in new[] { "test (a, 1, x)", "test (a, 2)", "test (c, 9)" })
        {
            Assert.Equal(("cancelled", "cancelled: matrix job test (b, 1) failed (fail-fast)"), (jobs[leg].Status, jobs[leg].Message));
        }

        Assert.Equal("a-1-x-4\n", p.Read("leg-a1.txt"));
        Assert.Equal("c-9--4\n", p.Read("leg-c9.txt"));
        Assert.False(p.Exists("leg-b2.txt"));
        Assert.Equal(("failed", "succeeded"), (jobs["all (1)"].Status, jobs["all (2)"].Status));
    }

    [Fact]
    public async Task RunAsync_OutputsBetweenStepsAndJobs_IncludingAMatrixFromJson()
    {
        using var p = TestPipeline.Ci("""
            jobs:
              setup:
                outputs:
                  matrix: ${{ steps.m.outputs.json }}
                  greeting: ${{ steps.g.outputs.text }}
                steps:
                  - id: m
                    run: echo 'json={"n":[1,2],"include":[{"n":3,"label":"three"}]}' >> "$GITHUB_OUTPUT"
                  - id: g
                    run: |
                      {
                        echo "text<<EOF"
                        echo "hello"
                        echo "wörld 🚀"
                        echo "EOF"
                      } >> "$GITHUB_OUTPUT"
                  - run: printf '%s|' "${{ steps.g.outputs.text }}" "${{ steps.m.outputs.json != '' }}" > same-job.txt
              use:
                needs: setup
                strategy:
                  matrix: ${{ fromJSON(needs.setup.outputs.matrix) }}
                steps:
                  - run: printf '%s' "${{ matrix.n }}${{ matrix.label }}:${{ needs.setup.outputs.greeting }}" > "use-${{ matrix.n }}.txt"
            """);

        var result = await p.RunSucceededAsync().WaitAsync(Deadline);

        Assert.Equal("hello\nwörld 🚀|true|", p.Read("same-job.txt"));
        Assert.Equal("1:hello\nwörld 🚀", p.Read("use-1.txt"));
        Assert.Equal("2:hello\nwörld 🚀", p.Read("use-2.txt"));
        Assert.Equal("3three:hello\nwörld 🚀", p.Read("use-3.txt"));
        Assert.Equal(["setup", "use (1)", "use (2)", "use (3, three)"], p.Jobs(result.RunId).Keys);
    }

    [Fact]
    public async Task RunAsync_GitHubEnvAndPath_ReachTheStepsAfter()
    {
        using var p = TestPipeline.OneJob("""
            - run: |
                echo "FOO=bar" >> "$GITHUB_ENV"
                printf 'ML<<END\nline 1\nline 2\nEND\n' >> "$GITHUB_ENV"
                mkdir -p tools
                printf '#!/bin/sh\necho from-tools\n' > tools/hello && chmod +x tools/hello
                echo "$PWD/tools" >> "$GITHUB_PATH"
                [ -z "$FOO" ]
            - run: |
                printf '%s|%s|%s' "$FOO" "$ML" "$(hello)" > env.txt
            - run: touch expression.saw
              if: env.FOO == 'bar' && contains(env.ML, 'line 2')
            """);

        var result = await p.RunSucceededAsync().WaitAsync(Deadline);

        Assert.Equal("bar|line 1\nline 2|from-tools", p.Read("env.txt"));
        Assert.True(p.Exists("expression.saw"));
    }

    [Fact]
    public async Task RunAsync_DefaultsRun_ShellAndWorkingDirectoryPerPipelineAndJob()
    {
        using var p = TestPipeline.Ci("""
            defaults:
              run: { shell: sh, working-directory: sub }
            jobs:
              a:
                steps:
                  - run: 'if [ -n "$BASH_VERSION" ]; then echo bash; else echo sh; fi > shell.txt; pwd > dir.txt'
                  - run: 'echo "$BASH_VERSION" | grep -q . && echo bash > explicit.txt'
                    shell: bash
                  - run: [sh, -c, 'pwd > argv-dir.txt']
              b:
                defaults:
                  run: { working-directory: other }
                steps:
                  - run: 'pwd > dir.txt'
              c:
                defaults:
                  run: { shell: 'perl {0}' }
                steps:
                  - run: 'open(my $f, ">", "perl.txt"); print $f "perl";'
                    working-directory: .
            """);
        p.Write("sub/.keep", "");
        p.Write("other/.keep", "");

        var result = await p.RunSucceededAsync().WaitAsync(Deadline);

        Assert.Equal("sh\n", p.Read("sub/shell.txt"));
        Assert.Equal(Path.Combine(p.Directory, "sub") + "\n", p.Read("sub/dir.txt"));
        Assert.Equal("bash\n", p.Read("sub/explicit.txt"));
        Assert.Equal(Path.Combine(p.Directory, "sub") + "\n", p.Read("sub/argv-dir.txt"));
        Assert.Equal(Path.Combine(p.Directory, "other") + "\n", p.Read("other/dir.txt"));
        Assert.Equal("perl", p.Read("perl.txt"));
    }

    [Fact]
    public async Task RunAsync_DefaultShell_IsBashWithPipesGlobsAndTilde()
    {
        using var p = TestPipeline.OneJob("""
            - run: |
                X=xyz
                echo $X | grep y > pipe.txt
                echo *.glob > glob.txt
                echo ~ > home.txt
                [[ "$BASH_VERSION" != "" ]] && echo yes > bash.txt
                exit 0
                touch never.txt
            - run: |
                false
                touch after-false.txt
              continue-on-error: true
            """);
        p.Write("one.glob", "");
        p.Write("two.glob", "");

        var result = await p.RunSucceededAsync().WaitAsync(Deadline);

        Assert.Equal("xyz\n", p.Read("pipe.txt"));
        Assert.Equal("one.glob two.glob\n", p.Read("glob.txt"));
        Assert.Equal(Environment.GetEnvironmentVariable("HOME") + "\n", p.Read("home.txt"));
        Assert.Equal("yes\n", p.Read("bash.txt"));
        Assert.False(p.Exists("never.txt"));
        Assert.False(p.Exists("after-false.txt"), "bash -e stops at the first failing command, as GitHub's default shell");
    }

    [Fact]
    public async Task RunAsync_ConcurrencyGroup_SecondRunWaitsForTheFirst()
    {
        using var p = TestPipeline.Ci("""
            concurrency: deploy-${{ github.ref }}
            jobs:
              a:
                steps:
                  - run: |
                      echo start >> order.txt
                      sleep 1
                      echo end >> order.txt
            """);

        var first = p.RunAsync(request: new RunRequest { Branch = "main" });
        await UntilAsync(() => p.Steps(1).Any(s => s.Status == RunStatus.Running), "run 1 to start its step");
        var second = p.RunAsync(request: new RunRequest { Branch = "main" });
        var results = await Task.WhenAll(first, second).WaitAsync(Deadline);

        Assert.Equal([RunStatus.Succeeded, RunStatus.Succeeded], results.Select(r => r.Status));
        Assert.Equal("start\nend\nstart\nend\n", p.Read("order.txt"));
        Assert.Contains(p.Logs(2), l => l.StartsWith("concurrency group 'deploy-refs/heads/main': waiting for run 1", StringComparison.Ordinal));
    }

    [Fact]
    public async Task RunAsync_ConcurrencyCancelInProgress_CancelsTheRunningJob()
    {
        using var p = TestPipeline.Ci("""
            jobs:
              deploy:
                concurrency: { group: 'prod', cancel-in-progress: "${{ inputs.force }}" }
                steps:
                  - run: |
                      echo "${{ github.run_id }}" >> started.txt
                      sleep 60
                    if: inputs.force != true
                  - run: echo "${{ github.run_id }}" >> finished.txt
            inputs:
              force: { type: boolean, default: 'false' }
            """);
        var pipeline = p.Parse();

        var first = p.RunAsync(request: new RunRequest { Inputs = PipelineInputs.Resolve(pipeline, new Dictionary<string, string>(), out _) });
        await UntilAsync(() => p.Steps(1).Any(s => s.Status == RunStatus.Running), "run 1 to start its step");
        var second = p.RunAsync(request: new RunRequest { Inputs = PipelineInputs.Resolve(pipeline, new Dictionary<string, string> { ["force"] = "true" }, out var errors) });
        var results = await Task.WhenAll(first, second).WaitAsync(Deadline);

        Assert.Empty(errors);
        Assert.Equal([RunStatus.Cancelled, RunStatus.Succeeded], results.Select(r => r.Status));
        using var store = p.Store();
        var cancelled = store.GetJobs(1).Single();
        Assert.Equal(("cancelled", "cancelled by a newer job of concurrency group 'prod' (cancel-in-progress)"), (cancelled.Status, cancelled.Message));
        Assert.Equal("2\n", p.Read("finished.txt"));
    }

    [Fact]
    public async Task RunAsync_ContinueOnErrorExpressions_ExperimentalLegFailsWithoutFailingTheRun()
    {
        using var p = TestPipeline.Ci("""
            env: { SOFT: 'yes' }
            jobs:
              test:
                continue-on-error: ${{ matrix.experimental == 'true' }}
                strategy:
                  matrix: { experimental: ['true', 'false'] }
                steps:
                  - run: |
                      if [ "${{ matrix.experimental }}" = true ]; then exit 1; fi
                      sleep 2; touch stable.done
              soft:
                steps:
                  - run: exit 2
                    continue-on-error: ${{ env.SOFT == 'yes' }}
                  - run: touch soft.after
            """);

        var result = await p.RunSucceededAsync().WaitAsync(Deadline);

        var jobs = p.Jobs(result.RunId);
        Assert.Equal(("failed", "succeeded", "succeeded"), (jobs["test (true)"], jobs["test (false)"], jobs["soft"]));
        Assert.True(p.Exists("stable.done"), "the stable leg must not be cancelled by the experimental one");
        Assert.True(p.Exists("soft.after"));
    }

    [Fact]
    public async Task RunAsync_WorkflowCommands_MaskGroupAnnotateAndSummarize()
    {
        using var p = TestPipeline.OneJob("""
            - run: |
                echo "::add-mask::s3cr3t-value"
                echo "token is s3cr3t-value"
                echo "::group::Build ☃"
                echo inside
                echo "::endgroup::"
                echo "::error file=app.js,line=10,col=5,title=Lint::Missing semicolon"
                echo "::warning::careful"
                echo "### Done 🚀" >> "$GITHUB_STEP_SUMMARY"
                echo "::stop-commands::pause"
                echo "::error::not a command now"
                echo "::pause::"
                echo "::notice::back"
            """);

        var result = await p.RunSucceededAsync().WaitAsync(Deadline);

        using var store = p.Store();
        var logs = store.GetLogs(result.RunId, "a").Select(l => (l.Stream, l.Text)).ToList();
        Assert.Contains(("out", "token is ***"), logs);
        Assert.DoesNotContain(logs, l => l.Text.Contains("s3cr3t-value", StringComparison.Ordinal));
        var group = logs.FindIndex(l => l == ("group", "Build ☃"));
        Assert.True(group >= 0, string.Join("\n", logs));
        Assert.Equal([("out", "inside"), ("endgroup", "")], logs.Skip(group + 1).Take(2));
        Assert.Contains(("out", "::error::not a command now"), logs);
        var annotations = store.GetAnnotations(result.RunId).Select(a => (a.Level, a.File, a.Line, a.Column, a.Title, a.Message)).ToList();
        Assert.Equal(
            [
                ("error", "app.js", 10, 5, "Lint", "Missing semicolon"),
                ("warning", null, null, null, null, "careful"),
                ("notice", null, null, null, null, "back"),
                ("summary", null, null, null, null, "### Done 🚀"),
            ],
            annotations);
    }

    [Fact]
    public async Task RunAsync_Contexts_GitHubRunnerInputsVarsAndCaseInsensitiveNames()
    {
        using var p = TestPipeline.Ci("""
            inputs:
              who: { default: world }
              count: { type: number, default: '2' }
            jobs:
              a:
                name: greet ${{ inputs.who }}
                timeout-minutes: ${{ inputs.count }}
                steps:
                  - name: say ${{ Inputs.WHO }}
                    run: |
                      printf '%s|' "${{ github.event_name }}" "${{ github.ref }}" "${{ github.ref_name }}" "${{ github.run_id }}" \
                        "${{ github.workspace == env.GITHUB_WORKSPACE }}" "${{ runner.os }}" "${{ runner.temp != '' }}" \
                        "${{ inputs.who }}" "${{ inputs.count > 1 }}" "${{ vars.REGION }}" "${{ VARS.region }}" \
                        "${{ format('{0}-{1}', github.job, strategy.job-total) }}" "${{ toJSON(inputs) == toJSON(github.event.inputs) }}" \
                        "$GITHUB_REF_NAME" "$RUNNER_OS" > ctx.txt
            """);
        var inputs = PipelineInputs.Resolve(p.Parse(), new Dictionary<string, string> { ["who"] = "Mona" }, out var errors);

        var result = await p.RunAsync(request: new RunRequest { Branch = "main", Inputs = inputs, Vars = new Dictionary<string, string> { ["REGION"] = "eu" } }).WaitAsync(Deadline);

        Assert.Empty(errors);
        Assert.Equal(RunStatus.Succeeded, result.Status);
        Assert.Equal($"workflow_dispatch|refs/heads/main|main|{result.RunId}|true|Linux|true|Mona|true|eu|eu|a-1|true|main|Linux|", p.Read("ctx.txt"));
        using var store = p.Store();
        Assert.Equal("say Mona", store.GetSteps(result.RunId).Single().Name);
    }

    [Fact]
    public void PipelineInputs_UnknownMissingAndMistyped_AreAllReported()
    {
        using var p = TestPipeline.Ci("""
            inputs:
              who: { required: true }
              flag: { type: boolean }
            jobs:
              a: { steps: [{ run: 'true' }] }
            """);

        PipelineInputs.Resolve(p.Parse(), new Dictionary<string, string> { ["flag"] = "yes", ["nope"] = "1" }, out var errors);

        Assert.Equal(
            [
                "--input nope: not an input of pipeline ci; inputs: who, flag",
                "input who is required; pass --input who=VALUE",
                "input flag is a boolean; give true or false, got 'yes'",
            ],
            errors);
    }

    [Fact]
    public async Task RunAsync_LongConditionChain_EvaluatesOnceAndRuns()
    {
        // Issue #20 bug 2: 40 || terms never finished; a 10,000-term condition must run at once.
        var chain = string.Join(" || ", Enumerable.Repeat("env.NOPE == 'x'", 10_000)) + " || env.GO == 'yes'";
        using var p = TestPipeline.Ci($$"""
            env: { GO: 'yes' }
            jobs:
              a:
                if: {{chain}}
                steps: [{ run: touch ran }]
            """);

        var result = await p.RunSucceededAsync().WaitAsync(Deadline);

        Assert.True(p.Exists("ran"));
    }

    private static async Task UntilAsync(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow + Deadline;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"waited {Deadline.TotalSeconds}s for {what}");
            }

            await Task.Delay(25);
        }
    }
}
