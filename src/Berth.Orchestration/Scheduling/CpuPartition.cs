using System.Globalization;
using Berth.Core.Model;

namespace Berth.Orchestration.Scheduling;

/// <summary>Gives each node its own CPUs (a cpuset) out of the ones this process may use: whole CPUs in turn, as many
/// as the node's CPU rounded up. When the nodes ask for more CPUs than there are, later nodes share from the start
/// again (their CFS quota still caps them).</summary>
public static class CpuPartition
{
    public static IReadOnlyList<string?> Assign(IReadOnlyList<CpuQuantity> nodes, IReadOnlyList<int> cpus)
    {
        if (cpus.Count == 0)
        {
            return [.. nodes.Select(_ => (string?)null)];
        }

        var result = new List<string?>(nodes.Count);
        var next = 0;
        foreach (var cpu in nodes)
        {
            var count = (int)Math.Clamp(Math.Ceiling(cpu.MilliCores / 1000.0), 1, cpus.Count);
            var ids = Enumerable.Range(next, count).Select(i => cpus[i % cpus.Count]).Order().ToList();
            next = (next + count) % cpus.Count;
            result.Add(Format(ids));
        }

        return result;
    }

    /// <summary>The CPUs this process may run on (its affinity mask), e.g. [0, 1].</summary>
    public static IReadOnlyList<int> UsableCpus()
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsWindows())
        {
            return [.. Enumerable.Range(0, Environment.ProcessorCount)];
        }

        try
        {
            var mask = (long)System.Diagnostics.Process.GetCurrentProcess().ProcessorAffinity;
            var ids = Enumerable.Range(0, 64).Where(i => (mask & (1L << i)) != 0).ToList();
            return ids.Count > 0 ? ids : [.. Enumerable.Range(0, Environment.ProcessorCount)];
        }
        catch (PlatformNotSupportedException)
        {
            return [.. Enumerable.Range(0, Environment.ProcessorCount)];
        }
    }

    /// <summary>cpuset list form: <c>0-3,6</c>.</summary>
    public static string Format(IReadOnlyList<int> sortedIds)
    {
        var parts = new List<string>();
        for (var i = 0; i < sortedIds.Count;)
        {
            var j = i;
            while (j + 1 < sortedIds.Count && sortedIds[j + 1] == sortedIds[j] + 1)
            {
                j++;
            }

            parts.Add(i == j ? sortedIds[i].ToString(CultureInfo.InvariantCulture) : string.Create(CultureInfo.InvariantCulture, $"{sortedIds[i]}-{sortedIds[j]}"));
            i = j + 1;
        }

        return string.Join(',', parts);
    }
}
