using System.Collections.Concurrent;
using System.Collections.Immutable;
using System.Globalization;
using System.Runtime.InteropServices;
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

    /// <summary>How often cancel requests, approvals and concurrency groups are looked at: 250ms, a quarter of kubectl's 1s watch poll.</summary>
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

    /// <summary>The <c>inputs</c> context: declared inputs with their defaults, resolved by <see cref="PipelineInputs.Resolve"/>.</summary>
    public IReadOnlyDictionary<string, object?> Inputs { get; init; } = ImmutableDictionary<string, object?>.Empty;

    /// <summary>The <c>vars</c> context (from a vars file).</summary>
    public IReadOnlyDictionary<string, string> Vars { get; init; } = ImmutableDictionary<string, string>.Empty;

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
/// steps in order, with conditions, contexts, timeouts, retries, artifacts, caches and masked logs persisted in SQLite.
/// </summary>
public sealed partial class PipelineEngine(PipelineEngineOptions options, TimeProvider time, ILogger? logger = null, IRunObserver? observer = null)
{
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
        Path.Combine(stateDirectory, "pipelines", "runs", runId.ToString(CultureInfo.InvariantCulture));

    /// <summary>GitHub's result words for a status: success, failure, cancelled, skipped.</summary>
    internal static string Result(string status) => status switch
    {
        RunStatus.Succeeded or RunStatus.Reused => "success",
        RunStatus.Failed or RunStatus.TimedOut => "failure",
        RunStatus.Cancelled => "cancelled",
        _ => "skipped",
    };

    private static readonly Lazy<bool> HasBash = new(() => ProcessRunner.ResolveProgram("bash", ImmutableDictionary<string, string>.Empty, "/") is not null);

    /// <summary>The state of one run while it goes.</summary>
    private sealed partial class RunContext
    {
        private readonly PipelineEngine _engine;
        private readonly RunStore _store;
        private readonly PipelineDefinition _pipeline;
        private readonly RunRequest _request;
        private readonly long _runId;
        private readonly CancellationToken _outer;
        private readonly SecretMasker _masker;
        private readonly string _runDirectory;
        private readonly ConcurrentDictionary<string, string> _jobStatus = new();
        private readonly ConcurrentDictionary<string, ImmutableDictionary<string, string>> _jobOutputs = new();
        private readonly Dictionary<string, Task<string>> _jobTasks = [];
        private readonly Dictionary<string, IReadOnlyList<JobInstance>> _instances = [];
        private readonly SemaphoreSlim _gate;
        private readonly ConcurrencyGate _concurrency;
        private ImmutableDictionary<string, string> _reused = ImmutableDictionary<string, string>.Empty;
        private ExpressionContext _runContext = new();

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
            _concurrency = new ConcurrencyGate(store, engine.Time, engine.Options.PollInterval);
        }

        private TimeProvider Time => _engine.Time;

        public async Task<string> ExecuteAsync()
        {
            using var timeout = _pipeline.Timeout is { } t ? new CancellationTokenSource(t, Time) : new CancellationTokenSource();
            using var runCts = CancellationTokenSource.CreateLinkedTokenSource(_outer, timeout.Token);
            using var watcherStop = new CancellationTokenSource();
            var watcher = WatchCancelAsync(runCts, watcherStop.Token);
            long? group = null;
            var groupWatch = Task.CompletedTask;
            try
            {
                _runContext = BuildRunContext(runCts.Token);
                foreach (var job in _pipeline.Jobs)
                {
                    _instances[job.Id] = MatrixExpander.Expand(job);
                    foreach (var instance in _instances[job.Id])
                    {
                        _store.SaveJob(_runId, instance.Key, job.Id, instance.MatrixJson, RunStatus.Queued, null, null, "", [.. job.Needs.Select(n => n.Job)]);
                    }
                }

                if (_pipeline.Concurrency is { } concurrency)
                {
                    var name = _masker.MaskText(concurrency.Group.Render(_runContext));
                    group = await _concurrency.AcquireAsync(name, _runId, "*", concurrency.CancelInProgress.Evaluate(_runContext), RunLine, runCts.Token).ConfigureAwait(false);
                    if (group is null)
                    {
                        foreach (var instance in _instances.Values.SelectMany(i => i))
                        {
                            SetJob(instance, RunStatus.Cancelled, null, null, $"cancelled: a newer run is pending in concurrency group '{name}'");
                        }

                        return RunStatus.Cancelled;
                    }

                    groupWatch = _concurrency.WatchAsync(group.Value, runCts, () => RunLine($"cancelled by a newer run of concurrency group '{name}' (cancel-in-progress)"), watcherStop.Token);
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

                // As GitHub's run conclusion: a failure fails the run; otherwise a cancelled job (concurrency) cancels it.
                return statuses.Any(s => s is RunStatus.Failed or RunStatus.TimedOut) ? RunStatus.Failed
                    : statuses.Any(s => s == RunStatus.Cancelled) ? RunStatus.Cancelled
                    : RunStatus.Succeeded;
            }
            catch (OperationCanceledException) when (runCts.IsCancellationRequested)
            {
                return timeout.IsCancellationRequested && !_outer.IsCancellationRequested ? RunStatus.TimedOut : RunStatus.Cancelled;
            }
            catch (Exception e) when (e is InvalidOperationException or StepFailedException)
            {
                RunLine($"the run could not start: {e.Message}");
                return RunStatus.Failed;
            }
            finally
            {
                await watcherStop.CancelAsync().ConfigureAwait(false);
                await watcher.ConfigureAwait(false);
                await groupWatch.ConfigureAwait(false);
                if (group is { } entry)
                {
                    _concurrency.Release(entry);
                }
            }
        }

        private void RunLine(string text)
        {
            var masked = _masker.MaskText(text);
            _store.AppendLog(_runId, "*", -1, "err", masked, Time.GetUtcNow());
            _engine.Observer?.Line(_runId, "*", -1, OutputStream.Stderr, masked);
        }

        /// <summary>The contexts every job shares: github, runner, inputs, vars, secrets, the pipeline's env.</summary>
        private ExpressionContext BuildRunContext(CancellationToken token)
        {
            var git = GitInfo.Read(_pipeline.BaseDirectory);
            var branch = _request.Branch;
            var runNumber = _runId.ToString(CultureInfo.InvariantCulture);
            var github = Values.Object(new Dictionary<string, object?>
            {
                ["sha"] = git.Sha,
                ["ref"] = branch.Length > 0 ? $"refs/heads/{branch}" : "",
                ["ref_name"] = branch,
                ["ref_type"] = "branch",
                ["head_ref"] = "",
                ["base_ref"] = "",
                ["event_name"] = _request.Trigger switch
                {
                    "schedule" => "schedule",
                    "watch" => "push",
                    _ => "workflow_dispatch",
                },
                ["event"] = Values.Object(new Dictionary<string, object?> { ["inputs"] = Values.Object(_request.Inputs) }),
                ["workspace"] = _pipeline.BaseDirectory,
                ["run_id"] = runNumber,
                ["run_number"] = runNumber,
                ["run_attempt"] = "1",
                ["repository"] = git.Repository,
                ["repository_owner"] = git.Repository.Contains('/', StringComparison.Ordinal) ? git.Repository[..git.Repository.IndexOf('/', StringComparison.Ordinal)] : "",
                ["actor"] = Environment.UserName,
                ["triggering_actor"] = Environment.UserName,
                ["workflow"] = _pipeline.Name,
                ["server_url"] = "",
                ["action"] = "",
            });
            Directory.CreateDirectory(Path.Combine(_runDirectory, "temp"));
            var runner = Values.Object(new Dictionary<string, object?>
            {
                ["os"] = "Linux",
                // X64, ARM64, ARM, X86: GitHub's spelling is the enum's name in capitals.
                ["arch"] = RuntimeInformation.OSArchitecture.ToString().ToUpperInvariant(),
                ["name"] = Environment.MachineName,
                ["temp"] = Path.Combine(_runDirectory, "temp"),
                ["tool_cache"] = Path.Combine(_engine.Options.StateDirectory, "pipelines", "cache"),
                ["environment"] = "self-hosted",
                ["debug"] = "",
            });
            var context = new ExpressionContext { Secrets = _request.Secrets, Branch = branch, Cancellation = token }
                .WithContext("github", github)
                .WithContext("runner", runner)
                .WithContext("inputs", Values.Object(_request.Inputs))
                .WithContext("vars", Values.Object(_request.Vars.Select(kv => KeyValuePair.Create<string, object?>(kv.Key, kv.Value))));
            var baseEnv = new Dictionary<string, string>
            {
                ["CI"] = "true",
                ["BERTH_RUN_ID"] = runNumber,
                ["BERTH_PIPELINE"] = _pipeline.Name,
                ["BERTH_BRANCH"] = branch,
                ["GITHUB_WORKFLOW"] = _pipeline.Name,
                ["GITHUB_RUN_ID"] = runNumber,
                ["GITHUB_RUN_NUMBER"] = runNumber,
                ["GITHUB_RUN_ATTEMPT"] = "1",
                ["GITHUB_SHA"] = git.Sha,
                ["GITHUB_REF"] = branch.Length > 0 ? $"refs/heads/{branch}" : "",
                ["GITHUB_REF_NAME"] = branch,
                ["GITHUB_REF_TYPE"] = "branch",
                ["GITHUB_REPOSITORY"] = git.Repository,
                ["GITHUB_ACTOR"] = Environment.UserName,
                ["GITHUB_EVENT_NAME"] = (string)github["event_name"]!,
                ["RUNNER_OS"] = "Linux",
                ["RUNNER_ARCH"] = (string)runner["arch"]!,
                ["RUNNER_TEMP"] = (string)runner["temp"]!,
            }.ToImmutableDictionary();
            return context with { Env = RenderEnv(_pipeline.Env, context, baseEnv) };
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

        /// <summary>
        /// As GitHub: success() of a job looks at every ancestor, not only the jobs it names in needs, so a job below
        /// a failure is skipped even when the job between them ran because of failure() or always().
        /// </summary>
        private PriorOutcome PriorOf(JobDefinition job, CancellationToken runToken)
        {
            var statuses = job.Ancestors.Select(a => _jobStatus.GetValueOrDefault(a, RunStatus.Skipped)).ToList();
            return runToken.IsCancellationRequested ? PriorOutcome.Cancelled
                : statuses.Any(s => s is RunStatus.Failed or RunStatus.TimedOut) ? PriorOutcome.Failure
                : statuses.Any(s => s == RunStatus.Cancelled) ? PriorOutcome.Cancelled
                : statuses.Any(s => s == RunStatus.Skipped) ? PriorOutcome.Skipped
                : PriorOutcome.Success;
        }

        /// <summary>The <c>needs</c> context: result and outputs of each job this one names in needs.</summary>
        private ImmutableDictionary<string, object?> NeedsContext(JobDefinition job) => Values.Object(job.Needs.Select(n =>
            KeyValuePair.Create<string, object?>(n.Job, Values.Object(new Dictionary<string, object?>
            {
                ["result"] = Result(_jobStatus.GetValueOrDefault(n.Job, RunStatus.Skipped)),
                ["outputs"] = Values.Object((_jobOutputs.GetValueOrDefault(n.Job) ?? ImmutableDictionary<string, string>.Empty)
                    .Select(kv => KeyValuePair.Create<string, object?>(kv.Key, kv.Value))),
            }))));

        private async Task<string> RunJobAsync(JobDefinition job, Task<string>[] needs, CancellationToken runToken)
        {
            await Task.WhenAll(needs).ConfigureAwait(false);
            await Task.Yield();
            var status = await RunInstancesAsync(job, runToken).ConfigureAwait(false);
            _jobStatus[job.Id] = status;
            return status;
        }

        private async Task<string> RunInstancesAsync(JobDefinition job, CancellationToken runToken)
        {
            var prior = PriorOf(job, runToken);
            var github = (ImmutableDictionary<string, object?>)_runContext.Contexts["github"]!;
            var context = _runContext.WithContext("needs", NeedsContext(job)).WithContext("github", github.SetItem("job", job.Id)) with { Prior = prior };
            var matrix = job.Matrix;
            if (matrix?.Dynamic is { } dynamic)
            {
                try
                {
                    matrix = MatrixExpander.FromValue(matrix, ExpressionEvaluator.Evaluate(dynamic, context));
                    var expanded = MatrixExpander.Expand(job, matrix);
                    _store.DeleteJob(_runId, job.Id);
                    foreach (var instance in expanded)
                    {
                        _store.SaveJob(_runId, instance.Key, job.Id, instance.MatrixJson, RunStatus.Queued, null, null, "", [.. job.Needs.Select(n => n.Job)]);
                    }

                    _instances[job.Id] = expanded;
                }
                catch (Exception e) when (e is InvalidOperationException or StepFailedException)
                {
                    var skipIt = job.If is null && prior != PriorOutcome.Success;
                    return SetJob(_instances[job.Id][0], skipIt ? RunStatus.Skipped : RunStatus.Failed, null, null,
                        skipIt ? "a needed job did not succeed" : _masker.MaskText($"strategy.matrix: {e.Message}"));
                }
            }

            using var failFast = CancellationTokenSource.CreateLinkedTokenSource(runToken);
            string? failedLeg = null;
            using var matrixGate = new SemaphoreSlim(matrix?.MaxParallel ?? int.MaxValue);
            var instances = _instances[job.Id];
            var strategy = Values.Object(new Dictionary<string, object?>
            {
                ["fail-fast"] = matrix?.FailFast.Evaluate(context) ?? true,
                ["job-total"] = (double)instances.Count,
                ["max-parallel"] = (double)(matrix?.MaxParallel ?? instances.Count),
            });
            var results = await Task.WhenAll(instances.Select(async (instance, index) =>
            {
                var instanceContext = context.WithContext("strategy", strategy.SetItem("job-index", (double)index)) with { Matrix = instance.Matrix };
                var status = await RunInstanceAsync(instance, instanceContext, failFast.Token, () => failedLeg, matrixGate).ConfigureAwait(false);
                if (status is RunStatus.Failed or RunStatus.TimedOut && matrix is not null && Values.IsTruthy(strategy["fail-fast"]) &&
                    !SafeFlag(job.ContinueOnError, instanceContext) && Interlocked.CompareExchange(ref failedLeg, instance.Key, null) is null)
                {
                    await failFast.CancelAsync().ConfigureAwait(false);
                }

                return (status, continueOnError: SafeFlag(job.ContinueOnError, instanceContext));
            })).ConfigureAwait(false);

            if (results.Any(r => r.status is RunStatus.Failed or RunStatus.TimedOut && !r.continueOnError))
            {
                return RunStatus.Failed;
            }

            if (results.Any(r => r.status == RunStatus.Cancelled))
            {
                return RunStatus.Cancelled;
            }

            return results.All(r => r.status == RunStatus.Skipped) ? RunStatus.Skipped : RunStatus.Succeeded;
        }

        private static bool SafeFlag(Flag flag, ExpressionContext context)
        {
            try
            {
                return flag.Evaluate(context);
            }
            catch (InvalidOperationException)
            {
                return false;
            }
        }

        private async Task<string> RunInstanceAsync(JobInstance instance, ExpressionContext context, CancellationToken failFast, Func<string?> failedLeg, SemaphoreSlim matrixGate)
        {
            var job = instance.Job;
            if (_reused.TryGetValue(instance.Key, out var previousArtifacts))
            {
                FileCopy.CopyTree(previousArtifacts, ArtifactDirectory(instance.Key));
                return SetJob(instance, RunStatus.Reused, null, null, $"reused from run {_request.RerunFailedOf}");
            }

            bool run;
            try
            {
                context = context with { Env = RenderEnv([], context, context.Env), Cancellation = failFast };
                run = job.If is null ? context.Prior == PriorOutcome.Success : ExpressionEvaluator.EvaluateCondition(job.If, context);
            }
            catch (OperationCanceledException)
            {
                return SetJob(instance, RunStatus.Cancelled, null, null, "cancelled while its if: was evaluated");
            }
            catch (Exception e) when (e is InvalidOperationException or IOException)
            {
                return SetJob(instance, RunStatus.Failed, null, null, _masker.MaskText($"if: {e.Message}"));
            }

            if (!run)
            {
                return SetJob(instance, context.Prior == PriorOutcome.Cancelled ? RunStatus.Cancelled : RunStatus.Skipped, null, null,
                    job.If is null ? "a needed job did not succeed" : "if: was false");
            }

            if (failFast.IsCancellationRequested)
            {
                return SetJob(instance, RunStatus.Cancelled, null, null, CancelMessage(failedLeg, "before it started"));
            }

            try
            {
                await _gate.WaitAsync(failFast).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return SetJob(instance, RunStatus.Cancelled, null, null, CancelMessage(failedLeg, "before it started"));
            }

            long? group = null;
            try
            {
                await matrixGate.WaitAsync(failFast).ConfigureAwait(false);
                using var jobCancel = CancellationTokenSource.CreateLinkedTokenSource(failFast);
                using var watchStop = new CancellationTokenSource();
                var watch = Task.CompletedTask;
                string? groupMessage = null;
                try
                {
                    if (job.Concurrency is { } concurrency)
                    {
                        var name = _masker.MaskText(concurrency.Group.Render(context));
                        group = await _concurrency.AcquireAsync(name, _runId, instance.Key, concurrency.CancelInProgress.Evaluate(context),
                            text => SetJob(instance, RunStatus.Queued, null, null, text), failFast).ConfigureAwait(false);
                        if (group is null)
                        {
                            return SetJob(instance, RunStatus.Cancelled, null, null, $"cancelled: a newer job is pending in concurrency group '{name}'");
                        }

                        watch = _concurrency.WatchAsync(group.Value, jobCancel, () => groupMessage = $"cancelled by a newer job of concurrency group '{name}' (cancel-in-progress)", watchStop.Token);
                    }

                    return await new JobRun(this, instance, context, jobCancel.Token, () => groupMessage ?? CancelMessage(failedLeg, "")).ExecuteAsync().ConfigureAwait(false);
                }
                finally
                {
                    await watchStop.CancelAsync().ConfigureAwait(false);
                    await watch.ConfigureAwait(false);
                    matrixGate.Release();
                }
            }
            catch (OperationCanceledException)
            {
                return SetJob(instance, RunStatus.Cancelled, null, null, CancelMessage(failedLeg, "before it started"));
            }
            finally
            {
                if (group is { } entry)
                {
                    _concurrency.Release(entry);
                }

                _gate.Release();
            }
        }

        private string CancelMessage(Func<string?> failedLeg, string when) => failedLeg() is { } leg && !_outer.IsCancellationRequested
            ? $"cancelled{(when.Length > 0 ? " " + when : "")}: matrix job {leg} failed (fail-fast)"
            : when.Length > 0 ? $"cancelled {when}" : "";

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
            _store.SaveJob(_runId, instance.Key, instance.Job.Id, instance.MatrixJson, status, started, finished, message);
            _engine.Observer?.JobChanged(_runId, instance.Key, status, message);
            if (RunStatus.IsFinal(status))
            {
                Log.JobFinished(_engine._logger, _runId, instance.Key, status);
            }

            return status;
        }

        private string ArtifactDirectory(string key) => Path.Combine(_runDirectory, "artifacts", FileCopy.SafeName(key));
    }

    private PipelineEngineOptions Options => options;

    private TimeProvider Time => time;

    private IRunObserver? Observer => observer;
}
