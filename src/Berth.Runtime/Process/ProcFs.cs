using System.Globalization;
using System.Runtime.InteropServices;

namespace Berth.Runtime.Process;

/// <summary>What /proc says about a process: its state and its start time, which tells our process from a reused pid.</summary>
internal static partial class ProcFs
{
    public const int SigTerm = 15;
    public const int SigKill = 9;

    private const int Esrch = 3;

    public readonly record struct Stat(char State, long StartTicks, long CpuTicks);

    public static Stat? ReadStat(int pid)
    {
        string line;
        try
        {
            line = File.ReadAllText($"/proc/{pid}/stat");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }

        // The command name (field 2) may hold spaces and parentheses; the fields after the last ')' are plain.
        var fields = line[(line.LastIndexOf(')') + 2)..].Split(' ');
        var utime = long.Parse(fields[11], CultureInfo.InvariantCulture);
        var stime = long.Parse(fields[12], CultureInfo.InvariantCulture);
        return new Stat(fields[0][0], long.Parse(fields[19], CultureInfo.InvariantCulture), utime + stime);
    }

    /// <summary>True when <paramref name="pid"/> runs and is the process that started at <paramref name="startTicks"/> (zombies are dead).</summary>
    public static bool IsAlive(int pid, long? startTicks) =>
        ReadStat(pid) is { } s && s.State is not ('Z' or 'X') && (startTicks is null or 0 || s.StartTicks == startTicks);

    public static long? ResidentBytes(int pid)
    {
        try
        {
            foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            {
                if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                {
                    var kb = line["VmRSS:".Length..].Trim().Split(' ')[0];
                    return long.Parse(kb, CultureInfo.InvariantCulture) * 1024;
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }

        return null;
    }

    /// <summary>True when the kernel places <paramref name="pid"/> in a cgroup whose path ends with <paramref name="path"/> (in any
    /// hierarchy): a pid read from a cgroup.procs file is then really that group's member, not a pid reused since or a line of
    /// a fake tree.</summary>
    public static bool InCgroup(int pid, string path)
    {
        try
        {
            return File.ReadLines($"/proc/{pid}/cgroup").Any(l => l.EndsWith("/" + path, StringComparison.Ordinal));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>Sends <paramref name="signal"/>; false when there is no such process (or group, for a negative pid).</summary>
    public static bool Signal(int pid, int signal)
    {
        if (Kill(pid, signal) == 0)
        {
            return true;
        }

        var errno = Marshal.GetLastPInvokeError();
        return errno == Esrch ? false : throw new IOException($"kill({pid}, {signal}) failed with errno {errno}");
    }

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);
}
