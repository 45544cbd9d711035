
namespace Berth.Pipelines.Tests.Expressions;

public class ExpressionTests
{
    private static readonly ExpressionContext Context = new()
    {
        Env = new Dictionary<string, string> { ["DEPLOY"] = "true", ["COUNT"] = "3" },
        Matrix = new Dictionary<string, string> { ["config"] = "Release" },
        Branch = "main",
    };

    [Theory]
    [InlineData("env.DEPLOY == 'true'", true)]
    [InlineData("env.DEPLOY == 'TRUE'", true)]
    [InlineData("env.DEPLOY != 'true'", false)]
    [InlineData("matrix.config == 'Release' && branch == 'main'", true)]
    [InlineData("matrix.config == 'Debug' || branch == 'dev'", false)]
    [InlineData("!(branch == 'main')", false)]
    [InlineData("env.COUNT > 2", true)]
    [InlineData("env.MISSING", false)]
    [InlineData("startsWith(branch, 'ma') && contains(matrix.config, 'lea')", true)]
    public void Evaluate_Conditions_MatchGitHubSemantics(string text, bool expected)
    {
        var expr = ExpressionParser.Parse(text);

        Assert.Equal(expected, ExpressionEvaluator.EvaluateCondition(expr, Context));
    }

    [Fact]
    public void EvaluateCondition_NoStatusFunctionAfterFailure_IsFalse()
    {
        var expr = ExpressionParser.Parse("branch == 'main'");

        Assert.False(ExpressionEvaluator.EvaluateCondition(expr, Context with { Prior = PriorOutcome.Failure }));
    }

    [Theory]
    [InlineData("env.A = 'x'", 6, "'=' is not an operator; compare with ==")]
    [InlineData("env.A == \"x\"", 9, "strings use single quotes, as in GitHub Actions: 'value'")]
    [InlineData("success() &&", 12, "expected a value, a name or '(', got the end of the expression")]
    [InlineData("(branch == 'main'", 17, "expected ')' to close the '(' at offset 0, got the end of the expression")]
    [InlineData("branch == 'main' branch", 17, "unexpected 'branch' after a complete expression; join conditions with && or ||")]
    [InlineData("'open", 0, "string is not closed; end it with ' (write '' for a quote inside)")]
    [InlineData("1 +", 2, "unexpected character '+'")]
    [InlineData("0xzz == 1", 0, "'0xzz' is not a number (write 42, -1.5, 1e3, .5, 0xff, Infinity or NaN)")]
    [InlineData("a[1", 3, "expected ']' to close the '[' at offset 1, got the end of the expression")]
    [InlineData("a. == 1", 3, "expected a property name or * after '.', got '=='")]
    [InlineData("'🚀' € 1", 5, "unexpected character '€'")]
    public void Parse_BadSyntax_ReportsOffsetAndFix(string text, int offset, string message)
    {
        var error = Assert.Throws<ExpressionException>(() => ExpressionParser.Parse(text));

        Assert.Equal(message, error.Message);
        Assert.Equal(offset, error.Offset);
    }

    [Fact]
    public void Validate_UnknownNamesAndFunctions_ReportsEach()
    {
        var expr = ExpressionParser.Parse("gitlab.ref == 'x' || nope() || matrix.os == 'linux' || secrets.TOKEN");
        var scope = new ExpressionScope { MatrixKeys = ["config"], StatusFunctions = true };

        var errors = ExpressionEvaluator.Validate(expr, scope).Select(e => (e.Offset, e.Message)).ToList();

        Assert.Equal(
            [
                (0, "unknown name 'gitlab'; did you mean github? use a context (branch, env, github, inputs, job, matrix, needs, runner, secrets, steps, strategy, vars) or a function such as success()"),
                (21, "unknown function nope(); known: always(), cancelled(), case(), contains(), endsWith(), failure(), format(), fromJSON(), hashFiles(), join(), startsWith(), success(), toJSON()"),
                (31, "matrix.os is not a key of this job's matrix (keys: config)"),
                (55, "secrets.TOKEN is not declared; list it under the pipeline's secrets:"),
            ],
            errors);
    }

    [Fact]
    public void Template_Render_ReplacesEachExpression()
    {
        var template = Template.Parse("build-${{ matrix.config }}-${{ branch }}.log");

        Assert.Equal("build-Release-main.log", template.Render(Context));
    }

    [Fact]
    public void Template_UnclosedExpression_ReportsOffset()
    {
        var error = Assert.Throws<ExpressionException>(() => Template.Parse("a ${{ env.X"));

        Assert.Equal(2, error.Offset);
    }

    [Fact]
    public void HashFiles_ChangesWithContentAndIsEmptyWithoutMatches()
    {
        var dir = Directory.CreateTempSubdirectory("berth-hash-").FullName;
        try
        {
            var context = Context with { Workspace = dir };
            var expr = ExpressionParser.Parse("hashFiles('**/packages.lock.json')");
            Assert.Equal("", ExpressionEvaluator.Evaluate(expr, context));
            Directory.CreateDirectory(Path.Combine(dir, "src"));
            File.WriteAllText(Path.Combine(dir, "src", "packages.lock.json"), "{\"v\":1}");
            var first = (string)ExpressionEvaluator.Evaluate(expr, context)!;
            File.WriteAllText(Path.Combine(dir, "src", "packages.lock.json"), "{\"v\":2}");
            var second = (string)ExpressionEvaluator.Evaluate(expr, context)!;

            Assert.Equal(64, first.Length);
            Assert.NotEqual(first, second);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void HashFiles_PatternMatchingAFolder_TakesInTheFilesInside()
    {
        // As GitHub's globber: 'src' matches the folder, and so every file under it.
        var dir = Directory.CreateTempSubdirectory("berth-hash-").FullName;
        try
        {
            Directory.CreateDirectory(Path.Combine(dir, "src", "deep"));
            File.WriteAllText(Path.Combine(dir, "src", "a.cs"), "a");
            File.WriteAllText(Path.Combine(dir, "src", "deep", "b.cs"), "b");
            File.WriteAllText(Path.Combine(dir, "other.txt"), "o");
            var context = Context with { Workspace = dir };
            string Hash(string text) => (string)ExpressionEvaluator.Evaluate(ExpressionParser.Parse(text), context)!;

            Assert.Equal(64, Hash("hashFiles('src')").Length);
            Assert.Equal(Hash("hashFiles('src/**')"), Hash("hashFiles('src')"));
            Assert.NotEqual(Hash("hashFiles('src/a.cs')"), Hash("hashFiles('src')"));
            Assert.Equal(Hash("hashFiles('src/a.cs')"), Hash("hashFiles('src', '!src/deep')"));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
