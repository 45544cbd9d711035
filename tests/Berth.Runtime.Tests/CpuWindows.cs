
namespace Berth.Runtime.Tests;

/// <summary>
/// Measures a busy replica's CPU share in consecutive 2 s windows of its own CPU time (cgroup cpuacct / docker stats).
/// A quota is a cap, not a guarantee: on a machine other builds keep busy a window can fall short, so it measures until
/// one window shows the cap binding (up to 50 s), and the caller checks that no window ever exceeded it.
/// </summary>
internal static class CpuWindows
{
    /// <summary>
    /// Berth's subtree weighed as 64 ordinary processes: other engineers' compilers keep this machine's two cores
    /// saturated, and a quota only binds when the replica can get the CPU at all (the same ProcessDriverOptions.CpuShares
    /// a busy production machine would use). Put back to the kernel default afterwards.
    /// </summary>
    public const long Shares = 64 * 1024;

    public static void RestoreDefaultShares()
    {
        if (File.Exists("/sys/fs/cgroup/cpu/berth/cpu.shares"))
        {
            File.WriteAllText("/sys/fs/cgroup/cpu/berth/cpu.shares", "1024");
        }
    }

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
