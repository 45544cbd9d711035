
namespace Berth.Core.Tests.Loading;

/// <summary>Kubernetes' <c>$(VAR)</c> is expanded when a replica starts, not by the loader: Compose interpolation must leave it
/// as written (no error, nothing mangled) while <c>$$</c> stays Compose's escape for <c>$</c>, and <c>berth config</c>'s
/// output must load back to the same argv.</summary>
public class ReplicaVariableSyntaxTests
{
    private static readonly LoadOptions Options = new() { Environment = new Dictionary<string, string> { ["NAME"] = "shop", ["PORT"] = "1111" } };

    [Theory]
    [InlineData("$(PORT)", "$(PORT)")]
    [InlineData("--port=$(PORT)", "--port=$(PORT)")]
    [InlineData("$$(PORT)", "$(PORT)")]
    [InlineData("$$$$(PORT)", "$$(PORT)")]
    [InlineData("${NAME}-$(BERTH_REPLICA)", "shop-$(BERTH_REPLICA)")]
    [InlineData("$PORT and $(PORT)", "1111 and $(PORT)")]
    [InlineData("$$HOME $(X", "$HOME $(X")]
    public void TryInterpolate_KubernetesVariable_LeftAsWritten(string text, string expected) => InterpolationTests.AssertInterpolates(Options.Environment!, text, expected);

    [Fact]
    public void LoadText_RunWithKubernetesVariables_NoDiagnosticAndArgvKept()
    {
        var result = SpecLoader.LoadText("""
            services:
              web:
                run: [server, "--port=$(PORT)", "$$$$(PORT)", "${NAME}-$(BERTH_REPLICA)"]
                endpoints: {http: {}}
            """, "berth.yaml", Options);

        Assert.True(result.Succeeded, string.Join("\n", result.Diagnostics));
        Assert.Empty(result.Diagnostics);
        Assert.Equal(["server", "--port=$(PORT)", "$$(PORT)", "shop-$(BERTH_REPLICA)"], result.Application!.Services[0].Command.ToArray());
    }

    [Fact]
    public void ToYaml_KubernetesVariablesBesideLiteralDollars_LoadsBackToTheSameArgv()
    {
        var first = SpecLoader.LoadText("""
            services:
              web:
                run: [sh, -c, "echo $$$$ $(PORT) $$(PORT) cost $$5"]
                shell: false
            """, "berth.yaml", Options);
        Assert.True(first.Succeeded, string.Join("\n", first.Diagnostics));
        Assert.Equal("echo $$ $(PORT) $(PORT) cost $5", first.Application!.Services[0].Command[2]);

        var again = SpecLoader.LoadText(SpecWriter.ToYaml(first.Application), "berth.yaml", Options);

        Assert.True(again.Succeeded, string.Join("\n", again.Diagnostics));
        Assert.Equal(first.Application.Services[0].Command.ToArray(), again.Application!.Services[0].Command.ToArray());
    }
}
