using System.Threading.Channels;
using Berth.Pipelines.Definition;
using Berth.Pipelines.Execution;
using Cronos;
using Microsoft.Extensions.FileSystemGlobbing;

namespace Berth.Pipelines.Triggers;

/// <summary>Settings of the trigger loop; defaults name the peer they follow.</summary>
public sealed record TriggerOptions
{
    /// <summary>Quiet time after the last file change before a run starts: 500ms, enough to coalesce an editor's burst of writes on save.</summary>
    public TimeSpan Debounce { get; init; } = TimeSpan.FromMilliseconds(500);

    /// <summary>Watch the pipeline's on.watch paths; false to only run schedules.</summary>
    public bool Watch { get; init; } = true;

    /// <summary>Fire on.schedule cron expressions.</summary>
    public bool Schedule { get; init; } = true;
}

/// <summary>
/// Starts runs of one pipeline on its triggers: file changes under <c>on.watch</c> and <c>on.schedule</c> cron
/// times (UTC). Runs never overlap; triggers during a run coalesce into one more run afterwards.
/// </summary>
public sealed class TriggerRunner(PipelineDefinition pipeline, Func<string, CancellationToken, Task> run, TimeProvider time, TriggerOptions? options = null)
{
    private readonly TriggerOptions _options = options ?? new TriggerOptions();
    private readonly Channel<string> _pending = Channel.CreateBounded<string>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });

    public async Task RunAsync(CancellationToken cancellationToken)
    {
        var sources = new List<Task>();
        if (_options.Schedule)
        {
            sources.AddRange(pipeline.On.Schedules.Select(cron => ScheduleAsync(CronExpression.Parse(cron), cancellationToken)));
        }

        var watchers = _options.Watch && !pipeline.On.WatchPaths.IsEmpty ? Watch(cancellationToken) : [];
        try
        {
            await foreach (var trigger in _pending.Reader.ReadAllAsync(cancellationToken).ConfigureAwait(false))
            {
                await run(trigger, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
        finally
        {
            watchers.ForEach(w => w.Dispose());
        }

        await Task.WhenAll(sources).ConfigureAwait(false);
    }

    /// <summary>The folders whose changes can match <paramref name="patterns"/> (globs relative to <paramref name="root"/>):
    /// each pattern's leading folders without a wildcard (<c>app/**/*.cs</c> → <c>app</c>), or the nearest of them that
    /// exists; the base folder only for a pattern that starts with one. A folder inside another listed one is left out.
    /// So the state folder (<c>.berth</c>, where every replica's log is written, hundreds of events a second under load)
    /// is not watched unless a pattern can match there: with one inotify event per log write, this watcher was the control
    /// plane's busiest code in a trace of the shop sample under load.</summary>
    internal static IReadOnlyList<string> FoldersFor(string root, IEnumerable<string> patterns)
    {
        root = Path.GetFullPath(root);
        var folders = new List<string>();
        foreach (var pattern in patterns)
        {
            var parts = pattern.Replace('\\', '/').Split('/', StringSplitOptions.RemoveEmptyEntries);
            var fixedParts = parts.Take(parts.Length - 1).TakeWhile(p => p.IndexOfAny(['*', '?', '[', '{']) < 0 && p != "..").ToArray();
            var folder = Path.GetFullPath(Path.Combine([root, .. fixedParts]));
            while (folder.Length > root.Length && !Directory.Exists(folder))
            {
                folder = Path.GetDirectoryName(folder)!;
            }

            folders.Add(folder.StartsWith(root, StringComparison.Ordinal) ? folder : root);
        }

        return [.. folders.Distinct(StringComparer.Ordinal).Where(f => !folders.Any(o => o != f && (o == root || f.StartsWith(o + "/", StringComparison.Ordinal)))).Order(StringComparer.Ordinal)];
    }

    private async Task ScheduleAsync(CronExpression cron, CancellationToken cancellationToken)
    {
        try
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                var now = time.GetUtcNow();
                var next = cron.GetNextOccurrence(now.UtcDateTime, TimeZoneInfo.Utc);
                if (next is null)
                {
                    return;
                }

                await Task.Delay(next.Value - now.UtcDateTime, time, cancellationToken).ConfigureAwait(false);
                _pending.Writer.TryWrite("schedule");
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private List<FileSystemWatcher> Watch(CancellationToken cancellationToken)
    {
        var root = pipeline.BaseDirectory;
        var matcher = new Matcher(StringComparison.Ordinal);
        matcher.AddIncludePatterns(pipeline.On.WatchPaths);
        matcher.AddExclude(".git/**");
        matcher.AddExclude(".berth/**");
        var generation = 0L;
        void Changed(string path)
        {
            var relative = Path.GetRelativePath(root, path);
            if (!matcher.Match(relative).HasMatches)
            {
                return;
            }

            var mine = Interlocked.Increment(ref generation);
            _ = Task.Run(async () =>
            {
                try
                {
                    await Task.Delay(_options.Debounce, time, cancellationToken).ConfigureAwait(false);
                    if (Interlocked.Read(ref generation) == mine)
                    {
                        _pending.Writer.TryWrite("watch");
                    }
                }
                catch (OperationCanceledException)
                {
                }
            }, CancellationToken.None);
        }

        var watchers = new List<FileSystemWatcher>();
        foreach (var folder in FoldersFor(root, pipeline.On.WatchPaths))
        {
            var watcher = new FileSystemWatcher(folder) { IncludeSubdirectories = true, NotifyFilter = NotifyFilters.FileName | NotifyFilters.DirectoryName | NotifyFilters.LastWrite | NotifyFilters.Size };
            watcher.Changed += (_, e) => Changed(e.FullPath);
            watcher.Created += (_, e) => Changed(e.FullPath);
            watcher.Deleted += (_, e) => Changed(e.FullPath);
            watcher.Renamed += (_, e) => Changed(e.FullPath);
            watcher.EnableRaisingEvents = true;
            watchers.Add(watcher);
        }

        return watchers;
    }
}
