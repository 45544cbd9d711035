namespace Berth.Pipelines.Tests.Steps;

public class StepKindTests
{
    private const string DeployPipeline = """
        pipelines:
          ci:
            env: { TAG: "${{ branch }}" }
            jobs:
              deploy:
                steps:
                  - deploy:
                      service: api
                      image: "shop/api:${{ env.TAG }}"
                      env: { FEATURE: 'on' }
                      timeout: 1m
        """;

    [Fact]
    public async Task Deploy_RolloutCompletes_StepSucceedsAndServiceIsOnNewRevision()
    {
        using var p = new TestPipeline(DeployPipeline);
        await using var plane = new FakeControlPlane(p.State);
        plane.AddService("api", "shop/api:v1");

        var result = await p.RunSucceededAsync(request: new RunRequest { Branch = "v2" });

        Assert.Equal(("shop/api:v2", 2L), (plane.Get("api").Image, plane.Get("api").Revision));
        Assert.Equal("""{"image":"shop/api:v2","env":{"FEATURE":"on"}}""", Assert.Single(plane.Bodies));
        var logs = p.Logs(result.RunId);
        Assert.Contains("rollout of api to revision 2 started", logs);
        Assert.Contains("rollout of api revision 2: progressing", logs);
        Assert.Contains("rollout of api revision 2: complete", logs);
        Assert.Equal("api at revision 2", p.Steps(result.RunId)[0].Summary);
    }

    [Fact]
    public async Task Deploy_RolloutRolledBack_StepFailsQuotingTheControlPlane()
    {
        // What the control plane does with the revision is the end-to-end test's (the real one rolls back); here:
        // the step reads "rolled-back", fails, and says why, after polling past "progressing".
        using var p = new TestPipeline(DeployPipeline);
        await using var plane = new FakeControlPlane(p.State) { Outcome = "rolled-back" };
        plane.AddService("api", "shop/api:v1");

        var result = await p.RunAsync(request: new RunRequest { Branch = "v3" });

        Assert.Equal(RunStatus.Failed, result.Status);
        Assert.Equal("""{"image":"shop/api:v3","env":{"FEATURE":"on"}}""", Assert.Single(plane.Bodies));
        Assert.Contains("rollout of api revision 2: progressing", p.Logs(result.RunId));
        Assert.Equal(
            "rollout of api revision 2 rolled-back: new replicas never became ready; rolled back; the app stays on its previous revision",
            p.Steps(result.RunId)[0].Summary);
    }

    [Fact]
    public async Task Deploy_WrongToken_FailsWithTheFix()
    {
        using var p = new TestPipeline(DeployPipeline);
        await using var plane = new FakeControlPlane(p.State);
        plane.AddService("api", "shop/api:v1");
        File.WriteAllText(Path.Combine(p.State, "api-token"), "stale-token");

        var result = await p.RunAsync();

        Assert.Equal(RunStatus.Failed, result.Status);
        Assert.Equal("the control plane refused the token in api-token; restart 'berth up' to issue a new one", p.Steps(result.RunId)[0].Summary);
    }

    [Fact]
    public async Task Deploy_NoControlPlane_FailsSayingHowToStartIt()
    {
        using var p = new TestPipeline(DeployPipeline);

        var result = await p.RunAsync();

        Assert.Equal(RunStatus.Failed, result.Status);
        Assert.Equal(
            $"no running control plane: {Path.Combine(p.State, "api.json")} or {Path.Combine(p.State, "api-token")} is missing; start the app with 'berth up' first",
            p.Steps(result.RunId)[0].Summary);
    }

    [Fact]
    public async Task Approve_ReleasedFromAnotherConnection_ContinuesTheJob()
    {
        using var p = TestPipeline.OneJob("""
            - approve: Ship to production?
            - run: touch shipped
            """);
        long runId = 0;
        var run = p.RunAsync(request: new RunRequest { Started = id => runId = id });
        await Poll.UntilAsync(() => runId != 0 && p.Steps(runId).Any(s => s.Status == RunStatus.Waiting), TimeSpan.FromSeconds(60), "the approve step to wait");
        Assert.False(p.Exists("shipped"));

        using (var other = p.Store())
        {
            other.Approve(runId, "*", DateTimeOffset.UtcNow);
        }

        var result = await run.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(RunStatus.Succeeded, result.Status);
        Assert.True(p.Exists("shipped"));
        Assert.Contains("waiting for approval: Ship to production? — run 'berth pipeline approve " + runId + "'", p.Logs(runId));
    }

    [Fact]
    public async Task Test_JUnitAndTrxResults_SummedAndFailingTestsFailTheStep()
    {
        using var p = TestPipeline.OneJob("""
            - test: "mkdir -p results && cp fixtures/junit.xml fixtures/run.trx results/"
              shell: sh
              results: results/*
            """);
        p.Write("fixtures/junit.xml", """
            <testsuites><testsuite name="api">
              <testcase classname="Api" name="Get"/>
              <testcase classname="Api" name="Post"><failure message="expected 201"/></testcase>
              <testcase classname="Api" name="Old"><skipped/></testcase>
            </testsuite></testsuites>
            """);
        p.Write("fixtures/run.trx", """
            <TestRun xmlns="http://microsoft.com/schemas/VisualStudio/TeamTest/2010"><Results>
              <UnitTestResult testName="Shop.Cart_Adds" outcome="Passed"/>
              <UnitTestResult testName="Shop.Cart_Removes" outcome="Passed"/>
              <UnitTestResult testName="Shop.Slow" outcome="NotExecuted"/>
            </Results></TestRun>
            """);

        var result = await p.RunAsync();

        Assert.Equal(RunStatus.Failed, result.Status);
        var step = p.Steps(result.RunId)[0];
        Assert.Equal(("failed", 0, "3 passed, 1 failed, 2 skipped"), (step.Status, step.ExitCode!.Value, step.Summary));
        Assert.Contains("  failed: Api.Post", p.Logs(result.RunId));
    }

    [Fact]
    public async Task Test_NoResultFiles_FailsSayingWhatWasExpected()
    {
        using var p = TestPipeline.OneJob("""
            - test: 'true'
              results: '**/*.trx'
            """);

        var result = await p.RunAsync();

        Assert.Equal($"no test results matching **/*.trx were written under {p.Directory}", p.Steps(result.RunId)[0].Summary);
    }

    [DockerFact]
    public async Task BuildImage_DockerEngine_BuildsAndTagsTheImage()
    {
        var tag = $"berth-pipelines-test:{Guid.NewGuid():N}";
        using var p = TestPipeline.Ci($$"""
            jobs:
              image:
                steps:
                  - build-image: { context: app, tags: ["{{tag}}"] }
            """);
        p.Write("app/Dockerfile", "FROM scratch\nCOPY hello.txt /hello.txt\n");
        p.Write("app/hello.txt", "hello");

        var result = await p.RunAsync();

        using var docker = new Docker.DotNet.DockerClientConfiguration().CreateClient();
        try
        {
            Assert.Equal(RunStatus.Succeeded, result.Status);
            var image = await docker.Images.InspectImageAsync(tag);
            Assert.Contains(tag, image.RepoTags);
        }
        finally
        {
            try
            {
                await docker.Images.DeleteImageAsync(tag, new Docker.DotNet.Models.ImageDeleteParameters { Force = true });
            }
            catch (Docker.DotNet.DockerApiException)
            {
            }
        }
    }

    [DockerFact]
    public async Task BuildImage_DockerIgnore_KeepsExcludedFilesOutOfTheContext()
    {
        // The step sends the runtime's build context: a file .dockerignore excludes is not there to COPY.
        using var p = TestPipeline.OneJob("- build-image: { context: app, tags: [berth-pipelines-test:ignored] }");
        p.Write("app/Dockerfile", "FROM scratch\nCOPY kept.txt /kept.txt\nCOPY secret.env /secret.env\n");
        p.Write("app/.dockerignore", "*.env\n");
        p.Write("app/kept.txt", "kept");
        p.Write("app/secret.env", "TOKEN=1");

        var result = await p.RunAsync();

        Assert.Equal(RunStatus.Failed, result.Status);
        Assert.Contains("secret.env", p.Steps(result.RunId)[0].Summary, StringComparison.Ordinal);
        Assert.DoesNotContain("kept.txt", p.Steps(result.RunId)[0].Summary, StringComparison.Ordinal);
    }

    [DockerFact]
    public async Task BuildImage_BrokenDockerfile_FailsWithTheEngineError()
    {
        using var p = TestPipeline.OneJob("- build-image: { context: app, tags: [berth-pipelines-test:broken] }");
        p.Write("app/Dockerfile", "FROM scratch\nCOPY missing.txt /\n");

        var result = await p.RunAsync();

        Assert.Equal(RunStatus.Failed, result.Status);
        Assert.StartsWith("docker build failed:", p.Steps(result.RunId)[0].Summary, StringComparison.Ordinal);
    }
}
