using Berth.Pipelines.Definition;
using Berth.Pipelines.Storage;
using Berth.Pipelines.Tests.Steps;

namespace Berth.Pipelines.Tests.Execution;

/// <summary>
/// The acceptance shape — build → test (matrix of 2) → build-image → deploy — with real processes, a real
/// Docker build and real HTTP to a loopback control plane that speaks the agreed API. The same run against the
/// real orchestrator (and "zero failed requests" through the mesh) is the end-to-end test of the rollout issue.
/// </summary>
public class DeliveryPipelineTests
{
    private static string Yaml(string tag) => $$$"""
        pipelines:
          ship:
            jobs:
        {{{AcceptancePipeline.BuildAndTestJobs}}}
              image:
                needs: test
                steps:
                  - build-image: { context: ., dockerfile: Dockerfile, tags: ["{{{tag}}}"] }
              deploy:
                needs: image
                steps:
                  - deploy: { service: api, image: "{{{tag}}}", timeout: 1m }
        """;

    [DockerFact]
    public async Task Ship_GoodVersion_DeploysTheBuiltImageAndARolledBackRolloutFailsTheRun()
    {
        var good = $"berth-pipelines-ship:{Guid.NewGuid():N}";
        var broken = $"berth-pipelines-ship:broken-{Guid.NewGuid():N}";
        using var p = new TestPipeline(Yaml(good));
        p.Write("Dockerfile", "FROM scratch\nCOPY out/version /version\n");
        await using var plane = new FakeControlPlane(p.State);
        plane.AddService("api", "berth-pipelines-ship:v1");
        using var docker = new Docker.DotNet.DockerClientConfiguration().CreateClient();
        try
        {
            var first = await p.RunAsync("ship");

            Assert.Equal(RunStatus.Succeeded, first.Status);
            Assert.Equal(
                new Dictionary<string, string> { ["build"] = "succeeded", ["test (unit)"] = "succeeded", ["test (smoke)"] = "succeeded", ["image"] = "succeeded", ["deploy"] = "succeeded" },
                p.Jobs(first.RunId));
            Assert.Equal((good, 2L), (plane.Get("api").Image, plane.Get("api").Revision));
            await docker.Images.InspectImageAsync(good);

            // The control plane rolls the next one back (the real one does so when readiness fails: the end-to-end
            // DeliveryPipelineTests); the run fails at deploy, after the image was built and sent.
            File.WriteAllText(p.File, Yaml(broken));
            plane.Outcome = "rolled-back";
            var second = await p.RunAsync("ship");

            Assert.Equal(RunStatus.Failed, second.Status);
            var jobs = p.Jobs(second.RunId);
            Assert.Equal(("succeeded", "failed"), (jobs["image"], jobs["deploy"]));
            await docker.Images.InspectImageAsync(broken);
            Assert.Contains($"\"image\":\"{broken}\"", plane.Bodies.Last(), StringComparison.Ordinal);
            Assert.Matches("^rollout of api revision 3 rolled-back: .*; the app stays on its previous revision$", p.Steps(second.RunId).Single(s => s.JobKey == "deploy").Summary);
        }
        finally
        {
            foreach (var tag in new[] { good, broken })
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
    }

    [Fact]
    public void ShopSample_Pipelines_ParseWithoutErrors()
    {
        var file = Repository.Path("samples/shop/pipelines.yaml");

        var result = PipelineParser.ParseFile(file);

        Assert.True(result.Succeeded, string.Join("\n", result.Diagnostics));
        Assert.Equal(["ship", "ship-broken"], result.Pipelines.Select(x => x.Name));
        Assert.Equal(["build", "test", "image", "deploy"], result.Find("ship")!.Jobs.Select(j => j.Id));
    }
}
