using System.Collections.Immutable;
using System.Globalization;

namespace Berth.Pipelines.Expressions;

/// <summary>How the jobs or steps before this one ended, for success()/failure()/cancelled().</summary>
public enum PriorOutcome
{
    Success,
    Failure,
    Cancelled,

    /// <summary>A needed job was skipped: neither success() nor failure().</summary>
    Skipped,
}

/// <summary>The values an expression can see when it runs.</summary>
public sealed record ExpressionContext
{
    public IReadOnlyDictionary<string, string> Env { get; init; } = ImmutableDictionary<string, string>.Empty;

    public IReadOnlyDictionary<string, string> Matrix { get; init; } = ImmutableDictionary<string, string>.Empty;

    public IReadOnlyDictionary<string, string> Secrets { get; init; } = ImmutableDictionary<string, string>.Empty;

    /// <summary>The branch the run is for (git's current branch unless given).</summary>
    public string Branch { get; init; } = "";

    public PriorOutcome Prior { get; init; } = PriorOutcome.Success;

    /// <summary>Folder hashFiles() globs from; null when hashFiles is not available.</summary>
    public string? Workspace { get; init; }
}

/// <summary>What an expression may use where it is written; checked before anything runs.</summary>
public sealed record ExpressionScope
{
    /// <summary>success(), failure(), always(), cancelled(): only in <c>if:</c>.</summary>
    public bool StatusFunctions { get; init; }

    /// <summary>Matrix keys of the job, or empty when the job has no matrix.</summary>
    public ImmutableHashSet<string> MatrixKeys { get; init; } = [];

    /// <summary>Secret names the pipeline declares.</summary>
    public ImmutableHashSet<string> SecretNames { get; init; } = [];
}

/// <summary>Validates and evaluates expressions with GitHub Actions' semantics (loose equality, case-insensitive strings, falsy null/false/0/'').</summary>
public static class ExpressionEvaluator
{
    private static readonly ImmutableDictionary<string, (int Min, int Max)> Functions = new Dictionary<string, (int, int)>
    {
        ["success"] = (0, 0),
        ["failure"] = (0, 0),
        ["always"] = (0, 0),
        ["cancelled"] = (0, 0),
        ["hashFiles"] = (1, 16),
        ["contains"] = (2, 2),
        ["startsWith"] = (2, 2),
        ["endsWith"] = (2, 2),
    }.ToImmutableDictionary();

    private static readonly ImmutableHashSet<string> StatusFunctionNames = ["success", "failure", "always", "cancelled"];

    /// <summary>Every problem in <paramref name="expr"/> given where it is written; empty when fine.</summary>
    public static IReadOnlyList<ExpressionException> Validate(Expr expr, ExpressionScope scope)
    {
        var errors = new List<ExpressionException>();
        Walk(expr, scope, errors);
        return errors;
    }

    /// <summary>True when the expression calls a status function (then the default success() is not implied).</summary>
    public static bool UsesStatusFunction(Expr expr) => expr switch
    {
        CallExpr call => StatusFunctionNames.Contains(call.Function) || call.Arguments.Any(UsesStatusFunction),
        NotExpr not => UsesStatusFunction(not.Operand),
        BinaryExpr binary => UsesStatusFunction(binary.Left) || UsesStatusFunction(binary.Right),
        _ => false,
    };

    private static void Walk(Expr expr, ExpressionScope scope, List<ExpressionException> errors)
    {
        switch (expr)
        {
            case ContextExpr context:
                ValidateContext(context, scope, errors);
                break;
            case NotExpr not:
                Walk(not.Operand, scope, errors);
                break;
            case BinaryExpr binary:
                Walk(binary.Left, scope, errors);
                Walk(binary.Right, scope, errors);
                break;
            case CallExpr call:
                if (!Functions.TryGetValue(call.Function, out var arity))
                {
                    errors.Add(new ExpressionException(
                        $"unknown function {call.Function}(); known: {string.Join(", ", Functions.Keys.Order(StringComparer.Ordinal).Select(f => f + "()"))}", call.Offset));
                }
                else if (StatusFunctionNames.Contains(call.Function) && !scope.StatusFunctions)
                {
                    errors.Add(new ExpressionException($"{call.Function}() is only allowed in if:", call.Offset));
                }
                else if (call.Arguments.Length < arity.Min || call.Arguments.Length > arity.Max)
                {
                    var expected = arity.Min == arity.Max ? $"{arity.Min}" : $"{arity.Min} to {arity.Max}";
                    errors.Add(new ExpressionException($"{call.Function}() takes {expected} argument(s), got {call.Arguments.Length}", call.Offset));
                }

                foreach (var argument in call.Arguments)
                {
                    Walk(argument, scope, errors);
                }

                break;
        }
    }

    private static void ValidateContext(ContextExpr context, ExpressionScope scope, List<ExpressionException> errors)
    {
        var root = context.Path[0];
        switch (root)
        {
            case "branch" when context.Path.Length == 1:
                return;
            case "env" when context.Path.Length == 2:
                return;
            case "matrix" when context.Path.Length == 2:
                if (!scope.MatrixKeys.Contains(context.Path[1]))
                {
                    errors.Add(new ExpressionException(
                        scope.MatrixKeys.IsEmpty
                            ? $"matrix.{context.Path[1]} is used but this job has no matrix; add strategy.matrix.{context.Path[1]}"
                            : $"matrix.{context.Path[1]} is not a key of this job's matrix (keys: {string.Join(", ", scope.MatrixKeys.Order(StringComparer.Ordinal))})",
                        context.Offset));
                }

                return;
            case "secrets" when context.Path.Length == 2:
                if (!scope.SecretNames.Contains(context.Path[1]))
                {
                    errors.Add(new ExpressionException($"secrets.{context.Path[1]} is not declared; list it under the pipeline's secrets:", context.Offset));
                }

                return;
            case "env" or "matrix" or "secrets":
                errors.Add(new ExpressionException($"write {root}.NAME (one name after '{root}.'), got {context}", context.Offset));
                return;
            default:
                errors.Add(new ExpressionException(
                    $"unknown name '{context}'; use env.NAME, matrix.NAME, secrets.NAME, branch, or a function such as success()", context.Offset));
                return;
        }
    }

    public static object? Evaluate(Expr expr, ExpressionContext context) => expr switch
    {
        LiteralExpr literal => literal.Value,
        ContextExpr reference => Lookup(reference, context),
        NotExpr not => !IsTruthy(Evaluate(not.Operand, context)),
        BinaryExpr { Operator: "&&" } and => IsTruthy(Evaluate(and.Left, context)) ? Evaluate(and.Right, context) : Evaluate(and.Left, context),
        BinaryExpr { Operator: "||" } or => IsTruthy(Evaluate(or.Left, context)) ? Evaluate(or.Left, context) : Evaluate(or.Right, context),
        BinaryExpr binary => Compare(binary.Operator, Evaluate(binary.Left, context), Evaluate(binary.Right, context)),
        CallExpr call => Call(call, context),
        _ => throw new InvalidOperationException($"unknown expression node {expr.GetType().Name}"),
    };

    public static bool EvaluateCondition(Expr expr, ExpressionContext context)
    {
        var value = IsTruthy(Evaluate(expr, context));
        // As GitHub Actions: without a status function, success() && is implied.
        return UsesStatusFunction(expr) ? value : value && context.Prior == PriorOutcome.Success;
    }

    public static bool IsTruthy(object? value) => value switch
    {
        null => false,
        bool b => b,
        double d => d != 0 && !double.IsNaN(d),
        string s => s.Length > 0,
        _ => true,
    };

    public static string ToText(object? value) => value switch
    {
        null => "",
        bool b => b ? "true" : "false",
        double d => d.ToString(CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "",
    };

    private static object? Lookup(ContextExpr reference, ExpressionContext context)
    {
        IReadOnlyDictionary<string, string>? map = reference.Path[0] switch
        {
            "env" => context.Env,
            "matrix" => context.Matrix,
            "secrets" => context.Secrets,
            _ => null,
        };
        if (reference.Path[0] == "branch")
        {
            return context.Branch;
        }

        return map is not null && map.TryGetValue(reference.Path[1], out var value) ? value : null;
    }

    private static object Compare(string op, object? left, object? right)
    {
        if (op is "==" or "!=")
        {
            var equal = LooseEquals(left, right);
            return op == "==" ? equal : !equal;
        }

        var l = ToNumber(left);
        var r = ToNumber(right);
        return op switch
        {
            "<" => l < r,
            "<=" => l <= r,
            ">" => l > r,
            ">=" => l >= r,
            _ => throw new InvalidOperationException($"unknown operator {op}"),
        };
    }

    private static bool LooseEquals(object? left, object? right)
    {
        if (left is string ls && right is string rs)
        {
            return string.Equals(ls, rs, StringComparison.OrdinalIgnoreCase);
        }

        if (left is null || right is null)
        {
            return left is null && right is null;
        }

        return ToNumber(left).Equals(ToNumber(right));
    }

    private static double ToNumber(object? value) => value switch
    {
        null => 0,
        bool b => b ? 1 : 0,
        double d => d,
        string s when s.Trim().Length == 0 => 0,
        string s => double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) ? d : double.NaN,
        _ => double.NaN,
    };

    private static object? Call(CallExpr call, ExpressionContext context)
    {
        string Arg(int i) => ToText(Evaluate(call.Arguments[i], context));
        return call.Function switch
        {
            "success" => context.Prior == PriorOutcome.Success,
            "failure" => context.Prior == PriorOutcome.Failure,
            "cancelled" => context.Prior == PriorOutcome.Cancelled,
            "always" => true,
            "contains" => Arg(0).Contains(Arg(1), StringComparison.OrdinalIgnoreCase),
            "startsWith" => Arg(0).StartsWith(Arg(1), StringComparison.OrdinalIgnoreCase),
            "endsWith" => Arg(0).EndsWith(Arg(1), StringComparison.OrdinalIgnoreCase),
            "hashFiles" => Execution.FileHasher.HashFiles(
                context.Workspace ?? throw new InvalidOperationException("hashFiles() needs a workspace"),
                call.Arguments.Select((_, i) => Arg(i)).ToList()),
            _ => throw new InvalidOperationException($"unknown function {call.Function}"),
        };
    }
}
