
namespace Berth.Orchestration.Tests.Controllers;

public class ArgvExpansionTests
{
    private static readonly Dictionary<string, string> Env = new()
    {
        ["PORT"] = "41001", ["BERTH_REPLICA"] = "web-1", ["services__api__http__0"] = "http://127.0.0.1:7200", ["EMPTY"] = "",
    };

    [Theory]
    [InlineData("plain", "plain")]
    [InlineData("$(PORT)", "41001")]
    [InlineData("--listen=127.0.0.1:$(PORT)", "--listen=127.0.0.1:41001")]
    [InlineData("$(BERTH_REPLICA).log", "web-1.log")]
    [InlineData("$(services__api__http__0)/v1", "http://127.0.0.1:7200/v1")]
    [InlineData("[$(EMPTY)]", "[]")]
    [InlineData("$$(PORT)", "$(PORT)")]
    [InlineData("$$$(PORT)", "$$(PORT)")]
    [InlineData("$(NOPE)", "$(NOPE)")]
    [InlineData("$(date +%s)", "$(date +%s)")]
    [InlineData("$(PORT", "$(PORT")]
    [InlineData("$()", "$()")]
    [InlineData("echo $$ $PORT ${PORT}", "echo $$ $PORT ${PORT}")]
    [InlineData("$(PORT)$(PORT)", "4100141001")]
    [InlineData("trailing $", "trailing $")]
    public void Expand_Text_AsKubernetesWithNarrowEscape(string text, string expected) =>
        Assert.Equal(expected, ArgvExpansion.Expand(text, Env));

    [Fact]
    public void Expand_DefaultArray_StaysDefault() =>
        Assert.True(ArgvExpansion.Expand(default(System.Collections.Immutable.ImmutableArray<string>), Env).IsDefault);
}
