using Berth.Pipelines.Definition;

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
                      - run: dotnet build -c "${{ env.CONFIGURATION }}"
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
        Assert.Equal(["dotnet", "build", "-c", "Release"], build.Steps[0].Command!.Argv.Select(a => a.Render(context)));
        Assert.Equal(TimeSpan.FromMinutes(5), build.Steps[0].Timeout);
        Assert.Equal(3, build.Steps[0].Retry.Attempts);
        Assert.Equal([75], build.Steps[0].Retry.OnExitCodes.ToArray());
        var test = ci.Jobs[1];
        Assert.Equal(["build"], test.Needs.Select(n => n.Job));
        Assert.False(test.Matrix!.FailFast);
        Assert.Equal(StepKind.Test, test.Steps[0].Kind);
        Assert.Equal("bash", test.Steps[1].Command!.Shell);
        Assert.Equal([StepKind.Approve, StepKind.Deploy], ci.Jobs[2].Steps.Select(s => s.Kind));
        Assert.Equal("Ship it?", ci.Jobs[2].Steps[0].ApproveMessage);
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
                      - run: make | tee log
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
                "/repo/berth.yaml:7:9: error: pipelines.ci.jobs.build: unknown key 'stepz'; known keys: name, needs, if, env, working-directory, timeout, timeout-minutes, continue-on-error, strategy, artifacts, cache, workspace, steps",
                "/repo/berth.yaml:6:18: error: pipelines.ci.jobs.build.timeout: " + TimeoutError("soon"),
                "/repo/berth.yaml:9:18: error: pipelines.ci.jobs.build.steps[0].run: '|' at column 6 is shell syntax but run: has no shell; add shell: bash, or quote it",
                "/repo/berth.yaml:10:13: error: pipelines.ci.jobs.build.steps[1]: a step has exactly one of run:, test:, build-image:, deploy:, approve:; this one has run and deploy",
                "/repo/berth.yaml:12:18: error: pipelines.ci.jobs.build.steps[2].run: run: has several lines but no shell; add shell: bash to run it as a script, or write one command",
                "/repo/berth.yaml:16:51: error: pipelines.ci.jobs.build.steps[3].retry.on-exit-codes: '300' is not an exit code (0 to 255)",
            ],
            Errors(yaml));
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
