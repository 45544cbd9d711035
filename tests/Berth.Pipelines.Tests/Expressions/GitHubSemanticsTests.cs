using System.Collections.Immutable;
using Berth.Pipelines.Expressions;

namespace Berth.Pipelines.Tests.Expressions;

/// <summary>
/// One table per operator and function, each row a rule from GitHub's expression documentation
/// (docs.github.com, "Evaluate expressions in workflows and actions": literals, operators, loose equality with
/// coercion to numbers, case-insensitive strings, functions). Values are written here from those rules.
/// </summary>
public sealed class GitHubSemanticsTests
{
    private static readonly ExpressionContext Context = new()
    {
        Env = new Dictionary<string, string> { ["NAME"] = "Mona", ["EMPTY"] = "", ["COUNT"] = "12" },
        Matrix = new Dictionary<string, string> { ["os"] = "linux" },
        Contexts = Values.EmptyObject
            .SetItem("github", Values.Object([KeyValuePair.Create<string, object?>("ref", "refs/heads/main"), KeyValuePair.Create<string, object?>("event_name", "push")]))
            .SetItem("vars", Values.Object([KeyValuePair.Create<string, object?>("Region", "eu")]))
            .SetItem("steps", Values.Object([KeyValuePair.Create<string, object?>("build", Values.Object([
                KeyValuePair.Create<string, object?>("outputs", Values.Object([KeyValuePair.Create<string, object?>("version", "1.2")])),
                KeyValuePair.Create<string, object?>("outcome", "success"),
            ]))])),
    };

    private static object? Eval(string text) => ExpressionEvaluator.Evaluate(ExpressionParser.Parse(text), Context);

    private static string Render(object? value) => value switch
    {
        null => "null",
        bool b => b ? "true" : "false",
        double d => "n:" + Values.FormatNumber(d),
        string s => "s:" + s,
        _ => "json:" + Values.ToJson(value).Replace("\n", "", StringComparison.Ordinal).Replace(" ", "", StringComparison.Ordinal),
    };

    // Literals: boolean, null, "any number format supported by JSON" (with hex and exponent examples), single-quoted strings.
    [Theory]
    [InlineData("null", "null")]
    [InlineData("true", "true")]
    [InlineData("false", "false")]
    [InlineData("711", "n:711")]
    [InlineData("-9.2", "n:-9.2")]
    [InlineData("0xff", "n:255")]
    [InlineData("0xFF", "n:255")]
    [InlineData("-2.99e-2", "n:-0.0299")]
    [InlineData("1e3", "n:1000")]
    [InlineData(".5", "n:0.5")]
    [InlineData("+7", "n:7")]
    [InlineData("-0x10", "n:-16")]
    [InlineData("Infinity", "n:Infinity")]
    [InlineData("-Infinity", "n:-Infinity")]
    [InlineData("NaN", "n:NaN")]
    [InlineData("'It''s open source!'", "s:It's open source!")]
    [InlineData("''", "s:")]
    [InlineData("'☃ 🚀'", "s:☃ 🚀")]
    public void Literal_AsDocumented_HasValue(string text, string expected) => Assert.Equal(expected, Render(Eval(text)));

    // ==: same kinds compare directly (strings ignoring case); different kinds are coerced to numbers
    // (null → 0, true → 1, false → 0, a string parsed as a JSON number, '' → 0, anything else NaN); NaN equals nothing;
    // arrays and objects only equal the same instance.
    [Theory]
    [InlineData("'abc' == 'ABC'", true)]
    [InlineData("'abc' == 'abd'", false)]
    [InlineData("1 == 1.0", true)]
    [InlineData("null == null", true)]
    [InlineData("null == 0", true)]
    [InlineData("null == false", true)]
    [InlineData("null == ''", true)]
    [InlineData("env.UNSET == ''", true)]
    [InlineData("env.UNSET == null", true)]
    [InlineData("true == 1", true)]
    [InlineData("false == 0", true)]
    [InlineData("true == 'true'", false)]
    [InlineData("'' == 0", true)]
    [InlineData("' 12 ' == 12", true)]
    [InlineData("' 0xff ' == 255", true)]
    [InlineData("'1e2' == 100", true)]
    [InlineData("'12abc' == 12", false)]
    [InlineData("NaN == NaN", false)]
    [InlineData("'NaN' == NaN", false)]
    [InlineData("env.COUNT == 12", true)]
    [InlineData("fromJSON('[1]') == fromJSON('[1]')", false)]
    [InlineData("github == github", true)]
    [InlineData("github == 0", false)]
    [InlineData("1 == 1 == true", true)]
    public void Equal_LooseEquality_AsDocumented(string text, bool expected) => Assert.Equal(expected, Eval(text));

    [Theory]
    [InlineData("'a' != 'A'", false)]
    [InlineData("1 != 2", true)]
    [InlineData("NaN != NaN", true)]
    [InlineData("null != 0", false)]
    [InlineData("env.NAME != 'mona'", false)]
    public void NotEqual_IsTheNegationOfEqual(string text, bool expected) => Assert.Equal(expected, Eval(text));

    // < <= > >=: strings order ignoring case; other kinds are compared as numbers; NaN is never ordered.
    [Theory]
    [InlineData("1 < 2", true)]
    [InlineData("2 < 1", false)]
    [InlineData("1 <= 1", true)]
    [InlineData("2 > 1", true)]
    [InlineData("1 >= 2", false)]
    [InlineData("'b' >= 'a'", true)]
    [InlineData("'B' > 'a'", true)]
    [InlineData("'a' < 'B'", true)]
    [InlineData("'abc' <= 'ABC'", true)]
    [InlineData("'10' < 9", false)]
    [InlineData("'10' > 9", true)]
    [InlineData("false < true", true)]
    [InlineData("null < 1", true)]
    [InlineData("NaN < 1", false)]
    [InlineData("NaN >= NaN", false)]
    [InlineData("'x' < 1", false)]
    [InlineData("github > 0", false)]
    [InlineData("-Infinity < -1e300", true)]
    public void Compare_AsDocumented(string text, bool expected) => Assert.Equal(expected, Eval(text));

    // !: falsy values are false, 0, -0, NaN, '', null; everything else (arrays and objects too) is truthy.
    [Theory]
    [InlineData("!false", true)]
    [InlineData("!0", true)]
    [InlineData("!-0", true)]
    [InlineData("!NaN", true)]
    [InlineData("!''", true)]
    [InlineData("!null", true)]
    [InlineData("!'false'", false)]
    [InlineData("!'0'", false)]
    [InlineData("!github", false)]
    [InlineData("!fromJSON('[]')", false)]
    [InlineData("!!1", true)]
    public void Not_FalsyValues_AsDocumented(string text, bool expected) => Assert.Equal(expected, Eval(text));

    // && and || return an operand, not a boolean: the ternary idiom `cond && 'a' || 'b'`.
    [Theory]
    [InlineData("true && 'yes'", "s:yes")]
    [InlineData("0 && 'yes'", "n:0")]
    [InlineData("'' && 'yes'", "s:")]
    [InlineData("1 && 2 && 3", "n:3")]
    [InlineData("1 && null && 3", "null")]
    [InlineData("github.ref == 'refs/heads/main' && 'prod' || 'dev'", "s:prod")]
    [InlineData("github.ref == 'refs/heads/other' && 'prod' || 'dev'", "s:dev")]
    public void And_ReturnsTheDecidingOperand(string text, string expected) => Assert.Equal(expected, Render(Eval(text)));

    [Theory]
    [InlineData("null || 'fallback'", "s:fallback")]
    [InlineData("'first' || 'second'", "s:first")]
    [InlineData("0 || '' || null", "null")]
    [InlineData("false || 0 || 7", "n:7")]
    [InlineData("env.UNSET || env.NAME", "s:Mona")]
    public void Or_ReturnsTheDecidingOperand(string text, string expected) => Assert.Equal(expected, Render(Eval(text)));

    // Precedence, highest first: ( ) [ ] . ! < <= > >= == != && ||
    [Theory]
    [InlineData("true || false && false", true)]
    [InlineData("(true || false) && false", false)]
    [InlineData("!true == false", true)]
    [InlineData("1 < 2 == true", true)]
    [InlineData("!(1 == 2)", true)]
    public void Precedence_AsDocumented(string text, bool expected) => Assert.Equal(expected, Values.IsTruthy(Eval(text)));

    // . and [ ]: property de-reference and index; names ignore case; missing is null; .* filters.
    [Theory]
    [InlineData("github.ref", "s:refs/heads/main")]
    [InlineData("GITHUB.REF", "s:refs/heads/main")]
    [InlineData("github['event_name']", "s:push")]
    [InlineData("github['EVENT_NAME']", "s:push")]
    [InlineData("MATRIX.OS", "s:linux")]
    [InlineData("env.name", "s:Mona")]
    [InlineData("vars.region", "s:eu")]
    [InlineData("steps.build.outputs.version", "s:1.2")]
    [InlineData("steps.build.outputs.missing", "null")]
    [InlineData("steps.nothing.outputs.version", "null")]
    [InlineData("fromJSON('[10,20,30]')[1]", "n:20")]
    [InlineData("fromJSON('[10,20,30]')[1.7]", "n:20")]
    [InlineData("fromJSON('[10,20,30]')[3]", "null")]
    [InlineData("fromJSON('[10,20,30]')['1']", "n:20")]
    [InlineData("fromJSON('{\"a\":{\"b\":1}}')['a']['B']", "n:1")]
    [InlineData("fromJSON('[{\"n\":\"a\"},{\"n\":\"b\"},{\"x\":1}]').*.n", "json:[\"a\",\"b\"]")]
    [InlineData("fromJSON('[{\"n\":\"a\"},{\"n\":\"b\"}]')[*].n", "json:[\"a\",\"b\"]")]
    [InlineData("fromJSON('{\"a\":1,\"b\":2}').*", "json:[1,2]")]
    [InlineData("fromJSON('[[1,2],[3]]').*.*", "json:[1,2,3]")]
    [InlineData("github.ref.x", "null")]
    public void Property_AndIndex_AsDocumented(string text, string expected) => Assert.Equal(expected, Render(Eval(text)));

    // contains(search, item): a string contains a substring ignoring case; an array contains an element (loose equality).
    [Theory]
    [InlineData("contains('Hello world', 'llo')", true)]
    [InlineData("contains('Hello world', 'LLO')", true)]
    [InlineData("contains('Hello world', 'bye')", false)]
    [InlineData("contains(fromJSON('[\"bug\",\"help wanted\"]'), 'Bug')", true)]
    [InlineData("contains(fromJSON('[\"bug\"]'), 'bu')", false)]
    [InlineData("contains(fromJSON('[1,2]'), '2')", true)]
    [InlineData("contains(123, 2)", true)]
    [InlineData("contains(true, 'ru')", true)]
    [InlineData("contains(null, '')", true)]
    [InlineData("contains(github, 'ref')", false)]
    [InlineData("Contains('abc', 'b')", true)]
    public void Contains_AsDocumented(string text, bool expected) => Assert.Equal(expected, Eval(text));

    [Theory]
    [InlineData("startsWith('Hello world', 'he')", true)]
    [InlineData("startsWith('Hello world', 'world')", false)]
    [InlineData("startswith(1234, 12)", true)]
    [InlineData("STARTSWITH('a', '')", true)]
    [InlineData("startsWith(github, 'a')", false)]
    public void StartsWith_AsDocumented(string text, bool expected) => Assert.Equal(expected, Eval(text));

    [Theory]
    [InlineData("endsWith('Hello world', 'LD')", true)]
    [InlineData("endsWith('Hello world', 'hello')", false)]
    [InlineData("endswith(true, 'ue')", true)]
    [InlineData("endsWith(null, '')", true)]
    public void EndsWith_AsDocumented(string text, bool expected) => Assert.Equal(expected, Eval(text));

    // format(string, replaceValue0, …): {N} replaced, {{ and }} escape braces.
    [Theory]
    [InlineData("format('Hello {0} {1} {2}', 'Mona', 'the', 'Octocat')", "Hello Mona the Octocat")]
    [InlineData("format('{{Hello {0} {1} {2}!}}', 'Mona', 'the', 'Octocat')", "{Hello Mona the Octocat!}")]
    [InlineData("format('{0}{0}', 1)", "11")]
    [InlineData("format('{1}-{0}', 'a', true)", "true-a")]
    [InlineData("format('plain')", "plain")]
    [InlineData("format('{0}', null)", "")]
    [InlineData("FORMAT('{0}', 1.5)", "1.5")]
    public void Format_AsDocumented(string text, string expected) => Assert.Equal(expected, Eval(text));

    [Theory]
    [InlineData("format('{0} {1}', 'a')", "format(): {1} but only 1 argument(s) follow the format string")]
    [InlineData("format('{x}', 'a')", "format(): '{' at 0 does not start a placeholder such as {0}; write {{ for a brace: {x}")]
    [InlineData("format('a}b')", "format(): '}' at 1 closes nothing; write }} for a brace: a}b")]
    [InlineData("fromJSON('{')", "fromJSON(): not valid JSON")]
    public void Format_AndFromJson_BadInput_FailWithReason(string text, string message)
    {
        var error = Assert.Throws<ExpressionEvaluationException>(() => Eval(text));
        Assert.StartsWith(message, error.Message, StringComparison.Ordinal);
    }

    // join(array, optionalSeparator): elements cast to strings, ',' by default; a non-array is cast to a string.
    [Theory]
    [InlineData("join(fromJSON('[\"bug\",\"help wanted\"]'), ', ')", "bug, help wanted")]
    [InlineData("join(fromJSON('[1,true,null]'))", "1,true,")]
    [InlineData("join('abc', '-')", "abc")]
    [InlineData("join(fromJSON('[]'), '-')", "")]
    [InlineData("join(fromJSON('[{\"n\":1},{\"n\":2}]').*.n, '+')", "1+2")]
    public void Join_AsDocumented(string text, string expected) => Assert.Equal(expected, Eval(text));

    // toJSON(value): pretty-printed JSON; fromJSON(value): JSON to a value (how a matrix is built at run time).
    [Theory]
    [InlineData("toJSON('a')", "\"a\"")]
    [InlineData("toJSON(1)", "1")]
    [InlineData("toJSON(null)", "null")]
    [InlineData("toJSON(true)", "true")]
    [InlineData("toJSON(fromJSON('[1,\"x\"]'))", "[\n  1,\n  \"x\"\n]")]
    [InlineData("toJSON(fromJSON('{\"b\":1,\"a\":[]}'))", "{\n  \"b\": 1,\n  \"a\": []\n}")]
    [InlineData("toJSON('☃')", "\"☃\"")]
    public void ToJson_AsDocumented(string text, string expected) => Assert.Equal(expected, Eval(text));

    [Theory]
    [InlineData("fromJSON('true')", "true")]
    [InlineData("fromJSON('42')", "n:42")]
    [InlineData("fromJSON('\"s\"')", "s:s")]
    [InlineData("fromJSON('null')", "null")]
    [InlineData("fromJSON(' {\"include\":[{\"os\":\"linux\"}]} ').include[0].os", "s:linux")]
    [InlineData("fromJSON(env.COUNT) > 10", "true")]
    public void FromJson_AsDocumented(string text, string expected) => Assert.Equal(expected, Render(Eval(text)));

    // case(pred1, val1, …, default): the value of the first true predicate, else the default.
    [Theory]
    [InlineData("case(true, 'a', 'z')", "s:a")]
    [InlineData("case(false, 'a', 'z')", "s:z")]
    [InlineData("case(false, 'a', true, 'b', 'z')", "s:b")]
    [InlineData("case(github.event_name == 'push', 'pushed', github.event_name == 'pull_request', 'pr', 'other')", "s:pushed")]
    [InlineData("case(1 > 2, 1, 2)", "n:2")]
    public void Case_AsDocumented(string text, string expected) => Assert.Equal(expected, Render(Eval(text)));

    [Fact]
    public void Case_EvenArgumentCount_IsRejected()
    {
        var errors = ExpressionEvaluator.Validate(ExpressionParser.Parse("case(true, 'a')"), new ExpressionScope());

        Assert.Equal(["case() takes 3 to 255 argument(s), got 2"], errors.Select(e => e.Message));
        var four = ExpressionEvaluator.Validate(ExpressionParser.Parse("case(true, 'a', false, 'b')"), new ExpressionScope());
        Assert.Equal(["case() takes pairs of predicate and value, then a default: case(pred1, val1, …, default)"], four.Select(e => e.Message));
    }

    // Status functions: success() is implied in if: unless a status function is used; failure(), always(), cancelled().
    [Theory]
    [InlineData("success()", PriorOutcome.Success, true)]
    [InlineData("success()", PriorOutcome.Failure, false)]
    [InlineData("failure()", PriorOutcome.Failure, true)]
    [InlineData("failure()", PriorOutcome.Cancelled, false)]
    [InlineData("always()", PriorOutcome.Failure, true)]
    [InlineData("always()", PriorOutcome.Cancelled, true)]
    [InlineData("cancelled()", PriorOutcome.Cancelled, true)]
    [InlineData("cancelled()", PriorOutcome.Success, false)]
    [InlineData("failure()", PriorOutcome.Success, false)]
    [InlineData("success()", PriorOutcome.Skipped, false)]
    [InlineData("SUCCESS() || Failure()", PriorOutcome.Failure, true)]
    [InlineData("!cancelled()", PriorOutcome.Failure, true)]
    [InlineData("true", PriorOutcome.Failure, false)]
    [InlineData("env.NAME == 'mona'", PriorOutcome.Success, true)]
    [InlineData("format('{0}', failure()) == 'true'", PriorOutcome.Failure, true)]
    public void StatusFunctions_InIf_AsDocumented(string text, PriorOutcome prior, bool expected) =>
        Assert.Equal(expected, ExpressionEvaluator.EvaluateCondition(ExpressionParser.Parse(text), Context with { Prior = prior }));

    [Theory]
    [InlineData("${{ '}}' }}", "}}")]
    [InlineData("a${{ }}b", "ab")]
    [InlineData("${{ 'x' }}${{ 1 }}", "x1")]
    [InlineData("v=${{ fromJSON('[1,2]') }}", "v=[\n  1,\n  2\n]")]
    [InlineData("${{ '${{' }}", "${{")]
    public void Template_StringsAndEmptyExpressions_AsGitHub(string text, string expected) =>
        Assert.Equal(expected, Template.Parse(text).Render(Context));

    [Fact]
    public void Parse_NestingOverFifty_IsRejectedAtTheLevelThatIsTooDeep()
    {
        Assert.True(Values.IsTruthy(Eval(new string('(', 50) + "true" + new string(')', 50))));

        var parens = Assert.Throws<ExpressionException>(() => ExpressionParser.Parse(new string('(', 51) + "true" + new string(')', 51)));
        Assert.Equal(50, parens.Offset);
        Assert.StartsWith("the expression nests deeper than 50 levels", parens.Message, StringComparison.Ordinal);

        var nots = Assert.Throws<ExpressionException>(() => ExpressionParser.Parse(new string('!', 100_000) + "true"));
        Assert.Equal(50, nots.Offset);

        var deep = Assert.Throws<ExpressionException>(() => ExpressionParser.Parse(new string('(', 6000) + "1" + new string(')', 6000)));
        Assert.Equal(50, deep.Offset);

        var calls = string.Concat(Enumerable.Repeat("format('{0}', ", 51)) + "1" + new string(')', 51);
        Assert.Throws<ExpressionException>(() => ExpressionParser.Parse(calls));
    }

    [Fact]
    public void Evaluate_LongOrChain_EvaluatesEachOperandOnce()
    {
        // 40 terms took longer than a test run when || evaluated its left side twice; 10,000 must be immediate.
        var text = string.Join(" || ", Enumerable.Repeat("env.EMPTY", 10_000)) + " || 'end'";
        Assert.Equal("end", Eval(text));
        var and = string.Join(" && ", Enumerable.Repeat("env.NAME", 10_000));
        Assert.Equal("Mona", Eval(and));
        var compare = string.Join(" == ", Enumerable.Repeat("true", 10_000));
        Assert.Equal(true, Eval(compare));
    }

    [Fact]
    public void Evaluate_Cancelled_StopsWithinTheChain()
    {
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        var expr = ExpressionParser.Parse(string.Join(" || ", Enumerable.Repeat("env.EMPTY", 1000)));

        Assert.Throws<OperationCanceledException>(() => ExpressionEvaluator.Evaluate(expr, Context with { Cancellation = cts.Token }));
    }

    [Fact]
    public void Validate_CaseInsensitiveNames_AreKnown()
    {
        var scope = new ExpressionScope { StatusFunctions = true, MatrixKeys = ImmutableHashSet.Create(StringComparer.OrdinalIgnoreCase, "os"), SecretNames = ["TOKEN"] };

        Assert.Empty(ExpressionEvaluator.Validate(ExpressionParser.Parse("MATRIX.OS == 'x' && Secrets.token && startswith(GitHub.Ref, 'r') && Success()"), scope));
    }
}
