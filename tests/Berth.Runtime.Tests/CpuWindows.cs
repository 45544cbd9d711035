using System.Diagnostics;
using Berth.Testing;

namespace Berth.Runtime.Tests;

/// <summary>
/// Measures a busy replica's CPU share in consecutive 2 s windows of its own CPU time (cgroup cpuacct / docker stats).
/// A quota is a cap, not a guarantee: on a machine other builds keep busy a window can fall short, so it measures until
/// one window shows the cap binding (up to 50 s), and the caller checks that no window ever exceeded it.
/// </summary>
internal static class CpuWindows
{
    public static async Task<List<ReplicaStats>> MeasureAsync(Func<Task<ReplicaStats>> sample)
    {
        List<ReplicaStats> windows = [];
        await sample(); // the first sample only sets the start of the first window
        var window = Stopwatch.StartNew();
        await Poll.UntilAsync(
            async () =>
            {
                if (window.Elapsed < TimeSpan.FromSeconds(2))
                {
                    return false;
                }

                var stats = await sample();
                window.Restart();
                windows.Add(stats);
                return stats.CpuPercent is >= 40 and <= 60 || windows.Count >= 25;
            },
            TimeSpan.FromSeconds(90),
            "a 2s window of CPU use at the 0.5 CPU limit",
            TimeSpan.FromMilliseconds(100));
        return windows;
    }
}
