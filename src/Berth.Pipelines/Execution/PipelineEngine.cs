using System.Collections.Concurrent;
using System.Collections.Immutable;
using Berth.Core.Contracts;
using Berth.Pipelines.Definition;
using Berth.Pipelines.Expressions;
using Berth.Pipelines.Steps;
using Berth.Pipelines.Storage;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Berth.Pipelines.Execution;

/// <summary>Settings of the engine; each default names the peer it follows.</summary>
public sealed record PipelineEngineOptions
{
    /// <summary>The app's state folder (<c>.berth/</c> beside the spec): the run database, run folders, caches, api.json.</summary>
    public required string StateDirectory { get; init; }

    /// <summary>SIGTERM to SIGKILL for stopped steps; 10s, as docker stop.</summary>
    public TimeSpan KillGrace { get; init; } = PipelineDefaults.KillGrace;

    /// <summary>How often cancel requests and approvals from other processes are looked for: 250ms, a quarter of kubectl's 1s watch poll.</summary>
    public TimeSpan PollInterval { get; init; } = TimeSpan.FromMilliseconds(250);

    /// <summary>How often a deploy step asks for rollout status: 500ms, half of kubectl rollout status' 1s.</summary>
    public TimeSpan RolloutPollInterval { get; init; } = TimeSpan.FromMilliseconds(500);

    /// <summary>Builds images for build-image steps; null: the Docker Engine API.</summary>
    public IImageBuilder? ImageBuilder { get; init; }

    /// <summary>Makes the control-plane client for deploy steps; null: HTTP to the endpoint in the state folder.</summary>
    public Func<ControlPlaneEndpoint, IControlPlaneClient>? ControlPlane { get; init; }

    public string DatabasePath => Path.Combine(StateDirectory, "pipelines.db");
}

/// <summary>One request to run a pipeline.</summary>
public sealed record RunRequest
{
    /// <summary>manual, watch, schedule or rerun.</summary>
    public string Trigger { get; init; } = "manual";

    public string Branch { get; init; } = "";

    /// <summary>Secret values by name, resolved before the run (environment or secrets file).</summary>
    public IReadOnlyDictionary<string, string> Secrets { get; init; } = ImmutableDictionary<string, string>.Empty;

    /// <summary>Rerun only the failed jobs of this run and what depends on them; the rest is reused.</summary>
    public long? RerunFailedOf { get; init; }

    /// <summary>Receives the run id as soon as it exists.</summary>
    public Action<long>? Started { get; init; }
}

/// <summary>Sees a run as it goes (the CLI prints it); every text it gets is masked.</summary>
public interface IRunObserver
{
    void JobChanged(long runId, string jobKey, string status, string message);

    void StepChanged(StepRecord step);

    void Line(long runId, string jobKey, int stepIndex, OutputStream stream, string text);
}

public sealed record RunResult(long RunId, string Status);

/// <summary>
/// Runs a pipeline: jobs in dependency order (independent jobs at once, up to max-parallel), each job's
/// steps in order, with conditions, timeouts, retries, artifacts, caches and masked logs persisted in SQLite.
/// </summary>
public sealed class PipelineEngine(PipelineEngineOptions options, TimeProvider time, ILogger? logger = null, IRunObserver? observer = null)
{
    private static readonly HttpClient SharedHttp = new() { Timeout = TimeSpan.FromSeconds(30) };
    private readonly ILogger _logger = logger ?? NullLogger.Instance;
    private readonly ProcessRunner _processes = new(time);

    public async Task<RunResult> RunAsync(PipelineDefinition pipeline, RunRequest request, CancellationToken cancellationToken)
    {
        using var store = new RunStore(options.DatabasePath);
        var runId = store.CreateRun(pipeline.Name, pipeline.Position.File, request.RerunFailedOf is null ? request.Trigger : "rerun", request.Branch, request.RerunFailedOf, time.GetUtcNow());
        request.Started?.Invoke(runId);
        Log.RunStarted(_logger, runId, pipeline.Name, request.Trigger);
        var run = new RunContext(this, store, pipeline, request, runId, cancellationToken);
        var status = await run.ExecuteAsync().ConfigureAwait(false);
        store.FinishRun(runId, status, time.GetUtcNow());
        Log.RunFinished(_logger, runId, status);
        return new RunResult(runId, status);
    }

    public static string RunDirectory(string stateDirectory, long runId) =>
        Path.Combine(stateDirectory, "pipelines", "runs", runId.ToString(System.Globalization.CultureInfo.InvariantCulture));

    /// <summary>The state of one run while it goes.</summary>
    private sealed class RunContext
    {
        private readonly PipelineEngine _engine;
        private readonly RunStore _store;
        private readonly PipelineDefinition _pipeline;
        private readonly RunRequest _request;
        private readonly long _runId;
        private readonly CancellationToken _outer;
        private readonly SecretMasker _masker;
        private readonly string _runDirectory;
        private readonly ConcurrentDictionary<string, string> _instanceStatus = new();
        private readonly Dictionary<string, Task<string>> _jobTasks = [];
        private readonly Dictionary<string, IReadOnlyList<JobInstance>> _instances = [];
        private readonly SemaphoreSlim _gate;
        private ImmutableDictionary<string, string> _reused = ImmutableDictionary<string, string>.Empty;

        public RunContext(PipelineEngine engine, RunStore store, PipelineDefinition pipeline, RunRequest request, long runId, CancellationToken outer)
        {
            _engine = engine;
            _store = store;
            _pipeline = pipeline;
            _request = request;
            _runId = runId;
            _outer = outer;
            _gate = new SemaphoreSlim(pipeline.MaxParallel);
            _runDirectory = RunDirectory(engine.Options.StateDirectory, runId);
            _masker = new SecretMasker(request.Secrets.Values.SelectMany(v => v.Split('\n').Select(l => l.TrimEnd('\r')).Prepend(v)));
        }

        private TimeProvider Time => _engine.Time;

        public async Task<string> ExecuteAsync()
        {
            using var timeout = _pipeline.Timeout is { } t ? new CancellationTokenSource(t, Time) : new CancellationTokenSource();
            using var runCts = CancellationTokenSource.CreateLinkedTokenSource(_outer, timeout.Token);
            using var watcherStop = new CancellationTokenSource();
            var watcher = WatchCancelAsync(runCts, watcherStop.Token);
            try
            {
                foreach (var job in _pipeline.Jobs)
                {
                    _instances[job.Id] = MatrixExpander.Expand(job);
                    foreach (var instance in _instances[job.Id])
                    {
                        _store.SaveJob(_runId, instance.Key, job.Id, instance.MatrixJson, RunStatus.Queued, null, null, "");
                    }
                }

                if (_request.RerunFailedOf is { } previous)
                {
                    _reused = ComputeReuse(previous);
                }

                foreach (var job in _pipeline.Jobs)
                {
                    _ = JobTask(job.Id, runCts.Token);
                }

                var statuses = await Task.WhenAll(_jobTasks.Values).ConfigureAwait(false);
                if (runCts.IsCancellationRequested)
                {
                    return timeout.IsCancellationRequested && !_outer.IsCancellationRequested ? RunStatus.TimedOut : RunStatus.Cancelled;
                }

                return statuses.Any(s => s is RunStatus.Failed or RunStatus.TimedOut or RunStatus.Cancelled) ? RunStatus.Failed : RunStatus.Succeeded;
            }
            finally
            {
                await watcherStop.CancelAsync().ConfigureAwait(false);
                await watcher.ConfigureAwait(false);
            }
        }

        /// <summary>Cancels the run when <c>berth pipeline cancel</c> asks for it from another process.</summary>
        private async Task WatchCancelAsync(CancellationTokenSource run, CancellationToken stop)
        {
            using var timer = new PeriodicTimer(_engine.Options.PollInterval, Time);
            try
            {
                while (await timer.WaitForNextTickAsync(stop).ConfigureAwait(false))
                {
                    if (_store.IsCancelRequested(_runId))
                    {
                        Log.CancelRequested(_engine._logger, _runId);
                        await run.CancelAsync().ConfigureAwait(false);
                        return;
                    }
                }
            }
            catch (OperationCanceledException)
            {
            }
        }

        /// <summary>Which job instances a rerun takes over: succeeded before and needing nothing that runs again.</summary>
        private ImmutableDictionary<string, string> ComputeReuse(long previousRun)
        {
            var previous = _store.GetJobs(previousRun).ToDictionary(j => j.Key, j => j.Status);
            var reruns = new Dictionary<string, bool>();
            bool Reruns(string jobId)
            {
                if (reruns.TryGetValue(jobId, out var known))
                {
                    return known;
                }

                var job = _pipeline.FindJob(jobId)!;
                var result = job.Needs.Any(n => Reruns(n.Job)) ||
                    _instances[jobId].Any(i => !previous.TryGetValue(i.Key, out var s) || !RunStatus.IsSuccess(s));
                reruns[jobId] = result;
                return result;
            }

            var builder = ImmutableDictionary.CreateBuilder<string, string>();
            var previousDirectory = RunDirectory(_engine.Options.StateDirectory, previousRun);
            foreach (var job in _pipeline.Jobs.Where(j => !Reruns(j.Id)))
            {
                foreach (var instance in _instances[job.Id])
                {
                    builder[instance.Key] = Path.Combine(previousDirectory, "artifacts", FileCopy.SafeName(instance.Key));
                }
            }

            return builder.ToImmutable();
        }

        private Task<string> JobTask(string jobId, CancellationToken runToken)
        {
            if (_jobTasks.TryGetValue(jobId, out var existing))
            {
                return existing;
            }

            var job = _pipeline.FindJob(jobId)!;
            var needs = job.Needs.Select(n => JobTask(n.Job, runToken)).ToArray();
            var task = RunJobAsync(job, needs, runToken);
            _jobTasks[jobId] = task;
            return task;
        }

        private async Task<string> RunJobAsync(JobDefinition job, Task<string>[] needs, CancellationToken runToken)
        {
            var needStatuses = await Task.WhenAll(needs).ConfigureAwait(false);
            await Task.Yield();
            using var failFast = CancellationTokenSource.CreateLinkedTokenSource(runToken);
            using var matrixGate = new SemaphoreSlim(job.Matrix?.MaxParallel ?? int.MaxValue);
            var instances = _instances[job.Id];
            var results = await Task.WhenAll(instances.Select(async instance =>
            {
                var status = await RunInstanceAsync(instance, needStatuses, runToken, failFast.Token, matrixGate).ConfigureAwait(false);
                if (status is RunStatus.Failed or RunStatus.TimedOut && job.Matrix is { FailFast: true } && !job.ContinueOnError)
                {
                    await failFast.CancelAsync().ConfigureAwait(false);
                }

                return status;
            })).ConfigureAwait(false);

            if (job.ContinueOnError && results.Any(r => r is RunStatus.Failed or RunStatus.TimedOut))
            {
                return RunStatus.Succeeded;
            }

            if (results.Any(r => r is RunStatus.Failed or RunStatus.TimedOut))
            {
                return RunStatus.Failed;
            }

            if (results.Any(r => r == RunStatus.Cancelled))
            {
                return RunStatus.Cancelled;
            }

            return results.All(r => r == RunStatus.Skipped) ? RunStatus.Skipped : RunStatus.Succeeded;
        }

        private async Task<string> RunInstanceAsync(JobInstance instance, string[] needStatuses, CancellationToken runToken, CancellationToken failFast, SemaphoreSlim matrixGate)
        {
            var job = instance.Job;
            if (_reused.TryGetValue(instance.Key, out var previousArtifacts))
            {
                FileCopy.CopyTree(previousArtifacts, ArtifactDirectory(instance.Key));
                return SetJob(instance, RunStatus.Reused, null, null, $"reused from run {_request.RerunFailedOf}");
            }

            var prior = runToken.IsCancellationRequested ? PriorOutcome.Cancelled
                : needStatuses.Any(s => s is RunStatus.Failed or RunStatus.TimedOut) ? PriorOutcome.Failure
                : needStatuses.Any(s => s == RunStatus.Cancelled) ? PriorOutcome.Cancelled
                : needStatuses.Any(s => s == RunStatus.Skipped) ? PriorOutcome.Skipped
                : PriorOutcome.Success;
            var context = new ExpressionContext { Matrix = instance.Matrix, Secrets = _request.Secrets, Branch = _request.Branch, Prior = prior };
            context = context with { Env = RenderEnv(_pipeline.Env, context, BaseEnvironment(instance)) };
            bool run;
            try
            {
                run = job.If is null ? prior == PriorOutcome.Success : ExpressionEvaluator.EvaluateCondition(job.If, context);
            }
            catch (Exception e) when (e is InvalidOperationException or IOException)
            {
                return SetJob(instance, RunStatus.Failed, null, null, _masker.MaskText($"if: {e.Message}"));
            }

            if (!run)
            {
                return SetJob(instance, prior == PriorOutcome.Cancelled ? RunStatus.Cancelled : RunStatus.Skipped, null, null,
                    job.If is null ? "a needed job did not succeed" : "if: was false");
            }

            if (failFast.IsCancellationRequested)
            {
                return SetJob(instance, RunStatus.Cancelled, null, null, "cancelled: another matrix job failed (fail-fast)");
            }

            try
            {
                await _gate.WaitAsync(failFast).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return SetJob(instance, RunStatus.Cancelled, null, null, "cancelled before it started");
            }

            try
            {
                await matrixGate.WaitAsync(failFast).ConfigureAwait(false);
                try
                {
                    return await new JobRun(this, instance, context, failFast).ExecuteAsync().ConfigureAwait(false);
                }
                finally
                {
                    matrixGate.Release();
                }
            }
            catch (OperationCanceledException)
            {
                return SetJob(instance, RunStatus.Cancelled, null, null, "cancelled before it started");
            }
            finally
            {
                _gate.Release();
            }
        }

        private ImmutableDictionary<string, string> BaseEnvironment(JobInstance instance) => new Dictionary<string, string>
        {
            ["CI"] = "true",
            ["BERTH_RUN_ID"] = _runId.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["BERTH_PIPELINE"] = _pipeline.Name,
            ["BERTH_JOB"] = instance.Key,
            ["BERTH_BRANCH"] = _request.Branch,
        }.ToImmutableDictionary();

        private ImmutableDictionary<string, string> RenderEnv(ImmutableArray<EnvEntry> entries, ExpressionContext context, IReadOnlyDictionary<string, string> start)
        {
            var env = start as ImmutableDictionary<string, string> ?? start.ToImmutableDictionary();
            foreach (var entry in entries)
            {
                env = env.SetItem(entry.Name, entry.Value.Render(context with { Env = env }));
            }

            return env;
        }

        private string SetJob(JobInstance instance, string status, DateTimeOffset? started, DateTimeOffset? finished, string message)
        {
            _instanceStatus[instance.Key] = status;
            _store.SaveJob(_runId, instance.Key, instance.Job.Id, instance.MatrixJson, status, started, finished, message);
            _engine.Observer?.JobChanged(_runId, instance.Key, status, message);
            if (RunStatus.IsFinal(status))
            {
                Log.JobFinished(_engine._logger, _runId, instance.Key, status);
            }

            return status;
        }

        private string ArtifactDirectory(string key) => Path.Combine(_runDirectory, "artifacts", FileCopy.SafeName(key));

        /// <summary>One job instance from its first step to its last.</summary>
        private sealed class JobRun(RunContext run, JobInstance instance, ExpressionContext context, CancellationToken failFast)
        {
            private readonly JobDefinition _job = instance.Job;
            private string _workspace = "";
            private DateTimeOffset _started;

            public async Task<string> ExecuteAsync()
            {
                _started = run.Time.GetUtcNow();
                run.SetJob(instance, RunStatus.Running, _started, null, "");
                using var timeout = new CancellationTokenSource(_job.Timeout ?? PipelineDefaults.JobTimeout, run.Time);
                using var jobCts = CancellationTokenSource.CreateLinkedTokenSource(failFast, timeout.Token);
                var token = jobCts.Token;
                var outcome = PriorOutcome.Success;
                string? cacheHitKey = null;
                string? cacheKey = null;
                try
                {
                    _workspace = _job.IsolatedWorkspace
                        ? Directory.CreateDirectory(Path.Combine(run._runDirectory, "work", FileCopy.SafeName(instance.Key))).FullName
                        : run._pipeline.BaseDirectory;
                    context = context with { Workspace = _workspace };
                    var env = run.RenderEnv(_job.Env, context, context.Env.ToImmutableDictionary().SetItem("BERTH_WORKSPACE", _workspace));
                    context = context with { Env = env };
                    ReceiveArtifacts();
                    if (_job.Cache is { } cache)
                    {
                        cacheKey = cache.Key.Render(context);
                        cacheHitKey = new CacheStore(run._engine.Options.StateDirectory).Restore(cache, cacheKey, cache.RestoreKeys.Select(k => k.Render(context)).ToList(), _workspace, JobLine);
                    }

                    for (var index = 0; index < _job.Steps.Length; index++)
                    {
                        var step = _job.Steps[index];
                        var prior = token.IsCancellationRequested ? PriorOutcome.Cancelled : outcome;
                        var status = await RunStepAsync(step, index, context with { Prior = prior }, token).ConfigureAwait(false);
                        if (status is RunStatus.Failed or RunStatus.TimedOut && !step.ContinueOnError)
                        {
                            outcome = PriorOutcome.Failure;
                        }
                        else if (status == RunStatus.Cancelled)
                        {
                            outcome = PriorOutcome.Cancelled;
                        }
                    }

                    if (outcome == PriorOutcome.Success)
                    {
                        SaveArtifacts();
                        if (_job.Cache is { } c && cacheKey is { Length: > 0 } && cacheHitKey != cacheKey)
                        {
                            new CacheStore(run._engine.Options.StateDirectory).Save(c, cacheKey, _workspace, JobLine);
                        }
                    }
                }
                catch (Exception e) when (e is StepFailedException or IOException or UnauthorizedAccessException)
                {
                    var reason = e is StepFailedException ? e.Message : $"{e.GetType().Name}: {e.Message}";
                    JobLine(reason);
                    return run.SetJob(instance, RunStatus.Failed, _started, run.Time.GetUtcNow(), run._masker.MaskText(reason));
                }

                var final = outcome switch
                {
                    PriorOutcome.Success => RunStatus.Succeeded,
                    PriorOutcome.Cancelled when timeout.IsCancellationRequested && !failFast.IsCancellationRequested => RunStatus.TimedOut,
                    PriorOutcome.Cancelled => RunStatus.Cancelled,
                    _ when timeout.IsCancellationRequested => RunStatus.TimedOut,
                    _ => RunStatus.Failed,
                };
                var message = final == RunStatus.TimedOut ? $"job timed out after {Core.Model.Durations.Format(_job.Timeout ?? PipelineDefaults.JobTimeout)}" : "";
                return run.SetJob(instance, final, _started, run.Time.GetUtcNow(), message);
            }

            private void JobLine(string text) => Line(-1, OutputStream.Stderr, run._masker.MaskText(text));

            private void Line(int stepIndex, OutputStream stream, string masked)
            {
                run._store.AppendLog(run._runId, instance.Key, stepIndex, stream == OutputStream.Stdout ? "out" : "err", masked, run.Time.GetUtcNow());
                run._engine.Observer?.Line(run._runId, instance.Key, stepIndex, stream, masked);
            }

            private void ReceiveArtifacts()
            {
                foreach (var (need, _) in _job.Needs)
                {
                    foreach (var producer in run._instances[need])
                    {
                        var source = run.ArtifactDirectory(producer.Key);
                        if (Directory.Exists(source))
                        {
                            FileCopy.CopyTree(source, _workspace);
                            JobLine($"received artifacts of {producer.Key}");
                        }
                    }
                }
            }

            private void SaveArtifacts()
            {
                if (_job.Artifacts.IsEmpty)
                {
                    return;
                }

                var destination = run.ArtifactDirectory(instance.Key);
                foreach (var pattern in _job.Artifacts)
                {
                    var glob = Directory.Exists(Path.Combine(_workspace, pattern)) ? pattern.TrimEnd('/') + "/**" : pattern;
                    var files = FileHasher.Match(_workspace, [glob]);
                    if (files.Count == 0)
                    {
                        throw new StepFailedException($"artifact '{pattern}' matched no files in {_workspace}; did the job write it?");
                    }

                    foreach (var file in files)
                    {
                        FileCopy.CopyTree(file, Path.Combine(destination, Path.GetRelativePath(_workspace, file)));
                    }
                }
            }

            private void SaveStep(StepDefinition step, int index, string status, int? exitCode, int attempts, DateTimeOffset? started, DateTimeOffset? finished, string summary)
            {
                var record = new StepRecord(run._runId, instance.Key, index, step.Name, StepKindName(step.Kind), status, exitCode, attempts, started, finished, run._masker.MaskText(summary));
                run._store.SaveStep(record);
                run._engine.Observer?.StepChanged(record);
            }

            private static string StepKindName(StepKind kind) => kind switch
            {
                StepKind.Run => "run",
                StepKind.Test => "test",
                StepKind.BuildImage => "build-image",
                StepKind.Deploy => "deploy",
                _ => "approve",
            };

            private async Task<string> RunStepAsync(StepDefinition step, int index, ExpressionContext stepContext, CancellationToken jobToken)
            {
                bool go;
                try
                {
                    go = step.If is null ? stepContext.Prior == PriorOutcome.Success : ExpressionEvaluator.EvaluateCondition(step.If, stepContext);
                }
                catch (Exception e) when (e is InvalidOperationException or IOException)
                {
                    SaveStep(step, index, RunStatus.Failed, null, 0, null, null, $"if: {e.Message}");
                    return RunStatus.Failed;
                }

                if (!go)
                {
                    var skipped = stepContext.Prior == PriorOutcome.Cancelled ? RunStatus.Cancelled : RunStatus.Skipped;
                    SaveStep(step, index, skipped, null, 0, null, null, step.If is null ? "an earlier step did not succeed" : "if: was false");
                    return skipped;
                }

                var started = run.Time.GetUtcNow();
                var env = run.RenderEnv(step.Env, stepContext, stepContext.Env);
                var stepContextWithEnv = stepContext with { Env = env };
                var attempts = 0;
                while (true)
                {
                    attempts++;
                    SaveStep(step, index, RunStatus.Running, null, attempts, started, null, "");
                    using var timeout = step.Timeout is { } t ? new CancellationTokenSource(t, run.Time) : new CancellationTokenSource();
                    using var stepCts = CancellationTokenSource.CreateLinkedTokenSource(jobToken, timeout.Token);
                    int? exitCode = null;
                    string status;
                    string summary = "";
                    try
                    {
                        (status, exitCode, summary) = await ExecuteStepAsync(step, index, stepContextWithEnv, started, stepCts.Token).ConfigureAwait(false);
                    }
                    catch (StepFailedException e)
                    {
                        status = RunStatus.Failed;
                        summary = e.Message;
                        Line(index, OutputStream.Stderr, run._masker.MaskText(e.Message));
                    }
                    catch (OperationCanceledException) when (stepCts.IsCancellationRequested)
                    {
                        status = RunStatus.Cancelled;
                    }
                    catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.ComponentModel.Win32Exception or HttpRequestException or InvalidOperationException or Docker.DotNet.DockerApiException)
                    {
                        // Not a user error we foresaw; still one line, never a stack trace in the run.
                        status = RunStatus.Failed;
                        summary = $"{e.GetType().Name}: {e.Message}";
                        Line(index, OutputStream.Stderr, run._masker.MaskText(summary));
                    }

                    if (status == RunStatus.Cancelled && timeout.IsCancellationRequested && !jobToken.IsCancellationRequested)
                    {
                        status = RunStatus.TimedOut;
                        summary = $"timed out after {Core.Model.Durations.Format(step.Timeout!.Value)}";
                    }

                    if (status == RunStatus.Failed && attempts < step.Retry.Attempts && (exitCode is null || step.Retry.ShouldRetry(exitCode.Value)) && !jobToken.IsCancellationRequested)
                    {
                        Line(index, OutputStream.Stderr, $"berth: attempt {attempts} of {step.Retry.Attempts} failed{(exitCode is { } c ? $" (exit code {c})" : "")}; retrying");
                        if (step.Retry.Delay > TimeSpan.Zero)
                        {
                            try
                            {
                                await Task.Delay(step.Retry.Delay, run.Time, jobToken).ConfigureAwait(false);
                            }
                            catch (OperationCanceledException)
                            {
                            }
                        }

                        continue;
                    }

                    if (status is RunStatus.Failed or RunStatus.TimedOut)
                    {
                        Log.StepFailed(run._engine._logger, run._runId, instance.Key, step.Name, run._masker.MaskText(summary.Length > 0 ? summary : $"exit code {exitCode}"));
                        if (step.ContinueOnError)
                        {
                            summary = (summary.Length > 0 ? summary + "; " : "") + "continue-on-error";
                        }
                    }

                    SaveStep(step, index, status, exitCode, attempts, started, run.Time.GetUtcNow(), summary);
                    return status;
                }
            }

            private async Task<(string Status, int? ExitCode, string Summary)> ExecuteStepAsync(
                StepDefinition step, int index, ExpressionContext stepContext, DateTimeOffset started, CancellationToken token)
            {
                var directory = ResolveDirectory(step.WorkingDirectory, stepContext);
                switch (step.Kind)
                {
                    case StepKind.Run:
                    {
                        var outcome = await RunCommandAsync(step.Command!, index, stepContext, directory, token).ConfigureAwait(false);
                        return outcome.Stopped ? (RunStatus.Cancelled, outcome.ExitCode, "")
                            : (outcome.ExitCode == 0 ? RunStatus.Succeeded : RunStatus.Failed, outcome.ExitCode, outcome.ExitCode == 0 ? "" : $"exit code {outcome.ExitCode}");
                    }

                    case StepKind.Test:
                    {
                        var outcome = await RunCommandAsync(step.Command!, index, stepContext, directory, token).ConfigureAwait(false);
                        if (outcome.Stopped)
                        {
                            return (RunStatus.Cancelled, outcome.ExitCode, "");
                        }

                        var patterns = step.Results.Select(r => Template.Parse(r).Render(stepContext)).ToList();
                        var files = FileHasher.Match(directory, patterns)
                            .Where(f => File.GetLastWriteTimeUtc(f) >= started.UtcDateTime.AddSeconds(-2))
                            .ToList();
                        if (files.Count == 0)
                        {
                            return (RunStatus.Failed, outcome.ExitCode, $"no test results matching {string.Join(", ", patterns)} were written under {directory}");
                        }

                        var summary = files.Aggregate(TestSummary.Empty, (sum, f) => sum.Add(TestResults.Read(f)));
                        Line(index, OutputStream.Stdout, run._masker.MaskText($"tests: {summary}"));
                        foreach (var failed in summary.FailedTests.Take(20))
                        {
                            Line(index, OutputStream.Stdout, run._masker.MaskText($"  failed: {failed}"));
                        }

                        var ok = outcome.ExitCode == 0 && summary.Failed == 0;
                        return (ok ? RunStatus.Succeeded : RunStatus.Failed, outcome.ExitCode, summary.ToString());
                    }

                    case StepKind.BuildImage:
                    {
                        var build = step.BuildImage!;
                        var contextDir = Path.GetFullPath(build.Context.Render(stepContext), directory);
                        var tags = build.Tags.Select(t => t.Render(stepContext)).ToList();
                        var args = run.RenderEnv(build.BuildArgs, stepContext, ImmutableDictionary<string, string>.Empty);
                        var builder = run._engine.Options.ImageBuilder ?? new DockerImageBuilder();
                        await builder.BuildAsync(contextDir, build.Dockerfile?.Render(stepContext) ?? "Dockerfile", tags, args,
                            line => Line(index, OutputStream.Stdout, run._masker.MaskText(line)), token).ConfigureAwait(false);
                        return (RunStatus.Succeeded, null, $"built {string.Join(", ", tags)}");
                    }

                    case StepKind.Deploy:
                        return await DeployAsync(step.Deploy!, index, stepContext, token).ConfigureAwait(false);

                    default:
                        return await ApproveAsync(step, index, started, token).ConfigureAwait(false);
                }
            }

            private string ResolveDirectory(string? stepDirectory, ExpressionContext stepContext)
            {
                var directory = _workspace;
                if (_job.WorkingDirectory is { } jobDirectory)
                {
                    directory = Path.GetFullPath(Template.Parse(jobDirectory).Render(stepContext), directory);
                }

                if (stepDirectory is not null)
                {
                    directory = Path.GetFullPath(Template.Parse(stepDirectory).Render(stepContext), directory);
                }

                return directory;
            }

            private Task<ProcessOutcome> RunCommandAsync(CommandDefinition command, int index, ExpressionContext stepContext, string directory, CancellationToken token)
            {
                IReadOnlyList<string> argv = command.Shell is null
                    ? command.Argv.Select(a => a.Render(stepContext)).ToList()
                    : ShellArgv(command.Shell, command.Script!.Render(stepContext));
                var spec = new ProcessSpec(argv, directory, stepContext.Env);
                return run._engine._processes.RunAsync(spec, run._masker, (stream, text) => Line(index, stream, text), run._engine.Options.KillGrace, token);
            }

            /// <summary>The shells GitHub Actions knows, with the same flags: fail on the first error.</summary>
            private static string[] ShellArgv(string shell, string script) => shell switch
            {
                "bash" => ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
                "sh" => ["sh", "-e", "-c", script],
                "pwsh" => ["pwsh", "-NoProfile", "-NonInteractive", "-Command", script],
                _ => [shell, "-c", script],
            };

            private async Task<(string, int?, string)> DeployAsync(DeployDefinition deploy, int index, ExpressionContext stepContext, CancellationToken token)
            {
                var service = deploy.Service.Render(stepContext);
                var endpoint = ControlPlaneEndpoint.Discover(run._engine.Options.StateDirectory);
                var client = run._engine.Options.ControlPlane?.Invoke(endpoint) ?? new ControlPlaneClient(SharedHttp, endpoint);
                var update = new ServicePatchRequest
                {
                    Image = deploy.Image?.Render(stepContext),
                    Command = deploy.Command?.Select(c => c.Render(stepContext)).ToList(),
                    Env = deploy.Env.IsEmpty ? null : run.RenderEnv(deploy.Env, stepContext, ImmutableDictionary<string, string>.Empty),
                };
                var revision = await client.UpdateServiceAsync(service, update, token).ConfigureAwait(false);
                Line(index, OutputStream.Stdout, run._masker.MaskText($"rollout of {service} to revision {revision} started"));
                using var deadline = new CancellationTokenSource(deploy.Timeout ?? PipelineDefaults.DeployTimeout, run.Time);
                using var linked = CancellationTokenSource.CreateLinkedTokenSource(token, deadline.Token);
                RolloutState? lastState = null;
                try
                {
                    while (true)
                    {
                        var status = await client.GetRolloutAsync(service, linked.Token).ConfigureAwait(false);
                        if (status.State != lastState)
                        {
                            lastState = status.State;
                            Line(index, OutputStream.Stdout, run._masker.MaskText($"rollout of {service} revision {status.Revision}: {status.State.Name()}{(string.IsNullOrEmpty(status.Message) ? "" : " — " + status.Message)}"));
                        }

                        switch (status.State)
                        {
                            case RolloutState.Complete when status.Revision >= revision:
                                return (RunStatus.Succeeded, null, $"{service} at revision {status.Revision}");
                            case RolloutState.RolledBack or RolloutState.Failed:
                                return (RunStatus.Failed, null,
                                    $"rollout of {service} revision {revision} {status.State.Name()}{(string.IsNullOrEmpty(status.Message) ? "" : ": " + status.Message)}; the app stays on its previous revision");
                        }

                        await Task.Delay(run._engine.Options.RolloutPollInterval, run.Time, linked.Token).ConfigureAwait(false);
                    }
                }
                catch (OperationCanceledException) when (deadline.IsCancellationRequested && !token.IsCancellationRequested)
                {
                    return (RunStatus.Failed, null,
                        $"rollout of {service} revision {revision} did not complete within {Core.Model.Durations.Format(deploy.Timeout ?? PipelineDefaults.DeployTimeout)} (last state: {lastState?.Name()}); see 'berth rollout status {service}'");
                }
            }

            private async Task<(string, int?, string)> ApproveAsync(StepDefinition step, int index, DateTimeOffset started, CancellationToken token)
            {
                SaveStep(step, index, RunStatus.Waiting, null, 1, started, null, step.ApproveMessage ?? "");
                Line(index, OutputStream.Stdout, run._masker.MaskText($"waiting for approval: {step.ApproveMessage} — run 'berth pipeline approve {run._runId}'"));
                using var timer = new PeriodicTimer(run._engine.Options.PollInterval, run.Time);
                while (!run._store.IsApproved(run._runId, instance.Key))
                {
                    await timer.WaitForNextTickAsync(token).ConfigureAwait(false);
                }

                Line(index, OutputStream.Stdout, "approved");
                return (RunStatus.Succeeded, null, "approved");
            }
        }
    }

    private PipelineEngineOptions Options => options;

    private TimeProvider Time => time;

    private IRunObserver? Observer => observer;
}
