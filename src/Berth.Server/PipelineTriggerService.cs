using System.Globalization;
using Berth.Orchestration.Controllers;
using Berth.Pipelines.Definition;
using Berth.Pipelines.Execution;
using Berth.Pipelines.Storage;
using Berth.Pipelines.Triggers;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Berth.Server;

/// <summary>How a serving control plane runs its app's pipelines on their triggers; defaults follow <c>berth pipeline run --watch</c>.</summary>
public sealed record PipelineTriggerOptions
{
    /// <summary>Host the triggers at all; true (a control plane that serves runs its schedules, as a CI server does).</summary>
    public bool Enabled { get; init; } = true;

    /// <summary>The clock of cron schedules, debounce and the runs; the system clock.</summary>
    public TimeProvider Time { get; init; } = TimeProvider.System;

    /// <summary>Quiet time after the last watched change: 500ms, as <see cref="TriggerOptions.Debounce"/>.</summary>
    public TimeSpan Debounce { get; init; } = new TriggerOptions().Debounce;

    /// <summary>The secrets file (<c>NAME=VALUE</c> lines, outside the repository); default <c>$BERTH_SECRETS_FILE</c>, as the CLI.</summary>
    public string? SecretsFile { get; init; } = Environment.GetEnvironmentVariable("BERTH_SECRETS_FILE");
}

/// <summary>Event types the control plane emits for pipelines it runs on triggers (GET /v1/events, <c>berth events</c>).</summary>
public static class PipelineEvents
{
    /// <summary>A pipeline's triggers are armed (or re-armed after an apply changed them).</summary>
    public const string Armed = "pipeline-armed";

    /// <summary>The app's pipelines could not be read; none runs on triggers until the next apply fixes them.</summary>
    public const string Invalid = "pipeline-invalid";

    public const string Started = "pipeline-started";

    public const string Succeeded = "pipeline-succeeded";

    public const string Failed = "pipeline-failed";

    public const string Cancelled = "pipeline-cancelled";
}

/// <summary>
/// Runs the current app's pipelines that have <c>on.schedule</c> or <c>on.watch</c> while the control plane serves:
/// one <see cref="TriggerRunner"/> per pipeline, runs persisted in the state folder's <c>pipelines.db</c> (what
/// <c>berth pipeline list|show|logs</c> read), start and end as control-plane events. The pipelines come from the
/// spec file of the applied revision; a new revision re-reads it and re-arms only when the triggers changed, so a
/// deploy step's own revision never interrupts the run that made it.
/// </summary>
internal sealed partial class PipelineTriggerService(ControlPlane plane, string stateDirectory, PipelineTriggerOptions options, ILogger<PipelineTriggerService>? logger = null)
    : BackgroundService
{
    private readonly ILogger _logger = logger ?? NullLogger<PipelineTriggerService>.Instance;
    private long _checkedRevision = -1;
    private string _armedKey = "";
    private CancellationTokenSource? _armed;
    private Task _runners = Task.CompletedTask;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            // Revision events say when the desired state (and so maybe the spec file) changed; the backlog replays old
            // ones, which the revision check makes cheap.
            await CheckAsync(stoppingToken).ConfigureAwait(false);
            await foreach (var e in plane.Events.StreamAsync(0, null, stoppingToken).ConfigureAwait(false))
            {
                if (e.Type == Orchestration.State.EventTypes.Revision)
                {
                    await CheckAsync(stoppingToken).ConfigureAwait(false);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        finally
        {
            await DisarmAsync().ConfigureAwait(false);
        }
    }

    private async Task CheckAsync(CancellationToken stoppingToken)
    {
        var current = plane.Current;
        if (current is null || current.Number == _checkedRevision)
        {
            return;
        }

        _checkedRevision = current.Number;
        var file = current.Application.SourceFile;
        if (file is null || current.Application.Pipelines.IsDefaultOrEmpty || !File.Exists(file))
        {
            await RearmAsync("", [], stoppingToken).ConfigureAwait(false);
            return;
        }

        var parsed = PipelineParser.ParseFile(file);
        if (!parsed.Succeeded)
        {
            var errors = parsed.Diagnostics.Where(d => d.Severity == Core.Loading.DiagnosticSeverity.Error).ToList();
            await RearmAsync("", [], stoppingToken).ConfigureAwait(false);
            Emit(PipelineEvents.Invalid, $"{errors.Count} error(s) in the pipelines of {file}, none runs on triggers until they are fixed and applied: "
                + string.Join("; ", errors.Take(3)) + (errors.Count > 3 ? "; …" : ""));
            return;
        }

        var triggered = parsed.Pipelines.Where(p => !p.On.Schedules.IsEmpty || !p.On.WatchPaths.IsEmpty).ToList();
        var key = file + "\n" + string.Join("\n", triggered.Select(p => $"{p.Name}|{string.Join(',', p.On.Schedules)}|{string.Join(',', p.On.WatchPaths)}"));
        if (key != _armedKey)
        {
            await RearmAsync(key, triggered.Select(p => (p, file)).ToList(), stoppingToken).ConfigureAwait(false);
        }
    }

    private async Task RearmAsync(string key, IReadOnlyList<(PipelineDefinition Pipeline, string File)> pipelines, CancellationToken stoppingToken)
    {
        if (key == _armedKey)
        {
            return;
        }

        await DisarmAsync().ConfigureAwait(false);
        _armedKey = key;
        if (pipelines.Count == 0)
        {
            return;
        }

        _armed = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
        var token = _armed.Token;
        var runners = new List<Task>();
        foreach (var (pipeline, file) in pipelines)
        {
            var runner = new TriggerRunner(pipeline, (trigger, ct) => RunAsync(file, pipeline.Name, trigger, ct), options.Time,
                new TriggerOptions { Debounce = options.Debounce });
            // RunAsync arms its cron timers and file watcher before it first yields, so the event below is true when seen.
            runners.Add(Guard(runner.RunAsync(token), pipeline.Name));
            var what = pipeline.On.Schedules.Select(s => $"cron '{s}' (UTC)").Concat(pipeline.On.WatchPaths.Select(w => $"changes to {w}"));
            Emit(PipelineEvents.Armed, $"pipeline {pipeline.Name} runs on {string.Join(", ", what)}");
        }

        _runners = Task.WhenAll(runners);
    }

    private async Task DisarmAsync()
    {
        if (_armed is null)
        {
            return;
        }

        await _armed.CancelAsync().ConfigureAwait(false);
        await _runners.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        _armed.Dispose();
        _armed = null;
        _armedKey = "";
    }

    private async Task Guard(Task runner, string pipeline)
    {
        try
        {
            await runner.ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            Log.TriggersFailed(_logger, pipeline, e);
        }
    }

    /// <summary>One triggered run: the definition read again (an edited step runs as edited), secrets resolved as the CLI does.</summary>
    private async Task RunAsync(string file, string name, string trigger, CancellationToken cancellationToken)
    {
        try
        {
            var parsed = PipelineParser.ParseFile(file);
            if (parsed.Find(name) is not { } pipeline || !parsed.Succeeded)
            {
                Emit(PipelineEvents.Invalid, $"pipeline {name} was not run on {trigger}: {(parsed.Succeeded ? $"it is no longer in {file}" : string.Join("; ", parsed.Diagnostics.Take(3)))}");
                return;
            }

            var secrets = SecretSource.Resolve(pipeline.Secrets, options.SecretsFile, pipeline.BaseDirectory, Environment.GetEnvironmentVariable, out var errors);
            if (errors.Count > 0)
            {
                Emit(PipelineEvents.Failed, $"pipeline {name} was not run on {trigger}: {string.Join("; ", errors)}");
                return;
            }

            var images = new Berth.Pipelines.Steps.DockerImageBuilder(Berth.Runtime.Docker.DockerDriver.FindEngine(new Berth.Runtime.Docker.DockerDriverOptions()));
            var engine = new PipelineEngine(new PipelineEngineOptions { StateDirectory = stateDirectory, ImageBuilder = images }, options.Time, _logger);
            var request = new RunRequest
            {
                Trigger = trigger,
                Branch = SecretSource.CurrentBranch(pipeline.BaseDirectory),
                Secrets = secrets,
                Started = id => Emit(PipelineEvents.Started, $"run {Id(id)} of pipeline {name} started on {trigger}; 'berth pipeline logs {Id(id)}' follows it"),
            };
            var result = await engine.RunAsync(pipeline, request, cancellationToken).ConfigureAwait(false);
            var type = result.Status switch
            {
                RunStatus.Succeeded => PipelineEvents.Succeeded,
                RunStatus.Cancelled => PipelineEvents.Cancelled,
                _ => PipelineEvents.Failed,
            };
            Emit(type, $"run {Id(result.RunId)} of pipeline {name} {result.Status}; 'berth pipeline show {Id(result.RunId)}' has the details");
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            throw;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidOperationException or Microsoft.Data.Sqlite.SqliteException)
        {
            // One broken run must not stop the triggers; the next one tries again.
            Log.RunFailed(_logger, name, e);
            Emit(PipelineEvents.Failed, $"pipeline {name} could not run on {trigger}: {e.Message}");
        }
    }

    private void Emit(string type, string message)
    {
        plane.Events.Emit(type, null, null, message);
        Log.Event(_logger, type, message);
    }

    private static string Id(long id) => id.ToString(CultureInfo.InvariantCulture);

    private static partial class Log
    {
        [LoggerMessage(EventId = 9101, Level = LogLevel.Information, Message = "{Type}: {Message}")]
        public static partial void Event(ILogger logger, string type, string message);

        [LoggerMessage(EventId = 9102, Level = LogLevel.Error, Message = "The triggers of pipeline {Pipeline} stopped")]
        public static partial void TriggersFailed(ILogger logger, string pipeline, Exception exception);

        [LoggerMessage(EventId = 9103, Level = LogLevel.Error, Message = "A triggered run of pipeline {Pipeline} could not run")]
        public static partial void RunFailed(ILogger logger, string pipeline, Exception exception);
    }
}
