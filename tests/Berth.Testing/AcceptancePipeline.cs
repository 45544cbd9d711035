namespace Berth.Testing;

/// <summary>Issue #8's acceptance pipeline — build → test (a matrix of 2) → build-image → deploy — is tested at two layers:
/// Pipelines' DeliveryPipelineTests against a loopback control plane that speaks the API, and EndToEnd's DeliveryPipelineTests
/// through the real <c>berth</c> and control plane. These are the jobs both run as they stand.</summary>
public static class AcceptancePipeline
{
    /// <summary>The <c>build</c> and <c>test</c> jobs, indented as under a pipeline's <c>jobs:</c> in berth.yaml (6 spaces):
    /// build leaves out/version ("2") as an artifact; test, for each of the suites unit and smoke, checks that the artifact
    /// arrived and writes a JUnit result.</summary>
    public const string BuildAndTestJobs = """
              build:
                artifacts: [out]
                steps:
                  - run: mkdir -p out && printf 2 > out/version
                    shell: sh
              test:
                needs: build
                strategy:
                  matrix:
                    suite: [unit, smoke]
                steps:
                  - test: |
                      test "$(cat out/version)" = 2
                      mkdir -p results
                      printf '<testsuite><testcase classname="%s" name="version"/></testsuite>' "${{ matrix.suite }}" > results/${{ matrix.suite }}.xml
                    shell: bash
                    results: results/${{ matrix.suite }}.xml
        """;
}
