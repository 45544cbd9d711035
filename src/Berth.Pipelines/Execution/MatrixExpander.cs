using System.Collections.Immutable;
using Berth.Pipelines.Definition;

namespace Berth.Pipelines.Execution;

/// <summary>One runnable copy of a job: the job itself, or one matrix combination of it.</summary>
public sealed record JobInstance(JobDefinition Job, string Key, ImmutableDictionary<string, string> Matrix, ImmutableArray<string> MatrixOrder)
{
    public string MatrixJson => System.Text.Json.JsonSerializer.Serialize(MatrixOrder.ToDictionary(k => k, k => Matrix[k]));
}

/// <summary>Expands matrices as GitHub Actions does: cross product, minus exclude, then include (extends matching combinations or adds new ones).</summary>
public static class MatrixExpander
{
    public static IReadOnlyList<JobInstance> Expand(JobDefinition job)
    {
        if (job.Matrix is not { } matrix)
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
