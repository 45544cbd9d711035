
namespace Berth.Pipelines.Tests.Execution;

public class ArgvSplitterTests
{
    [Theory]
    [InlineData("dotnet test -c Release", new[] { "dotnet", "test", "-c", "Release" })]
    [InlineData("echo 'a b' \"c \\\"d\\\"\" e\\ f", new[] { "echo", "a b", "c \"d\"", "e f" })]
    [InlineData("echo ${{ matrix.config }}-x", new[] { "echo", "${{ matrix.config }}-x" })]
    [InlineData("echo '$HOME'", new[] { "echo", "$HOME" })]
    public void Split_QuotesAndExpressions_GiveArgv(string text, string[] expected)
    {
        Assert.Equal(expected, ArgvSplitter.Split(text).Select(w => w.Word));
    }

    [Fact]
    public void Split_Pipe_IsRejectedWithTheFix()
    {
        var error = Assert.Throws<FormatException>(() => ArgvSplitter.Split("make && make test"));

        Assert.Equal("'&' at column 6 is shell syntax but run: has no shell; add shell: bash, or quote it", error.Message);
    }
}
