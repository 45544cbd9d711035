
namespace Berth.Core.Tests.Loading;

public class TextFormatsTests
{
    [Fact]
    public void DotEnvParse_ComposeSyntax_ReadsEveryForm()
    {
        var problems = new List<DotEnv.Problem>();
        var entries = DotEnv.Parse("""
            # comment
            PLAIN=value
            export EXPORTED=yes
            SPACED = padded
            SINGLE='lit ${NOT} $$'
            DOUBLE="line1\nline2 \"q\""
            INLINE=abc # a comment
            HASH=a#b
            EMPTY=
            BARE
            MULTI="first
            second"
            """, problems);

        Assert.Empty(problems);
        Assert.Equal(
        [
            new("PLAIN", "value"), new("EXPORTED", "yes"), new("SPACED", "padded"), new("SINGLE", "lit ${NOT} $$"),
            new("DOUBLE", "line1\nline2 \"q\""), new("INLINE", "abc"), new("HASH", "a#b"), new("EMPTY", ""), new("BARE", null),
            new("MULTI", "first\nsecond"),
        ], entries);
    }

    [Fact]
    public void DotEnvParse_BadLines_ReportLineAndColumn()
    {
        var problems = new List<DotEnv.Problem>();
        DotEnv.Parse("OK=1\n  not a pair\nQ=\"open\n", problems);

        Assert.Equal([new DotEnv.Problem(2, 3, "'not a pair' is not KEY=value"), new DotEnv.Problem(4, 1, "the value of Q has an unterminated double quote")], problems);
    }

    [Theory]
    [InlineData("python manage.py runserver 0.0.0.0:8000", new[] { "python", "manage.py", "runserver", "0.0.0.0:8000" })]
    [InlineData("sh -c 'echo hi && exit 0'", new[] { "sh", "-c", "echo hi && exit 0" })]
    [InlineData("echo \"a \\\"b\\\" c\"", new[] { "echo", "a \"b\" c" })]
    [InlineData("  spaced   out  ", new[] { "spaced", "out" })]
    [InlineData("a\\ b", new[] { "a b" })]
    public void ShellWordsTrySplit_QuotedCommand_SplitsLikeAShell(string text, string[] expected)
    {
        Assert.True(ShellWords.TrySplit(text, out var words, out var error), error);
        Assert.Equal(expected, words);
    }

    [Fact]
    public void ShellWordsTrySplit_UnterminatedQuote_Fails()
    {
        Assert.False(ShellWords.TrySplit("echo 'oops", out _, out var error));
        Assert.Equal("has an unterminated single quote", error);
    }

    [Theory]
    [InlineData("imgae", "image")]
    [InlineData("dependsOn", "depends_on")]
    [InlineData("replcias", "replicas")]
    [InlineData("zzz", null)]
    public void SuggestionsClosest_Typo_FindsTheKey(string input, string? expected) =>
        Assert.Equal(expected, Suggestions.Closest(input, ["image", "depends_on", "replicas", "run"]));
}
