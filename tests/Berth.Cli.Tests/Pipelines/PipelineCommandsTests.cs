
namespace Berth.Cli.Tests.Pipelines;

/// <summary>The real berth binary against real files, processes and the SQLite run store.</summary>
public sealed class PipelineCommandsTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("berth-cli-pipelines-").FullName;

    public void Dispose()
    {
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    [Fact]
    public async Task Run_BadDefinition_ReportsEveryErrorWithPositionAndRunsNothing()
    {
        Write("berth.yaml", """
            pipelines:
              ci:
                jobs:
                  build:
                    steps: [{ run: touch ran }]
                  test:
                    needs: [biuld]
                    if: branch == main'
                    steps: [{ run: touch ran }]
            """);

        var (code, _, stderr) = await BerthAsync("pipeline", "run", "ci");

        Assert.Equal(ExitCodes.InvalidSpec, code);
        var file = Path.Combine(_dir, "berth.yaml");
        Assert.Contains($"{file}:8:27: error: pipelines.ci.jobs.test.if: bad expression: string is not closed; end it with ' (write '' for a quote inside)", stderr, StringComparison.Ordinal);
        Assert.Contains($"{file}:7:17: error: pipelines.ci.jobs.test.needs: unknown job 'biuld'; did you mean 'build'? jobs in this pipeline: build, test", stderr, StringComparison.Ordinal);
        Assert.Contains("2 error(s)", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(_dir, "ran")));
    }

    [Fact]
    public async Task Run_ThenShowLogsAndList_ReportTheRunAsStored()
    {
        Write("berth.yaml", """
            pipelines:
              ci:
                jobs:
                  build:
                    steps:
                      - run: echo hello from build
                  test:
                    needs: build
                    steps:
                      - run: sh -c "echo failing; exit 4"
            """);

        var (code, stdout, stderr) = await BerthAsync("pipeline", "run", "ci", "-o", "json");
        var show = await BerthAsync("pipeline", "show", "1", "-o", "json");
        var logs = await BerthAsync("pipeline", "logs", "1", "build");
        var list = await BerthAsync("pipeline", "list");

        Assert.Equal(ExitCodes.Failed, code);
        Assert.Contains("[build] hello from build", stderr, StringComparison.Ordinal);
        using var result = JsonDocument.Parse(stdout);
        Assert.Equal("failed", result.RootElement.GetProperty("status").GetString());
        using var json = JsonDocument.Parse(show.Stdout);
        var jobs = json.RootElement.GetProperty("jobs");
        Assert.Equal("succeeded", jobs[0].GetProperty("status").GetString());
        Assert.Equal(4, jobs[1].GetProperty("steps")[0].GetProperty("exitCode").GetInt32());
        Assert.Equal("[build] hello from build\n", logs.Stdout);
        Assert.Contains("1      ci               failed", list.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Run_InputsVarsFoldsAndAnnotations_ThroughTheCli()
    {
        Write("berth.yaml", """
            pipelines:
              ci:
                inputs:
                  who: { default: world }
                jobs:
                  greet:
                    steps:
                      - name: greet ${{ inputs.who }} 🚀
                        run: |
                          echo "::group::Greeting"
                          echo "hello ${{ inputs.who }} in ${{ vars.REGION }}"
                          echo "::endgroup::"
                          echo "::warning file=app.cs,line=3::check ${{ inputs.who }}"
            """);
        var vars = Path.Combine(Path.GetTempPath(), $"berth-vars-{Guid.NewGuid():N}.env");
        File.WriteAllText(vars, "REGION=eu\n");
        try
        {
            var (code, _, stderr) = await BerthAsync("pipeline", "run", "ci", "--input", "who=Mona", "--vars-file", vars);
            var show = await BerthAsync("pipeline", "show", "1");
            var logs = await BerthAsync("pipeline", "logs", "1");
            var bad = await BerthAsync("pipeline", "run", "ci", "--input", "nobody=1");

            Assert.True(code == 0, stderr);
            Assert.Contains("greet Mona 🚀", show.Stdout, StringComparison.Ordinal);
            Assert.Contains("  warning [greet] app.cs:3: check Mona", show.Stdout, StringComparison.Ordinal);
            Assert.Equal("[greet] ▼ Greeting\n[greet]   hello Mona in eu\n[greet] warning: check Mona (app.cs:3)\n", logs.Stdout);
            Assert.Equal(ExitCodes.InvalidSpec, bad.Code);
            Assert.Contains("berth: --input nobody: not an input of pipeline ci; inputs: who", bad.Stderr, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(vars);
        }
    }

    [Fact]
    public async Task Cancel_FromAnotherProcess_EndsTheRunAndItsProcessTree()
    {
        Write("berth.yaml", LongPipeline);
        await using var run = Start("pipeline", "run", "ci");
        var child = await StepChildAsync();

        var cancel = await BerthAsync("pipeline", "cancel", "1");
        var ended = await run.WaitAsync(TimeSpan.FromSeconds(90), "the cancelled run to exit");

        Assert.Equal(ExitCodes.Ok, cancel.Code);
        Assert.Equal(ExitCodes.Cancelled, ended.Code);
        await Poll.UntilAsync(() => !Alive(child), TimeSpan.FromSeconds(30), $"child {child} of the step to be gone");
        var show = await BerthAsync("pipeline", "show", "1", "-o", "json");
        using var json = JsonDocument.Parse(show.Stdout);
        Assert.Equal("cancelled", json.RootElement.GetProperty("status").GetString());
    }

    [Fact]
    public async Task Run_CtrlC_CancelsTheRunAndEndsItsSteps()
    {
        Write("berth.yaml", LongPipeline);
        await using var run = Start("pipeline", "run", "ci");
        var child = await StepChildAsync();

        await run.InterruptAsync();

        var ended = await run.WaitAsync(TimeSpan.FromSeconds(90), "the run to exit after Ctrl-C");
        Assert.Equal(ExitCodes.Cancelled, ended.Code);
        await Poll.UntilAsync(() => !Alive(child), TimeSpan.FromSeconds(30), $"child {child} of the step to be gone");
    }

    [Fact]
    public async Task RerunFailed_AfterFix_RunsOnlyTheFailedJob()
    {
        Write("berth.yaml", """
            pipelines:
              ci:
                jobs:
                  build:
                    steps: [{ run: "sh -c 'echo b >> build.count'" }]
                  test:
                    needs: build
                    steps: [{ run: test -f fixed }]
            """);

        var first = await BerthAsync("pipeline", "run", "ci");
        Write("fixed", "");
        var rerun = await BerthAsync("pipeline", "rerun", "1", "--failed");
        var withoutFlag = await BerthAsync("pipeline", "rerun", "1");

        Assert.Equal(ExitCodes.Failed, first.Code);
        Assert.Equal(ExitCodes.Ok, rerun.Code);
        Assert.Equal("b\n", File.ReadAllText(Path.Combine(_dir, "build.count")));
        Assert.Contains("[build] reused: reused from run 1", rerun.Stderr, StringComparison.Ordinal);
        Assert.Equal(ExitCodes.Usage, withoutFlag.Code);
    }

    [Fact]
    public async Task Run_MissingSecret_FailsBeforeRunningAndSecretsFileInRepoIsRefused()
    {
        Write("berth.yaml", """
            pipelines:
              ci:
                secrets: [DEPLOY_TOKEN]
                jobs:
                  a:
                    steps: [{ run: touch ran }]
            """);
        Write("secrets.env", "DEPLOY_TOKEN=abc\n");
        Directory.CreateDirectory(Path.Combine(_dir, ".git"));

        var missing = await BerthAsync("pipeline", "run", "ci");
        var inRepo = await BerthAsync("pipeline", "run", "ci", "--secrets-file", "secrets.env");

        Assert.Equal(ExitCodes.InvalidSpec, missing.Code);
        Assert.Contains("secret DEPLOY_TOKEN is not set; export DEPLOY_TOKEN=... or add DEPLOY_TOKEN=... to a secrets file", missing.Stderr, StringComparison.Ordinal);
        Assert.Contains($"secrets file {Path.Combine(_dir, "secrets.env")} is inside the repository {_dir}; move it outside", inRepo.Stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(_dir, "ran")));
    }

    [Fact]
    public async Task Show_UnknownRun_SaysWhereItLooked()
    {
        Write("berth.yaml", "pipelines: {}\n");

        var (code, _, stderr) = await BerthAsync("pipeline", "show", "42");

        Assert.Equal(ExitCodes.NotFound, code);
        Assert.Equal($"berth: no run 42 in {Path.Combine(_dir, ".berth")}; see 'berth pipeline list'\n", stderr);
    }

    // Pipeline ci: one step that starts a long sleep in the background and waits for it, writing the sleep's pid to child.pid.
    private const string LongPipeline = """
        pipelines:
          ci:
            jobs:
              long:
                steps:
                  - run: |
                      sleep 300 & echo $! > child.pid
                      wait
                    shell: bash
        """;

    // The pid of LongPipeline's background sleep, once the step has started it.
    private async Task<int> StepChildAsync()
    {
        var pidFile = Path.Combine(_dir, "child.pid");
        await Poll.UntilAsync(() => File.Exists(pidFile), TimeSpan.FromSeconds(90), "the step to start");
        return int.Parse(File.ReadAllText(pidFile).Trim(), CultureInfo.InvariantCulture);
    }

    private void Write(string relative, string text) => File.WriteAllText(Path.Combine(_dir, relative), text);

    private static bool Alive(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[(stat.LastIndexOf(')') + 2)] != 'Z';
        }
        catch (IOException)
        {
            return false;
        }
    }

    /// <summary>The real berth in the test folder, without the machine's DEPLOY_TOKEN (the secret the tests declare).</summary>
    private BerthCli Cli => new(_dir) { Environment = { ["DEPLOY_TOKEN"] = null } };

    private BerthProcess Start(params string[] args) => Cli.Start(args);

    private async Task<(int Code, string Stdout, string Stderr)> BerthAsync(params string[] args)
    {
        var (code, stdout, stderr) = await Cli.RunAsync(args);
        return (code, stdout, stderr);
    }
}
