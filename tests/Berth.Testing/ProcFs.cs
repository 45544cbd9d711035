using System.Globalization;

namespace Berth.Testing;

/// <summary>This machine's processes as <c>/proc</c> shows them, for tests that check what a run left behind (a process
/// group's live members, a parent's children). A process that ends while it is being read is left out.</summary>
public static class ProcFs
{
    /// <summary>The fields of <c>/proc/PID/stat</c> that tests ask about: the name, the state ('Z' for a zombie that has
    /// ended and not yet been reaped), the parent's pid and the process group.</summary>
    public sealed record Stat(int Pid, string Name, char State, int Parent, int Group);

    /// <summary>The pid of every process at the time of the call (the numbered folders of <c>/proc</c>).</summary>
    public static IEnumerable<int> Pids() =>
        Directory.EnumerateDirectories("/proc")
            .Select(dir => int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out var pid) ? pid : 0)
            .Where(pid => pid > 0);

    /// <summary>Every process that could be read, zombies included.</summary>
    public static List<Stat> Processes() => [.. Pids().Select(Read).OfType<Stat>()];

    /// <summary>The arguments <paramref name="pid"/> runs with, or null when there is no such process (any more).</summary>
    public static string[]? CommandLine(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/cmdline").TrimEnd('\0').Split('\0');
        }
        catch (IOException)
        {
            return null;
        }
    }

    /// <summary>The stat of <paramref name="pid"/>, or null when there is no such process (any more).</summary>
    public static Stat? Read(int pid)
    {
        string text;
        try
        {
            text = File.ReadAllText($"/proc/{pid}/stat");
        }
        catch (IOException)
        {
            return null;
        }

        // The name stands in parentheses and may itself hold ')' or spaces, so the fields are read from after the last ')'.
        var open = text.IndexOf('(', StringComparison.Ordinal);
        var close = text.LastIndexOf(')');
        var fields = text[(close + 2)..].Split(' ');
        return new Stat(pid, text[(open + 1)..close], fields[0][0], int.Parse(fields[1], CultureInfo.InvariantCulture), int.Parse(fields[2], CultureInfo.InvariantCulture));
    }
}
