
namespace Berth.Core.Tests.Loading;

public class InterpolationTests
{
    private static readonly Dictionary<string, string> Vars = new() { ["NAME"] = "shop", ["EMPTY"] = "", ["TAG"] = "1.2" };

    /// <summary>Asserts that <paramref name="text"/> interpolates over <paramref name="vars"/> to <paramref name="expected"/>;
    /// when it does not interpolate at all, the failure carries the interpolator's reason.</summary>
    internal static void AssertInterpolates(IReadOnlyDictionary<string, string> vars, string text, string expected)
    {
        Assert.True(new Interpolator(vars).TryInterpolate(text, out var result, out var error), error);
        Assert.Equal(expected, result);
    }

    [Theory]
    [InlineData("plain", "plain")]
    [InlineData("$NAME-x", "shop-x")]
    [InlineData("${NAME}", "shop")]
    [InlineData("app:${TAG}", "app:1.2")]
    [InlineData("${MISSING:-fallback}", "fallback")]
    [InlineData("${EMPTY:-fallback}", "fallback")]
    [InlineData("${EMPTY-fallback}", "")]
    [InlineData("${MISSING-fallback}", "fallback")]
    [InlineData("${NAME:+set}", "set")]
    [InlineData("${EMPTY:+set}", "")]
    [InlineData("${EMPTY+set}", "set")]
    [InlineData("${MISSING:-${NAME}}", "shop")]
    [InlineData("${MISSING:-a ${TAG} b}", "a 1.2 b")]
    [InlineData("$$NAME costs $$5", "$NAME costs $5")]
    [InlineData("${NAME:?must be set}", "shop")]
    public void TryInterpolate_ComposeForms_Expand(string text, string expected) => AssertInterpolates(Vars, text, expected);

    [Theory]
    [InlineData("${MISSING:?set MISSING first}", "required variable MISSING is not set: set MISSING first")]
    [InlineData("${EMPTY:?}", "required variable EMPTY is empty: EMPTY must be set")]
    [InlineData("${NAME", "has a '${' without its closing '}'")]
    [InlineData("cost: $5", "has a '$' that starts no variable at '$5'; write $$ for a literal $, or ${NAME} for a variable")]
    [InlineData("trailing $", "ends with a '$' that starts no variable; write $$ for a literal $")]
    [InlineData("${NAME:x}", "has '${NAME' followed by 'x'; write ${NAME}, ${NAME:-default}, ${NAME:?message} or ${NAME:+alternative}")]
    [InlineData("${1X}", "has '${1X}', which is not a variable name (letters, digits and _, not starting with a digit)")]
    public void TryInterpolate_BadTemplate_SaysWhy(string text, string expected)
    {
        var interpolator = new Interpolator(Vars);

        Assert.False(interpolator.TryInterpolate(text, out _, out var error));
        Assert.Equal(expected, error);
    }

    [Fact]
    public void TryInterpolate_UnsetVariable_IsEmptyAndRecorded()
    {
        var interpolator = new Interpolator(Vars);

        Assert.True(interpolator.TryInterpolate("a${NOPE}b$ALSO_NOPE", out var result, out _));
        Assert.Equal("ab", result);
        Assert.Equal(["ALSO_NOPE", "NOPE"], interpolator.Unset.Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Load_UnsetVariable_WarnsOnceWhereFirstUsed()
    {
        var result = SpecLoader.LoadText("""
            services:
              web:
                image: "app:${TAG}"
                environment:
                  A: ${TAG}
            """, Path.Combine("no-such-folder", "berth.yaml"), new LoadOptions { Environment = new Dictionary<string, string>() });

        Assert.True(result.Succeeded);
        var warning = Assert.Single(result.Warnings);
        Assert.Equal($"{Path.Combine("no-such-folder", "berth.yaml")}:3:12: warning: services.web.image: variable TAG is not set, so it is replaced by an empty string; set it, or write ${{TAG:-default}}", warning.ToString());
        Assert.Equal("app:", result.Application!.Services[0].Image);
    }
}
