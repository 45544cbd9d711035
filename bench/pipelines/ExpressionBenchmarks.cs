using System.Collections.Immutable;
using BenchmarkDotNet.Attributes;
using Berth.Pipelines.Expressions;

namespace Berth.Bench.Pipelines;

/// <summary>
/// Issue #20: parsing and evaluating a 10,000-term expression must take under 50 ms (30 terms of || took 6.4 s when
/// the left operand was evaluated twice). Baseline: tokenizing the same text, the floor any parser pays.
/// </summary>
[MemoryDiagnoser]
public class ExpressionBenchmarks
{
    private static readonly ExpressionContext Context = new()
    {
        Env = ImmutableDictionary<string, string>.Empty.Add("NAME", "mona").Add("EMPTY", ""),
    };

    private string _or = "";
    private string _and = "";
    private string _mixed = "";
    private Expr _parsedOr = null!;

    [Params(10_000)]
    public int Terms { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        // No term decides until the last: every operand is evaluated once.
        _or = string.Join(" || ", Enumerable.Repeat("env.NAME == 'octocat'", Terms - 1)) + " || env.NAME == 'Mona'";
        _and = string.Join(" && ", Enumerable.Repeat("startsWith(env.NAME, 'M')", Terms));
        _mixed = string.Join(" || ", Enumerable.Range(0, Terms / 2).Select(i => $"(env.EMPTY && {i} < 0)")) + " || !(env.NAME != 'mona')";
        _parsedOr = ExpressionParser.Parse(_or);
    }

    [Benchmark(Baseline = true)]
    public int TokenizeOr() => ExpressionParser.Lexer.Tokenize(_or).Count();

    [Benchmark]
    public Expr ParseOr() => ExpressionParser.Parse(_or);

    [Benchmark]
    public object? EvaluateParsedOr() => ExpressionEvaluator.Evaluate(_parsedOr, Context);

    [Benchmark]
    public object? ParseAndEvaluateOr() => ExpressionEvaluator.Evaluate(ExpressionParser.Parse(_or), Context);

    [Benchmark]
    public object? ParseAndEvaluateAnd() => ExpressionEvaluator.Evaluate(ExpressionParser.Parse(_and), Context);

    [Benchmark]
    public object? ParseAndEvaluateMixed() => ExpressionEvaluator.Evaluate(ExpressionParser.Parse(_mixed), Context);
}

/// <summary>
/// The peer in the same run: Jint (a mature JavaScript parser and interpreter) given the same text, which is valid
/// JavaScript too. Jint refuses nesting deeper than 256, and a chain of || is nested, so the comparison runs at 200 terms.
/// </summary>
[MemoryDiagnoser]
public class ExpressionPeerBenchmarks
{
    private static readonly ExpressionContext Context = new()
    {
        Env = ImmutableDictionary<string, string>.Empty.Add("NAME", "mona"),
    };

    private readonly Jint.Engine _jint = new Jint.Engine().SetValue("env", new Dictionary<string, object> { ["NAME"] = "mona" });
    private string _or = "";

    [Params(200)]
    public int Terms { get; set; }

    [GlobalSetup]
    public void Setup() =>
        _or = string.Join(" || ", Enumerable.Repeat("env.NAME == 'octocat'", Terms - 1)) + " || env.NAME == 'mona'";

    [Benchmark(Baseline = true)]
    public object? BerthParseAndEvaluateOr() => ExpressionEvaluator.Evaluate(ExpressionParser.Parse(_or), Context);

    [Benchmark]
    public object JintParseAndEvaluateOr() => _jint.Evaluate(_or).ToObject()!;
}
