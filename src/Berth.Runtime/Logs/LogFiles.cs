using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;

namespace Berth.Runtime.Logs;

/// <summary>Reads the per-stream log files the supervisor writes (<c>{RFC 3339 UTC timestamp} {line}</c>), merged by time.</summary>
internal static class LogFiles
{
    public static async IAsyncEnumerable<LogEntry> ReadAsync(
        string stdoutPath,
        string stderrPath,
        LogOptions options,
        Func<bool> hasExited,
        TimeSpan pollInterval,
        TimeProvider time,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        List<LogTail> tails = [];
        if (options.Stdout)
        {
            tails.Add(new LogTail(stdoutPath, LogStream.Stdout));
        }

        if (options.Stderr)
        {
            tails.Add(new LogTail(stderrPath, LogStream.Stderr));
        }

        var exitedBefore = hasExited();
        var first = Merge(tails.Select(t => t.ReadNew(options.Since)));
        foreach (var entry in options.Tail is { } n ? first.Skip(Math.Max(0, first.Count - n)) : first)
        {
            yield return entry;
        }

        if (!options.Follow)
        {
            yield break;
        }

        while (!exitedBefore)
        {
            await Task.Delay(pollInterval, time, cancellationToken).ConfigureAwait(false);

            // Checked before reading: once it has exited, one last read takes everything it wrote.
            exitedBefore = hasExited();
            foreach (var entry in Merge(tails.Select(t => t.ReadNew(options.Since))))
            {
                yield return entry;
            }
        }
    }

    private static List<LogEntry> Merge(IEnumerable<List<LogEntry>> streams)
    {
        var all = streams.SelectMany(s => s).ToList();

        // Each file is already in time order; a stable sort keeps each stream's own order on equal stamps.
        return [.. all.OrderBy(e => e.Timestamp)];
    }

    public static bool TryParse(string line, LogStream stream, out LogEntry entry)
    {
        var space = line.IndexOf(' ', StringComparison.Ordinal);
        if (space > 0 && DateTimeOffset.TryParseExact(line.AsSpan(0, space), "yyyy-MM-dd'T'HH:mm:ss.FFFFFFF'Z'", CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var ts))
        {
            entry = new LogEntry(ts, stream, line[(space + 1)..]);
            return true;
        }

        entry = new LogEntry(default, stream, line);
        return false;
    }

    /// <summary>Follows one file from an offset, handing out only complete lines.</summary>
    private sealed class LogTail(string path, LogStream stream)
    {
        private long _offset;
        private byte[] _partial = [];

        public List<LogEntry> ReadNew(DateTimeOffset? since)
        {
            List<LogEntry> entries = [];
            FileStream file;
            try
            {
                file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 1, FileOptions.SequentialScan);
            }
            catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
            {
                return entries;
            }

            using (file)
            {
                while (file.Length > _offset)
                {
                    file.Position = _offset;
                    var buffer = new byte[checked((int)Math.Min(file.Length - _offset, 16L << 20))];
                    file.ReadExactly(buffer);
                    _offset += buffer.Length;
                    var data = _partial.Length == 0 ? buffer : [.. _partial, .. buffer];
                    var last = Array.LastIndexOf(data, (byte)'\n');
                    _partial = data[(last + 1)..];
                    if (last < 0)
                    {
                        continue;
                    }

                    foreach (var line in Encoding.UTF8.GetString(data, 0, last).Split('\n'))
                    {
                        TryParse(line, stream, out var entry);
                        if (since is null || entry.Timestamp >= since)
                        {
                            entries.Add(entry);
                        }
                    }
                }
            }

            return entries;
        }
    }
}
