
namespace Berth.EndToEnd.Tests;

/// <summary>Which images <c>berth up</c> builds: Docker services with a build context and an image name, each build once.</summary>
public sealed class ImageBuildsTests
{
    private static Core.Model.Application Load(string yaml, string runtime = "docker")
    {
        var result = SpecLoader.LoadText(yaml, "/srv/app/berth.yaml", new LoadOptions { Environment = new Dictionary<string, string> { ["RT"] = runtime } });
        Assert.True(result.Succeeded, string.Join("\n", result.Diagnostics));
        return result.Application!;
    }

    private const string Spec = """
        name: t
        x-b: &b
          runtime: ${RT}
          image: t-app:dev
          build: {context: ., command: [make]}
        services:
          a: {<<: *b, run: [a]}
          b: {<<: *b, run: [b]}
          c: {image: other:1, build: {context: ./c, dockerfile: C.Dockerfile}}
          d: {image: pulled:1}
        """;

    [Fact]
    public void For_SharedBuildOnDocker_OneBuildPerContextDockerfileAndTag()
    {
        var builds = ImageBuilds.For(Load(Spec));

        Assert.Equal(
            [("a", "/srv/app", "Dockerfile", "t-app:dev"), ("c", "/srv/app/c", "C.Dockerfile", "other:1")],
            builds.OrderBy(b => b.Service, StringComparer.Ordinal));
    }

    [Fact]
    public void For_ProcessRuntime_BuildsOnlyTheDockerServices()
    {
        var builds = ImageBuilds.For(Load(Spec, runtime: "process"));

        Assert.Equal([("c", "/srv/app/c", "C.Dockerfile", "other:1")], builds);
    }
}
