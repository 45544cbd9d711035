
namespace Berth.Pipelines.Tests.Execution;

public class ArtifactTests
{
    [Fact]
    public async Task RunAsync_MatrixInSharedWorkspaceReceivesArtifactsAtOnce_EveryInstanceReadsTheWholeFile()
    {
        // Each matrix instance receives the build's artifacts into the one shared workspace while its siblings already
        // read them: a copy in place would truncate the file under a sibling's feet.
        using var p = TestPipeline.Ci("""
            max-parallel: 8
            jobs:
              build:
                artifacts: [out]
                steps:
                  - run: mkdir -p out && head -c 4000000 /dev/zero > out/blob && printf 2 > out/version
                    shell: sh
              test:
                needs: build
                strategy:
                  matrix:
                    n: [1, 2, 3, 4, 5, 6]
                steps:
                  - run: test "$(cat out/version)" = 2 && test "$(wc -c < out/blob)" = 4000000
                    shell: sh
            """);

        var result = await p.RunAsync();

        Assert.True(result.Status == RunStatus.Succeeded, string.Join("\n", p.Logs(result.RunId)));
        Assert.All(p.Jobs(result.RunId).Values, status => Assert.Equal(RunStatus.Succeeded, status));
    }
}
