using System.Globalization;

namespace Berth.Orchestration.Scheduling;

/// <summary>Who listens on a TCP port, as <c>ss -ltnp</c> finds it: the LISTEN socket's inode in <c>/proc/net/tcp{,6}</c>, then
/// the process with that socket among its descriptors. Only what this user may see in /proc (all of it as root).</summary>
public static class PortHolder
{
    private const string Listen = "0A";

    /// <summary>"pid 1234 (berth __control-plane -f /app/berth.yaml)", or null when /proc does not show the holder.</summary>
    public static string? Describe(int port)
    {
        try
        {
            var inodes = new[] { "/proc/net/tcp", "/proc/net/tcp6" }.Where(File.Exists)
                .SelectMany(File.ReadLines)
                .Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries))
                .Where(f => f.Length > 9 && f[3] == Listen && f[1].Contains(':', StringComparison.Ordinal)
                    && int.TryParse(f[1][(f[1].LastIndexOf(':') + 1)..], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var p) && p == port)
                .Select(f => $"socket:[{f[9]}]")
                .ToHashSet(StringComparer.Ordinal);
            if (inodes.Count == 0)
            {
                return null;
            }

            foreach (var proc in Directory.EnumerateDirectories("/proc"))
            {
                if (!int.TryParse(Path.GetFileName(proc), NumberStyles.None, CultureInfo.InvariantCulture, out var pid))
                {
                    continue;
                }

                if (HoldsAny(proc, inodes))
                {
                    return $"pid {pid} ({CommandLine(proc)})";
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }

        return null;
    }

    private static bool HoldsAny(string proc, HashSet<string> sockets)
    {
        try
        {
            return Directory.EnumerateFileSystemEntries(Path.Combine(proc, "fd"))
                .Any(fd => new FileInfo(fd).LinkTarget is { } target && sockets.Contains(target));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false; // gone, or another user's
        }
    }

    private static string CommandLine(string proc)
    {
        try
        {
            var text = string.Join(' ', File.ReadAllText(Path.Combine(proc, "cmdline")).Split(['\0', '\n', '\r', '\t'], StringSplitOptions.RemoveEmptyEntries));
            return text.Length > 100 ? text[..100] + "…" : text.Length == 0 ? "?" : text;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return "?";
        }
    }
}
