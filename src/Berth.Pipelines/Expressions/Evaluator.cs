using System.Collections.Immutable;
using System.Text;

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

    /// <summary>
    /// The other contexts by name (ignoring case): <c>github</c>, <c>steps</c>, <c>needs</c>, <c>job</c>, <c>strategy</c>,
    /// <c>runner</c>, <c>inputs</c>, <c>vars</c>. A context missing here is an empty object.
    /// </summary>
    public ImmutableDictionary<string, object?> Contexts { get; init; } = Values.EmptyObject;

    public PriorOutcome Prior { get; init; } = PriorOutcome.Success;

    /// <summary>Folder hashFiles() globs from; null when hashFiles is not available.</summary>
    public string? Workspace { get; init; }

    /// <summary>Stops a long evaluation (cancel, timeout): checked once per operand of a chain and per function call.</summary>
    public CancellationToken Cancellation { get; init; }

    public ExpressionContext WithContext(string name, object? value) => this with { Contexts = Contexts.SetItem(name, value) };
}

/// <summary>What an expression may use where it is written; checked before anything runs.</summary>
public sealed record ExpressionScope
{
    /// <summary>success(), failure(), always(), cancelled(): only in <c>if:</c>.</summary>
    public bool StatusFunctions { get; init; }

    /// <summary>Matrix keys of the job; empty when the job has no matrix; null when they are known only at run time (fromJSON).</summary>
    public ImmutableHashSet<string>? MatrixKeys { get; init; } = ImmutableHashSet.Create<string>(StringComparer.OrdinalIgnoreCase);

    /// <summary>Secret names the pipeline declares.</summary>
    public ImmutableHashSet<string> SecretNames { get; init; } = [];
}

/// <summary>An expression that is well formed but cannot be evaluated with these values (fromJSON of bad JSON, a bad format string).</summary>
public sealed class ExpressionEvaluationException(string message) : InvalidOperationException(message);

/// <summary>Validates and evaluates expressions with GitHub Actions' semantics.</summary>
public static class ExpressionEvaluator
{
    private static readonly ImmutableDictionary<string, (string Name, int Min, int Max)> Functions = new (string Name, int Min, int Max)[]
    {
        ("success", 0, 0), ("failure", 0, 0), ("always", 0, 0), ("cancelled", 0, 0),
        ("hashFiles", 1, 16), ("contains", 2, 2), ("startsWith", 2, 2), ("endsWith", 2, 2),
        ("format", 1, 256), ("join", 1, 2), ("toJSON", 1, 1), ("fromJSON", 1, 1), ("case", 3, 255),
    }.ToImmutableDictionary(f => f.Name, f => f, StringComparer.OrdinalIgnoreCase);

    private static readonly ImmutableHashSet<string> StatusFunctionNames = ImmutableHashSet.Create(StringComparer.OrdinalIgnoreCase, "success", "failure", "always", "cancelled");

    /// <summary>Context names an expression may start with.</summary>
    public static readonly ImmutableHashSet<string> ContextNames = ImmutableHashSet.Create(StringComparer.OrdinalIgnoreCase,
        "env", "matrix", "secrets", "branch", "github", "steps", "needs", "job", "strategy", "runner", "inputs", "vars");

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
        LogicalExpr logical => logical.Operands.Any(UsesStatusFunction),
        CompareExpr compare => UsesStatusFunction(compare.First) || compare.Rest.Any(r => UsesStatusFunction(r.Operand)),
        MemberExpr member => UsesStatusFunction(member.Target),
        IndexExpr index => UsesStatusFunction(index.Target) || UsesStatusFunction(index.Index),
        FilterExpr filter => UsesStatusFunction(filter.Target),
        LiteralExpr or ContextExpr => false,
        _ => throw new InvalidOperationException($"unknown expression node {expr.GetType().Name}"),
    };

    private static void Walk(Expr expr, ExpressionScope scope, List<ExpressionException> errors)
    {
        switch (expr)
        {
            case ContextExpr context:
                if (!ContextNames.Contains(context.Name))
                {
                    var closest = Core.Loading.Suggestions.Closest(context.Name, ContextNames);
                    errors.Add(new ExpressionException(
                        $"unknown name '{context.Name}'; {(closest is null ? "" : $"did you mean {closest}? ")}use a context ({string.Join(", ", ContextNames.Order(StringComparer.Ordinal))}) or a function such as success()", context.Offset));
                }
                break;
            case MemberExpr { Target: ContextExpr root } member:
                ValidateMember(root, member, scope, errors);
                break;
            case MemberExpr member:
                Walk(member.Target, scope, errors);
                break;
            case IndexExpr index:
                Walk(index.Target, scope, errors);
                Walk(index.Index, scope, errors);
                break;
            case FilterExpr filter:
                Walk(filter.Target, scope, errors);
                break;
            case NotExpr not:
                Walk(not.Operand, scope, errors);
                break;
            case LogicalExpr logical:
                foreach (var operand in logical.Operands)
                {
                    Walk(operand, scope, errors);
                }

                break;
            case CompareExpr compare:
                Walk(compare.First, scope, errors);
                foreach (var (_, operand) in compare.Rest)
                {
                    Walk(operand, scope, errors);
                }

                break;
            case CallExpr call:
                ValidateCall(call, scope, errors);
                foreach (var argument in call.Arguments)
                {
                    Walk(argument, scope, errors);
                }

                break;
            case LiteralExpr:
                break;
        }
    }

    private static void ValidateCall(CallExpr call, ExpressionScope scope, List<ExpressionException> errors)
    {
        if (!Functions.TryGetValue(call.Function, out var function))
        {
            var closest = Core.Loading.Suggestions.Closest(call.Function, Functions.Values.Select(f => f.Name));
            errors.Add(new ExpressionException(
                $"unknown function {call.Function}(); {(closest is null ? "" : $"did you mean {closest}()? ")}known: {string.Join(", ", Functions.Values.Select(f => f.Name).Order(StringComparer.Ordinal).Select(f => f + "()"))}", call.Offset));
        }
        else if (StatusFunctionNames.Contains(call.Function) && !scope.StatusFunctions)
        {
            errors.Add(new ExpressionException($"{function.Name}() is only allowed in if:", call.Offset));
        }
        else if (call.Arguments.Length < function.Min || call.Arguments.Length > function.Max)
        {
            var expected = function.Min == function.Max ? $"{function.Min}" : $"{function.Min} to {function.Max}";
            errors.Add(new ExpressionException($"{function.Name}() takes {expected} argument(s), got {call.Arguments.Length}", call.Offset));
        }
        else if (function.Name == "case" && call.Arguments.Length % 2 == 0)
        {
            errors.Add(new ExpressionException("case() takes pairs of predicate and value, then a default: case(pred1, val1, …, default)", call.Offset));
        }
    }

    private static void ValidateMember(ContextExpr root, MemberExpr member, ExpressionScope scope, List<ExpressionException> errors)
    {
        Walk(root, scope, errors);
        if (root.Name.Equals("matrix", StringComparison.OrdinalIgnoreCase) && scope.MatrixKeys is { } keys && !keys.Contains(member.Name))
        {
            errors.Add(new ExpressionException(
                keys.IsEmpty
                    ? $"matrix.{member.Name} is used but this job has no matrix; add strategy.matrix.{member.Name}"
                    : $"matrix.{member.Name} is not a key of this job's matrix (keys: {string.Join(", ", keys.Order(StringComparer.Ordinal))})",
                root.Offset));
        }
        else if (root.Name.Equals("secrets", StringComparison.OrdinalIgnoreCase) && !scope.SecretNames.Contains(member.Name, StringComparer.OrdinalIgnoreCase))
        {
            errors.Add(new ExpressionException($"secrets.{member.Name} is not declared; list it under the pipeline's secrets:", root.Offset));
        }
    }

    public static object? Evaluate(Expr expr, ExpressionContext context)
    {
        switch (expr)
        {
            case LiteralExpr literal:
                return literal.Value;
            case ContextExpr reference:
                return Root(reference.Name, context);
            case MemberExpr member:
            {
                var target = Evaluate(member.Target, context);
                return target is Filtered filtered
                    ? new Filtered(Values.MemberOfEach(filtered, item => Values.Member(item, member.Name)))
                    : Values.Member(target, member.Name);
            }

            case IndexExpr index:
            {
                var target = Evaluate(index.Target, context);
                var key = Evaluate(index.Index, context);
                return target is Filtered filtered
                    ? new Filtered(Values.MemberOfEach(filtered, item => Values.Index(item, key)))
                    : Values.Index(target, key);
            }

            case FilterExpr filter:
            {
                var target = Evaluate(filter.Target, context);
                if (target is Filtered nested)
                {
                    // a.*.b.*: the elements of every element, flattened.
                    return new Filtered(nested.SelectMany(Values.Filter).ToList());
                }

                return new Filtered(Values.Filter(target));
            }

            case NotExpr not:
                return Box(!Values.IsTruthy(Evaluate(not.Operand, context)));
            case LogicalExpr logical:
            {
                // Each operand once, left to right, stopping at the first that decides: && gives the first falsy
                // operand (or the last), || the first truthy one (or the last), as GitHub returns operand values.
                object? value = null;
                foreach (var operand in logical.Operands)
                {
                    context.Cancellation.ThrowIfCancellationRequested();
                    value = Evaluate(operand, context);
                    if (Values.IsTruthy(value) != logical.IsAnd)
                    {
                        return value;
                    }
                }

                return value;
            }

            case CompareExpr compare:
            {
                var left = Evaluate(compare.First, context);
                foreach (var (op, operand) in compare.Rest)
                {
                    context.Cancellation.ThrowIfCancellationRequested();
                    var right = Evaluate(operand, context);
                    left = Box(op switch
                    {
                        "==" => Values.LooseEquals(left, right),
                        "!=" => !Values.LooseEquals(left, right),
                        _ => Values.Compare(op, left, right),
                    });
                }

                return left;
            }

            case CallExpr call:
                context.Cancellation.ThrowIfCancellationRequested();
                return Call(call, context);
            default:
                throw new InvalidOperationException($"unknown expression node {expr.GetType().Name}");
        }
    }

    private static readonly object BoxedTrue = true;
    private static readonly object BoxedFalse = false;

    /// <summary>One boxed true and one boxed false for every comparison, instead of an allocation per term.</summary>
    private static object Box(bool value) => value ? BoxedTrue : BoxedFalse;

    public static bool EvaluateCondition(Expr expr, ExpressionContext context)
    {
        var value = Values.IsTruthy(Evaluate(expr, context));
        // As GitHub Actions: without a status function, success() && is implied.
        return UsesStatusFunction(expr) ? value : value && context.Prior == PriorOutcome.Success;
    }

    public static bool IsTruthy(object? value) => Values.IsTruthy(value);

    public static string ToText(object? value) => Values.ToText(value);

    private static object? Root(string name, ExpressionContext context)
    {
        if (context.Contexts.TryGetValue(name, out var value))
        {
            return value;
        }

        // Compared ignoring case without lowering the name (no string per evaluation).
        return name switch
        {
            _ when name.Equals("env", StringComparison.OrdinalIgnoreCase) => context.Env,
            _ when name.Equals("matrix", StringComparison.OrdinalIgnoreCase) => context.Matrix,
            _ when name.Equals("secrets", StringComparison.OrdinalIgnoreCase) => context.Secrets,
            _ when name.Equals("branch", StringComparison.OrdinalIgnoreCase) => context.Branch,
            _ => Values.EmptyObject,
        };
    }

    private static object? Call(CallExpr call, ExpressionContext context)
    {
        object? Arg(int i) => Evaluate(call.Arguments[i], context);
        var name = Functions.TryGetValue(call.Function, out var function) ? function.Name : call.Function;
        switch (name)
        {
            case "success":
                return context.Prior == PriorOutcome.Success;
            case "failure":
                return context.Prior == PriorOutcome.Failure;
            case "cancelled":
                return context.Prior == PriorOutcome.Cancelled;
            case "always":
                return true;
            case "contains":
            {
                var search = Arg(0);
                var item = Arg(1);
                if (search is IReadOnlyList<object?> list)
                {
                    return list.Any(element => Values.IsPrimitive(element) && Values.LooseEquals(element, item));
                }

                return Values.IsPrimitive(search) && Values.IsPrimitive(item) &&
                    Values.ToText(search).Contains(Values.ToText(item), StringComparison.OrdinalIgnoreCase);
            }

            case "startsWith" or "endsWith":
            {
                var subject = Arg(0);
                var part = Arg(1);
                if (!Values.IsPrimitive(subject) || !Values.IsPrimitive(part))
                {
                    return false;
                }

                return name == "startsWith"
                    ? Values.ToText(subject).StartsWith(Values.ToText(part), StringComparison.OrdinalIgnoreCase)
                    : Values.ToText(subject).EndsWith(Values.ToText(part), StringComparison.OrdinalIgnoreCase);
            }

            case "format":
                return Format(Values.ToText(Arg(0)), call.Arguments.Skip(1).Select(a => Values.ToText(Evaluate(a, context))).ToList());
            case "join":
            {
                var array = Arg(0);
                var separator = call.Arguments.Length > 1 ? Values.ToText(Arg(1)) : ",";
                return array is IReadOnlyList<object?> items ? string.Join(separator, items.Select(Values.ToText)) : Values.ToText(array);
            }

            case "toJSON":
                return Values.ToJson(Arg(0));
            case "fromJSON":
            {
                var text = Values.ToText(Arg(0));
                try
                {
                    return Values.FromJson(text);
                }
                catch (System.Text.Json.JsonException e)
                {
                    throw new ExpressionEvaluationException($"fromJSON(): not valid JSON ({e.Message}): {Shorten(text)}");
                }
            }

            case "case":
                for (var i = 0; i + 1 < call.Arguments.Length; i += 2)
                {
                    if (Values.IsTruthy(Arg(i)))
                    {
                        return Arg(i + 1);
                    }
                }

                return Arg(call.Arguments.Length - 1);
            case "hashFiles":
                return Execution.FileHasher.HashFiles(
                    context.Workspace ?? throw new ExpressionEvaluationException("hashFiles() needs a workspace"),
                    call.Arguments.Select((_, i) => Values.ToText(Arg(i))).ToList());
            default:
                throw new ExpressionEvaluationException($"unknown function {call.Function}()");
        }
    }

    /// <summary><c>format('{0} {1}', a, b)</c>: <c>{N}</c> is the Nth argument, <c>{{</c> and <c>}}</c> are braces.</summary>
    private static string Format(string pattern, IReadOnlyList<string> args)
    {
        var text = new StringBuilder(pattern.Length);
        for (var i = 0; i < pattern.Length; i++)
        {
            var c = pattern[i];
            if (c == '{' && i + 1 < pattern.Length && pattern[i + 1] == '{')
            {
                text.Append('{');
                i++;
            }
            else if (c == '}' && i + 1 < pattern.Length && pattern[i + 1] == '}')
            {
                text.Append('}');
                i++;
            }
            else if (c == '{')
            {
                var close = pattern.IndexOf('}', i + 1);
                if (close < 0 || !int.TryParse(pattern.AsSpan(i + 1, close - i - 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var n))
                {
                    throw new ExpressionEvaluationException($"format(): '{{' at {i} does not start a placeholder such as {{0}}; write {{{{ for a brace: {Shorten(pattern)}");
                }

                if (n >= args.Count)
                {
                    throw new ExpressionEvaluationException($"format(): {{{n}}} but only {args.Count} argument(s) follow the format string");
                }

                text.Append(args[n]);
                i = close;
            }
            else if (c == '}')
            {
                throw new ExpressionEvaluationException($"format(): '}}' at {i} closes nothing; write }}}} for a brace: {Shorten(pattern)}");
            }
            else
            {
                text.Append(c);
            }
        }

        return text.ToString();
    }

    private static string Shorten(string text) => text.Length <= 80 ? text : text[..77] + "...";

    /// <summary>The array a filter (<c>.*</c>) produced; members and indexes after it apply to each element.</summary>
    private sealed class Filtered(IReadOnlyList<object?> items) : IReadOnlyList<object?>
    {
        public object? this[int index] => items[index];

        public int Count => items.Count;

        public IEnumerator<object?> GetEnumerator() => items.GetEnumerator();

        System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
    }
}
