using System.Globalization;

namespace Berth.Runtime.Process;

/// <summary>The replica's pid and start time, as its supervisor recorded them once the command was running.</summary>
internal sealed record PidRecord(int Pid, long StartTicks, DateTimeOffset StartedAt, int SupervisorPid, long SupervisorStartTicks);

/// <summary>How the replica ended, as its supervisor recorded it.</summary>
internal sealed record ExitRecord(int Code, int Signal, long OomKills, DateTimeOffset FinishedAt, string? Error);

/// <summary>Reads the <c>key=value</c> files the supervisor writes (atomically, by rename) into the replica's state folder.</summary>
internal static class SupervisorFiles
{
    public const string PidFile = "pid";
    public const string ExitFile = "exit";
    public const string StdoutFile = "stdout.log";
    public const string StderrFile = "stderr.log";

    public static PidRecord? ReadPid(string dir)
    {
        var values = Read(Path.Combine(dir, PidFile));
        if (values is null)
        {
            return null;
        }

        return new PidRecord(
            (int)Long(values, "pid"),
            Long(values, "ticks"),
            DateTimeOffset.FromUnixTimeMilliseconds(Long(values, "started")),
            (int)Long(values, "supervisor"),
            Long(values, "supervisor_ticks"));
    }

    public static ExitRecord? ReadExit(string dir)
    {
        var values = Read(Path.Combine(dir, ExitFile));
        if (values is null)
        {
            return null;
        }

        return new ExitRecord(
            (int)Long(values, "code"),
            (int)Long(values, "signal"),
            Long(values, "oom_kill"),
            DateTimeOffset.FromUnixTimeMilliseconds(Long(values, "finished")),
            values.GetValueOrDefault("error"));
    }

    /// <summary>Clears what a previous run of the same replica id left, so its exit is not taken for this one's.</summary>
    public static void ClearRun(string dir)
    {
        File.Delete(Path.Combine(dir, PidFile));
        File.Delete(Path.Combine(dir, ExitFile));
    }

    private static Dictionary<string, string>? Read(string path)
    {
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }

        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var eq = line.IndexOf('=', StringComparison.Ordinal);
            if (eq > 0)
            {
                values[line[..eq]] = line[(eq + 1)..];
            }
        }

        return values;
    }

    private static long Long(Dictionary<string, string> values, string key) =>
        values.TryGetValue(key, out var s) && long.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) ? v : 0;
}
