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

        using var watcher = _options.Watch && !pipeline.On.WatchPaths.IsEmpty ? Watch(cancellationToken) : null;
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

        await Task.WhenAll(sources).ConfigureAwait(false);
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

    private FileSystemWatcher Watch(CancellationToken cancellationToken)
    {
        var root = pipeline.BaseDirectory;
        var watcher = new FileSystemWatcher(root) { IncludeSubdirectories = true, NotifyFilter = NotifyFilters.FileName | NotifyFilters.DirectoryName | NotifyFilters.LastWrite | NotifyFilters.Size };
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

        watcher.Changed += (_, e) => Changed(e.FullPath);
        watcher.Created += (_, e) => Changed(e.FullPath);
        watcher.Deleted += (_, e) => Changed(e.FullPath);
        watcher.Renamed += (_, e) => Changed(e.FullPath);
        watcher.EnableRaisingEvents = true;
        return watcher;
    }
}
