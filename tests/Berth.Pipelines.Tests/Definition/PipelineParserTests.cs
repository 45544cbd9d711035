
namespace Berth.Pipelines.Tests.Definition;

public class PipelineParserTests
{
    private static List<string> Errors(string yaml) =>
        PipelineParser.ParseText(yaml, "/repo/berth.yaml").Diagnostics.Select(d => d.ToString()).ToList();

    [Fact]
    public void ParseText_FullPipeline_ReadsEveryPart()
    {
        const string yaml = """
            name: shop
            services: {}
            pipelines:
              ci:
                on:
                  watch: [src/**]
                  schedule: ['0 3 * * *']
                env: { CONFIGURATION: Release }
                secrets: [NUGET_TOKEN]
                max-parallel: 3
                jobs:
                  build:
                    artifacts: [out]
                    cache:
                      key: nuget-${{ hashFiles('**/packages.lock.json') }}
                      restore-keys: [nuget-]
                      paths: [.nuget]
                    steps:
                      - run: [dotnet, build, -c, "${{ env.CONFIGURATION }}"]
                        timeout: 5m
                        retry: { attempts: 3, on-exit-codes: [75] }
                  test:
                    needs: build
                    strategy:
                      matrix:
                        config: [Debug, Release]
                        include: [{ config: Release, coverage: 'true' }]
                      fail-fast: false
                    steps:
                      - test: dotnet test -c ${{ matrix.config }} --logger trx
                        results: '**/*.trx'
                      - run: |
                          echo one
                          echo two
                        shell: bash
                        if: failure() && matrix.config == 'Debug'
                  ship:
                    needs: [test]
                    steps:
                      - approve: Ship it?
                      - deploy: { service: api, image: 'shop/api:${{ branch }}', timeout: 2m }
            """;

        var result = PipelineParser.ParseText(yaml, "/repo/berth.yaml");

        Assert.True(result.Succeeded, string.Join("\n", result.Diagnostics));
        var ci = Assert.Single(result.Pipelines);
        Assert.Equal(new SourcePosition("/repo/berth.yaml", 4, 3), ci.Position);
        Assert.Equal(["src/**"], ci.On.WatchPaths.ToArray());
        Assert.Equal(["0 3 * * *"], ci.On.Schedules.ToArray());
        Assert.Equal(3, ci.MaxParallel);
        Assert.Equal(["build", "test", "ship"], ci.Jobs.Select(j => j.Id));
        var build = ci.Jobs[0];
        var context = new Berth.Pipelines.Expressions.ExpressionContext { Env = new Dictionary<string, string> { ["CONFIGURATION"] = "Release" } };
        Assert.Equal(["dotnet", "build", "-c", "Release"], Assert.IsType<RunStep>(build.Steps[0]).Command.Argv.Select(a => a.Render(context)));
        Assert.Equal(TimeSpan.FromMinutes(5), build.Steps[0].Timeout.Constant);
        Assert.Equal(3, build.Steps[0].Retry.Attempts);
        Assert.Equal([75], build.Steps[0].Retry.OnExitCodes.ToArray());
        var test = ci.Jobs[1];
        Assert.Equal(["build"], test.Needs.Select(n => n.Job));
        Assert.False(test.Matrix!.FailFast.Constant);
        Assert.IsType<TestStep>(test.Steps[0]);
        Assert.Equal("bash", Assert.IsType<RunStep>(test.Steps[1]).Command.Shell);
        Assert.Equal(["approve", "deploy"], ci.Jobs[2].Steps.Select(s => s.Kind));
        Assert.Equal("Ship it?", Assert.IsType<ApproveStep>(ci.Jobs[2].Steps[0]).Message);
    }

    [Fact]
    public void ParseText_UnknownJobInNeeds_ReportsFileLineColumn()
    {
        const string yaml = """
            pipelines:
              ci:
                jobs:
                  build:
                    steps: [{ run: make }]
                  test:
                    needs: [build, lint]
                    steps: [{ run: make test }]
            """;

        Assert.Equal(["/repo/berth.yaml:7:24: error: pipelines.ci.jobs.test.needs: unknown job 'lint'; jobs in this pipeline: build, test"], Errors(yaml));
    }

    [Fact]
    public void ParseText_Cycle_ReportsTheCycleWhereItCloses()
    {
        const string yaml = """
            pipelines:
              ci:
                jobs:
                  a:
                    needs: c
                    steps: [{ run: 'true' }]
                  b:
                    needs: a
                    steps: [{ run: 'true' }]
                  c:
                    needs: [b]
                    steps: [{ run: 'true' }]
            """;

        Assert.Equal(["/repo/berth.yaml:8:16: error: pipelines.ci.jobs.b.needs: needs form a cycle: a -> c -> b -> a; remove one of these needs"], Errors(yaml));
    }

    [Fact]
    public void ParseText_BadExpressions_ReportColumnOfTheFault()
    {
        const string yaml = """
            pipelines:
              ci:
                jobs:
                  build:
                    if: branch = 'main'
                    steps:
                      - run: echo ${{ matrix.os }}
                      - run: echo hi
                        if: ${{ sucess() }}
                      - run: "echo ${{ env.X == }}"
            """;

        Assert.Equal(
            [
                "/repo/berth.yaml:5:20: error: pipelines.ci.jobs.build.if: bad expression: '=' is not an operator; compare with ==",
                "/repo/berth.yaml:7:27: error: pipelines.ci.jobs.build.steps[0].run: bad expression: matrix.os is used but this job has no matrix; add strategy.matrix.os",
                "/repo/berth.yaml:9:21: error: pipelines.ci.jobs.build.steps[1].if: bad expression: unknown function sucess(); did you mean success()? known: always(), cancelled(), case(), contains(), endsWith(), failure(), format(), fromJSON(), hashFiles(), join(), startsWith(), success(), toJSON()",
                "/repo/berth.yaml:10:37: error: pipelines.ci.jobs.build.steps[2].run: bad expression: expected a value, a name or '(', got the end of the expression",
            ],
            Errors(yaml));
    }

    [Fact]
    public void ParseText_ManyProblems_ReportsAllAtOnce()
    {
        const string yaml = """
            pipelines:
              ci:
                max-parallel: 0
                jobs:
                  build:
                    timeout: soon
                    stepz: []
                    steps:
                      - run: make | tee log   # a bash script, as GitHub runs it
                      - run: make
                        deploy: { service: api, image: x }
                      - run: |
                          make
                          make test
                      - run: 'true'
                        retry: { attempts: 2, on-exit-codes: [300] }
            """;

        Assert.Equal(
            [
                "/repo/berth.yaml:3:19: error: pipelines.ci.max-parallel: expected a whole number of 1 or more, got '0'",
                "/repo/berth.yaml:6:18: error: pipelines.ci.jobs.build.timeout: " + TimeoutError("soon"),
                "/repo/berth.yaml:7:9: error: pipelines.ci.jobs.build.stepz: unknown key 'stepz' in a job; did you mean 'steps'?",
                "/repo/berth.yaml:10:13: error: pipelines.ci.jobs.build.steps[1]: a step has exactly one of run:, test:, build-image:, deploy:, approve:; this one has run and deploy",
                "/repo/berth.yaml:16:51: error: pipelines.ci.jobs.build.steps[3].retry.on-exit-codes: '300' is not an exit code (0 to 255)",
            ],
            Errors(yaml));
    }

    [Fact]
    public void ParseText_NestingDeeperThanFifty_IsAnErrorAtTheFirstLevelTooDeepNotAStackOverflow()
    {
        // Issue #20 bug 3: ~6,000 '(' or 100,000 '!' crashed the process; GitHub rejects nesting deeper than 50.
        var parens = new string('(', 6000) + "true" + new string(')', 6000);
        var nots = new string('!', 100_000) + "true";
        var yaml = $$$"""
            pipelines:
              ci:
                jobs:
                  a:
                    if: {{{parens}}}
                    steps: [{ run: 'true' }]
                  b:
                    steps:
                      - run: echo ${{ {{{nots}}} }}
            """;

        Assert.Equal(
            [
                "/repo/berth.yaml:5:63: error: pipelines.ci.jobs.a.if: bad expression: the expression nests deeper than 50 levels (parentheses, brackets, calls and '!'), as GitHub Actions allows; split it into steps or env values",
                "/repo/berth.yaml:9:77: error: pipelines.ci.jobs.b.steps[0].run: bad expression: the expression nests deeper than 50 levels (parentheses, brackets, calls and '!'), as GitHub Actions allows; split it into steps or env values",
            ],
            Errors(yaml));
    }

    [Fact]
    public void ParseText_UsesStep_IsRejectedNamingTheStep()
    {
        const string yaml = """
            pipelines:
              ci:
                jobs:
                  build:
                    runs-on: ubuntu-latest
                    steps:
                      - uses: actions/checkout@v4
                      - name: Setup .NET
                        uses: actions/setup-dotnet@v4
                        with: { dotnet-version: '10.0.x' }
                      - id: cache
                        uses: ./local-action
            """;

        Assert.Equal(
            [
                "/repo/berth.yaml:7:19: error: pipelines.ci.jobs.build.steps[0].uses: this step uses 'actions/checkout@v4': marketplace and local actions are not supported (there is no registry to fetch them from); replace it with run: steps that do the same",
                "/repo/berth.yaml:9:19: error: pipelines.ci.jobs.build.steps[1].uses: step 'Setup .NET' uses 'actions/setup-dotnet@v4': marketplace and local actions are not supported (there is no registry to fetch them from); replace it with run: steps that do the same",
                "/repo/berth.yaml:12:19: error: pipelines.ci.jobs.build.steps[2].uses: step 'cache' uses './local-action': marketplace and local actions are not supported (there is no registry to fetch them from); replace it with run: steps that do the same",
            ],
            Errors(yaml));
    }

    [Fact]
    public void ParseText_MisspelledKeysAndUnsupportedGitHubKeys_SayWhatToDo()
    {
        const string yaml = """
            pipelines:
              ci:
                on: [push, workflow_dispatch]
                permissions: { contents: read }
                jobs:
                  build:
                    needz: test
                    container: node:20
                    steps:
                      - run: make
                        contine-on-error: true
                      - run: make
                        timeout-minutes: ${{ inputs.minutes }}
                        continue-on-error: maybe
                  test:
                    needs: biuld
                    steps: [{ run: make }]
            """;

        var result = PipelineParser.ParseText(yaml, "/repo/berth.yaml");

        Assert.Equal(
            [
                "/repo/berth.yaml:3:10: warning: pipelines.ci.on: on: push is ignored: there is no GitHub event on this machine; the pipeline runs with berth pipeline run, on watch: and on schedule:",
                "/repo/berth.yaml:4:18: warning: pipelines.ci.permissions: permissions: is ignored: there is no GITHUB_TOKEN on this machine",
                "/repo/berth.yaml:7:9: error: pipelines.ci.jobs.build.needz: unknown key 'needz' in a job; did you mean 'needs'?",
                "/repo/berth.yaml:8:20: error: pipelines.ci.jobs.build.container: container: is not supported: steps run on this machine; run a container in a step (docker run ...) or add a service to berth.yaml",
                "/repo/berth.yaml:11:13: error: pipelines.ci.jobs.build.steps[0].contine-on-error: unknown key 'contine-on-error' in a step; did you mean 'continue-on-error'?",
                "/repo/berth.yaml:14:32: error: pipelines.ci.jobs.build.steps[1].continue-on-error: expected true or false, got 'maybe'",
                "/repo/berth.yaml:16:16: error: pipelines.ci.jobs.test.needs: unknown job 'biuld'; did you mean 'build'? jobs in this pipeline: build, test",
            ],
            result.Diagnostics.Select(d => d.ToString()));
    }

    [Fact]
    public void ParseText_BadCron_IsRejected()
    {
        const string yaml = """
            pipelines:
              nightly:
                on: { schedule: ['61 * * * *'] }
                jobs: { a: { steps: [{ run: 'true' }] } }
            """;

        var error = Assert.Single(Errors(yaml));
        Assert.StartsWith("/repo/berth.yaml:3:22: error: pipelines.nightly.on.schedule: '61 * * * *' is not a cron expression", error, StringComparison.Ordinal);
    }

    [Fact]
    public void ParseText_NotYaml_ReportsPosition()
    {
        var error = Assert.Single(Errors("pipelines:\n  ci: [\n"));
        Assert.StartsWith("/repo/berth.yaml:3:1: error: not valid YAML", error, StringComparison.Ordinal);
    }

    private static string TimeoutError(string text)
    {
        Core.Model.Durations.TryParse(text, out _, out var error);
        return error!;
    }
}

public class PipelineFileReferenceTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("berth-pipeline-ref-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void ParseFile_PipelineInItsOwnFile_PositionsPointIntoThatFile()
    {
        Directory.CreateDirectory(Path.Combine(_dir, "pipelines"));
        File.WriteAllText(Path.Combine(_dir, "berth.yaml"), "services: {}\npipelines:\n  ci: pipelines/ci.yaml\n  missing: pipelines/nope.yaml\n");
        File.WriteAllText(Path.Combine(_dir, "pipelines", "ci.yaml"), "jobs:\n  build:\n    needs: [lint]\n    steps: [{ run: make }]\n");

        var result = PipelineParser.ParseFile(Path.Combine(_dir, "berth.yaml"));

        Assert.Equal(
            [
                $"{Path.Combine(_dir, "pipelines", "ci.yaml")}:3:13: error: pipelines.ci.jobs.build.needs: unknown job 'lint'; jobs in this pipeline: build",
                $"{Path.Combine(_dir, "berth.yaml")}:4:12: error: pipelines.missing: pipeline file 'pipelines/nope.yaml' does not exist (looked for {Path.Combine(_dir, "pipelines", "nope.yaml")})",
            ],
            result.Diagnostics.Select(d => d.ToString()));
        Assert.Equal(_dir, Assert.Single(result.Pipelines).BaseDirectory);
    }

    [Fact]
    public void ParseFile_ComposeXBerth_ReadsPipelines()
    {
        File.WriteAllText(Path.Combine(_dir, "compose.yaml"), "services:\n  web: { image: nginx }\nx-berth:\n  pipelines:\n    ci:\n      jobs: { a: { steps: [{ run: 'true' }] } }\n");

        var result = PipelineParser.ParseFile(Path.Combine(_dir, "compose.yaml"));

        Assert.True(result.Succeeded, string.Join("\n", result.Diagnostics));
        Assert.Equal("ci", Assert.Single(result.Pipelines).Name);
    }
}
