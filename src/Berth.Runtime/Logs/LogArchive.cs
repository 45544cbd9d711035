using System.Globalization;
using System.Text;

namespace Berth.Runtime.Logs;

/// <summary>A replica's logs kept in its state folder after the replica is gone (issue #14 §9, <c>berth logs --previous</c>):
/// the same <c>stdout.log</c>/<c>stderr.log</c> files (rotated ones included) the process supervisor writes, and that a
/// removed container's engine logs are copied into before the container goes.</summary>
public static class LogArchive
{
    /// <summary>Writes <paramref name="entries"/> into <paramref name="directory"/> in the supervisor's format.</summary>
    public static async Task WriteAsync(string directory, IAsyncEnumerable<LogEntry> entries, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(directory);
        await using var stdout = new StreamWriter(Path.Combine(directory, "stdout.log"), append: true, new UTF8Encoding(false));
        await using var stderr = new StreamWriter(Path.Combine(directory, "stderr.log"), append: true, new UTF8Encoding(false));
        await foreach (var e in entries.WithCancellation(cancellationToken).ConfigureAwait(false))
        {
            var line = $"{e.Timestamp.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", CultureInfo.InvariantCulture)} {e.Text}\n";
            await (e.Stream == LogStream.Stdout ? stdout : stderr).WriteAsync(line.AsMemory(), cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Reads the kept logs of a replica that no longer runs, both streams merged by time, across rotated files.</summary>
    public static IAsyncEnumerable<LogEntry> ReadAsync(string directory, LogOptions options, CancellationToken cancellationToken) =>
        LogFiles.ReadAsync(Path.Combine(directory, "stdout.log"), Path.Combine(directory, "stderr.log"), options with { Follow = false },
            () => true, TimeSpan.Zero, TimeProvider.System, cancellationToken);
}
