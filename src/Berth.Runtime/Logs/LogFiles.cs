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

        try
        {
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
        finally
        {
            foreach (var tail in tails)
            {
                tail.Dispose();
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

    /// <summary>Follows one stream's log across rotation (issue #14 §5): the supervisor renames the live file to
    /// <c>NAME.G</c> (G rising) and starts a new one. The first read takes every rotated file, oldest first, then the live
    /// one; after that the live file is followed through its open descriptor, so when it is renamed the rest of it is
    /// still read, then any files rotated since, then the new live file — in order, nothing twice. Which name the
    /// descriptor's file has now is read from <c>/proc/self/fd</c> (Linux, as the rest of the process driver).</summary>
    private sealed class LogTail(string path, LogStream stream) : IDisposable
    {
        private readonly string _name = Path.GetFileName(path);
        private readonly string _dir = Path.GetDirectoryName(path)!;
        private FileStream? _file;
        private long _offset;
        private byte[] _partial = [];

        /// <summary>The newest rotated generation that existed when the followed file was opened: older than it.</summary>
        private long _olderThanFile;

        /// <summary>The newest generation read to its end; null before the first read. A reopen that fails (the live file
        /// renamed and its successor not made yet) leaves <c>_file</c> null, and the next read continues after this one
        /// instead of reading every rotated file again from the oldest.</summary>
        private long? _readThrough;

        public List<LogEntry> ReadNew(DateTimeOffset? since)
        {
            List<LogEntry> entries = [];
            if (_file is null)
            {
                if (!OpenLive())
                {
                    return entries;
                }

                foreach (var g in Generations().Where(g => (_readThrough is not { } through || g > through) && g <= _olderThanFile))
                {
                    ReadWhole(g, entries, since);
                }
            }

            while (true)
            {
                Drain(_file!, entries, since);
                var now = NameOf(_file!);
                if (now == path)
                {
                    return entries;
                }

                // Rotated: the writer finished this file before renaming it, so one more read takes the rest.
                Drain(_file!, entries, since);
                var after = now is not null && now.StartsWith(path + ".", StringComparison.Ordinal)
                    && long.TryParse(now.AsSpan(path.Length + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var g) ? g : _olderThanFile;
                _file!.Dispose();
                _file = null;
                _readThrough = after;
                if (!OpenLive())
                {
                    return entries;
                }

                // Files rotated between ours and the new live one (a chatty replica, a slow reader): whole, in order.
                foreach (var between in Generations().Where(x => x > after && x <= _olderThanFile))
                {
                    ReadWhole(between, entries, since);
                }

                _readThrough = _olderThanFile;
            }
        }

        public void Dispose() => _file?.Dispose();

        /// <summary>Opens the live file and notes which rotated files are older than it (retried if it rotates meanwhile).</summary>
        private bool OpenLive()
        {
            for (var attempt = 0; attempt < 10; attempt++)
            {
                FileStream file;
                try
                {
                    file = Open(path);
                }
                catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
                {
                    return false;
                }

                var older = Generations().DefaultIfEmpty(0).Max();
                if (NameOf(file) == path)
                {
                    (_file, _offset, _partial, _olderThanFile) = (file, 0, [], older);
                    return true;
                }

                file.Dispose();
            }

            return false;
        }

        private List<long> Generations()
        {
            List<long> gens = [];
            try
            {
                foreach (var f in Directory.EnumerateFiles(_dir, _name + ".*"))
                {
                    // The pattern also matches the live file itself (".*" matches no extension, as Win32's).
                    var file = Path.GetFileName(f.AsSpan());
                    if (file.Length > _name.Length + 1 && long.TryParse(file[(_name.Length + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var g))
                    {
                        gens.Add(g);
                    }
                }
            }
            catch (DirectoryNotFoundException)
            {
            }

            gens.Sort();
            return gens;
        }

        private void ReadWhole(long generation, List<LogEntry> entries, DateTimeOffset? since)
        {
            FileStream file;
            try
            {
                file = Open($"{path}.{generation.ToString(CultureInfo.InvariantCulture)}");
            }
            catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
            {
                return; // pruned meanwhile
            }

            using (file)
            {
                var saved = (_offset, _partial);
                (_offset, _partial) = (0, []);
                Drain(file, entries, since);
                (_offset, _partial) = saved;
            }
        }

        private static FileStream Open(string file) =>
            new(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 1, FileOptions.SequentialScan);

        /// <summary>Where the open file is now: its path, its rotated name, or null once deleted or unknown.</summary>
        private static string? NameOf(FileStream file)
        {
            var fd = file.SafeFileHandle.DangerousGetHandle().ToInt32();
            try
            {
                var target = new FileInfo($"/proc/self/fd/{fd.ToString(CultureInfo.InvariantCulture)}").LinkTarget;
                return target is null || target.EndsWith(" (deleted)", StringComparison.Ordinal) ? null : target;
            }
            catch (IOException)
            {
                return null;
            }
        }

        private void Drain(FileStream file, List<LogEntry> entries, DateTimeOffset? since)
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
    }
}
