using System.Collections.Immutable;
using Berth.Pipelines.Definition;
using Berth.Pipelines.Expressions;

namespace Berth.Pipelines.Execution;

/// <summary>One runnable copy of a job: the job itself, or one matrix combination of it.</summary>
public sealed record JobInstance(JobDefinition Job, string Key, ImmutableDictionary<string, string> Matrix, ImmutableArray<string> MatrixOrder)
{
    public string MatrixJson => System.Text.Json.JsonSerializer.Serialize(MatrixOrder.ToDictionary(k => k, k => Matrix[k]));
}

/// <summary>Expands matrices as GitHub Actions does: cross product, minus exclude, then include (extends matching combinations or adds new ones).</summary>
public static class MatrixExpander
{
    public static IReadOnlyList<JobInstance> Expand(JobDefinition job) => Expand(job, job.Matrix);

    /// <summary>
    /// A matrix given by an expression (<c>matrix: ${{ fromJSON(needs.setup.outputs.matrix) }}</c>): an object of axes
    /// (arrays) with optional <c>include</c> and <c>exclude</c> (arrays of objects); values are used as strings.
    /// </summary>
    public static MatrixDefinition FromValue(MatrixDefinition strategy, object? value)
    {
        if (value is not IReadOnlyDictionary<string, object?> map)
        {
            throw new StepFailedException($"the matrix expression gave {Describe(value)}; it must give an object such as {{\"os\": [\"linux\"], \"include\": [...]}}");
        }

        var axes = ImmutableArray.CreateBuilder<(string, ImmutableArray<string>)>();
        var include = ImmutableArray<ImmutableDictionary<string, string>>.Empty;
        var exclude = ImmutableArray<ImmutableDictionary<string, string>>.Empty;
        foreach (var (key, axis) in map)
        {
            if (axis is not IReadOnlyList<object?> list)
            {
                throw new StepFailedException($"matrix key '{key}' gave {Describe(axis)}; each matrix key needs an array");
            }

            if (key.Equals("include", StringComparison.OrdinalIgnoreCase) || key.Equals("exclude", StringComparison.OrdinalIgnoreCase))
            {
                var combos = list.Select(item => item is IReadOnlyDictionary<string, object?> combo
                    ? combo.ToImmutableDictionary(kv => kv.Key, kv => Values.ToText(kv.Value))
                    : throw new StepFailedException($"matrix {key} holds {Describe(item)}; it needs objects of matrix keys to values")).ToImmutableArray();
                if (key.Equals("include", StringComparison.OrdinalIgnoreCase))
                {
                    include = combos;
                }
                else
                {
                    exclude = combos;
                }

                continue;
            }

            axes.Add((key, [.. list.Select(Values.ToText)]));
        }

        if (axes.Count == 0 && include.IsEmpty)
        {
            throw new StepFailedException("the matrix expression gave an empty matrix; give at least one key with values, or include:");
        }

        return strategy with { Dynamic = null, Axes = axes.ToImmutable(), Include = include, Exclude = exclude };
    }

    private static string Describe(object? value) => value switch
    {
        null => "null",
        string s => $"the string '{(s.Length > 40 ? s[..37] + "..." : s)}'",
        IReadOnlyList<object?> => "an array",
        _ => Values.ToText(value),
    };

    public static IReadOnlyList<JobInstance> Expand(JobDefinition job, MatrixDefinition? matrix)
    {
        if (matrix is null || matrix.Dynamic is not null || (matrix.Axes.IsEmpty && matrix.Include.IsEmpty))
        {
            return [new JobInstance(job, job.Id, ImmutableDictionary<string, string>.Empty, [])];
        }

        var combos = new List<ImmutableDictionary<string, string>> { ImmutableDictionary<string, string>.Empty };
        foreach (var (key, values) in matrix.Axes)
        {
            combos = combos.SelectMany(c => values.Select(v => c.SetItem(key, v))).ToList();
        }

        if (matrix.Axes.IsEmpty)
        {
            combos.Clear();
        }

        combos.RemoveAll(c => matrix.Exclude.Any(e => e.All(kv => c.TryGetValue(kv.Key, out var v) && v == kv.Value)));
        var axisKeys = matrix.Axes.Select(a => a.Key).ToHashSet();
        var originalCount = combos.Count;
        foreach (var include in matrix.Include)
        {
            var matched = false;
            for (var i = 0; i < originalCount; i++)
            {
                if (include.Where(kv => axisKeys.Contains(kv.Key)).All(kv => combos[i][kv.Key] == kv.Value))
                {
                    combos[i] = combos[i].SetItems(include.Where(kv => !axisKeys.Contains(kv.Key)));
                    matched = true;
                }
            }

            if (!matched)
            {
                combos.Add(include);
            }
        }

        var order = matrix.Axes.Select(a => a.Key).Concat(matrix.Include.SelectMany(i => i.Keys).Where(k => !axisKeys.Contains(k)).Distinct()).ToImmutableArray();
        return combos.Select(c =>
        {
            var keys = order.Where(c.ContainsKey).ToImmutableArray();
            return new JobInstance(job, $"{job.Id} ({string.Join(", ", keys.Select(k => c[k]))})", c, keys);
        }).ToList();
    }
}
