using System.Globalization;

namespace Berth.Runtime.Process;

/// <summary>One process of a replica (<c>berth top</c>), as <c>ps</c> shows it: %CPU is the share of one core over the
/// process's life and RSS its resident memory.</summary>
public sealed record ProcessRow(int Pid, int ParentPid, string User, double CpuPercent, long ResidentBytes, TimeSpan CpuTime, string Command);

/// <summary>The processes of a replica read from /proc: every member of the replica's own cgroup (as <c>docker top</c>
/// lists a container's cgroup, so commands run by <c>exec</c> show too), else the process and its descendants (a replica
/// without limits shares the control plane's cgroup).</summary>
public static class ProcessTable
{
    /// <summary>USER_HZ: /proc's clock ticks, 100 on every Linux architecture's user-space interface.</summary>
    private const double TicksPerSecond = 100;

    public static IReadOnlyList<ProcessRow> Of(int pid)
    {
        IEnumerable<int> members;
        try
        {
            var (procs, _) = ReplicaExecContext.CgroupJoins(pid);
            members = procs.Count > 0 ? Cgroups.CgroupDetector.ReadPids(procs[0]) : Descendants(pid);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return []; // the replica is gone
        }

        var uptime = double.Parse(File.ReadAllText("/proc/uptime").Split(' ')[0], CultureInfo.InvariantCulture);
        var users = Users();
        return [.. members.Distinct().Order().Select(p => Row(p, uptime, users)).OfType<ProcessRow>()];
    }

    private static List<int> Descendants(int root)
    {
        var children = new Dictionary<int, List<int>>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out var pid) && Stat(pid) is { } stat)
            {
                (children.TryGetValue(stat.ParentPid, out var list) ? list : children[stat.ParentPid] = []).Add(pid);
            }
        }

        var result = new List<int> { root };
        for (var i = 0; i < result.Count; i++)
        {
            result.AddRange(children.GetValueOrDefault(result[i]) ?? []);
        }

        return result;
    }

    private sealed record StatFields(int ParentPid, long CpuTicks, long StartTicks, string Name);

    private static StatFields? Stat(int pid)
    {
        try
        {
            var line = File.ReadAllText($"/proc/{pid}/stat");
            var close = line.LastIndexOf(')');
            var fields = line[(close + 2)..].Split(' ');
            return new StatFields(int.Parse(fields[1], CultureInfo.InvariantCulture),
                long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture),
                long.Parse(fields[19], CultureInfo.InvariantCulture), line[(line.IndexOf('(') + 1)..close]);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
        {
            return null;
        }
    }

    private static ProcessRow? Row(int pid, double uptime, IReadOnlyDictionary<int, string> users)
    {
        if (Stat(pid) is not { } stat)
        {
            return null;
        }

        try
        {
            int uid = 0;
            long rss = 0;
            foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            {
                if (line.StartsWith("Uid:", StringComparison.Ordinal))
                {
                    uid = int.Parse(line.Split('\t', StringSplitOptions.RemoveEmptyEntries)[2], CultureInfo.InvariantCulture);
                }
                else if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                {
                    rss = long.Parse(line["VmRSS:".Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
                }
            }

            var argv = File.ReadAllText($"/proc/{pid}/cmdline").TrimEnd('\0').Replace('\0', ' ');
            var cpu = TimeSpan.FromSeconds(stat.CpuTicks / TicksPerSecond);
            var alive = uptime - stat.StartTicks / TicksPerSecond;
            return new ProcessRow(pid, stat.ParentPid, users.GetValueOrDefault(uid) ?? uid.ToString(CultureInfo.InvariantCulture),
                alive > 0 ? Math.Round(cpu.TotalSeconds / alive * 100, 1) : 0, rss, cpu, argv.Length > 0 ? argv : $"[{stat.Name}]");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null; // it ended while being read
        }
    }

    private static Dictionary<int, string> Users()
    {
        var users = new Dictionary<int, string>();
        if (File.Exists("/etc/passwd"))
        {
            foreach (var e in File.ReadLines("/etc/passwd").Select(l => l.Split(':')).Where(e => e.Length >= 3))
            {
                if (int.TryParse(e[2], NumberStyles.None, CultureInfo.InvariantCulture, out var uid))
                {
                    users.TryAdd(uid, e[0]);
                }
            }
        }

        return users;
    }
}
