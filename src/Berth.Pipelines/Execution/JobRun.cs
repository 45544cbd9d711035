using System.Collections.Immutable;
using System.Globalization;
using Berth.Pipelines.Definition;
using Berth.Pipelines.Expressions;
using Berth.Pipelines.Steps;
using Berth.Pipelines.Storage;

namespace Berth.Pipelines.Execution;

public sealed partial class PipelineEngine
{
    private sealed partial class RunContext
    {
        /// <summary>
        /// One job instance from its first step to its last: the <c>steps</c>, <c>job</c> and <c>env</c> contexts as
        /// they grow, GITHUB_OUTPUT / GITHUB_ENV / GITHUB_PATH / GITHUB_STEP_SUMMARY after each step, workflow commands
        /// in the output, and the job's outputs at the end.
        /// </summary>
        private sealed class JobRun(RunContext run, JobInstance instance, ExpressionContext context, CancellationToken jobToken, Func<string> cancelReason)
        {
            private readonly JobDefinition _job = instance.Job;
            private readonly Dictionary<string, object?> _steps = new(StringComparer.OrdinalIgnoreCase);
            private readonly List<string> _addedPath = [];
            private ImmutableDictionary<string, string> _env = ImmutableDictionary<string, string>.Empty;
            private string _jobStatus = "success";
            private string _workspace = "";
            private DateTimeOffset _started;
            private CancellationTokenSource? _afterCancel;

            private RunDefaults Defaults => _job.Defaults.Over(run._pipeline.Defaults);

            private RunContext Run => run;

            private JobInstance Instance => instance;

            public async Task<string> ExecuteAsync()
            {
                _started = run.Time.GetUtcNow();
                TimeSpan jobTimeout;
                try
                {
                    jobTimeout = _job.Timeout.Evaluate(context) ?? PipelineDefaults.JobTimeout;
                }
                catch (InvalidOperationException e)
                {
                    return run.SetJob(instance, RunStatus.Failed, _started, run.Time.GetUtcNow(), run._masker.MaskText($"timeout-minutes: {e.Message}"));
                }

                run.SetJob(instance, RunStatus.Running, _started, null, DisplayName());
                using var timeout = new CancellationTokenSource(jobTimeout, run.Time);
                using var jobCts = CancellationTokenSource.CreateLinkedTokenSource(jobToken, timeout.Token);
                var token = jobCts.Token;
                var outcome = PriorOutcome.Success;
                string? cacheHitKey = null;
                string? cacheKey = null;
                try
                {
                    _workspace = _job.IsolatedWorkspace
                        ? Directory.CreateDirectory(Path.Combine(run._runDirectory, "work", FileCopy.SafeName(instance.Key))).FullName
                        : run._pipeline.BaseDirectory;
                    context = context with { Workspace = _workspace, Cancellation = token };
                    var start = context.Env.ToImmutableDictionary()
                        .SetItem("BERTH_WORKSPACE", _workspace).SetItem("GITHUB_WORKSPACE", _workspace)
                        .SetItem("BERTH_JOB", instance.Key).SetItem("GITHUB_JOB", _job.Id);
                    _env = run.RenderEnv(_job.Env, Current(), start);
                    ReceiveArtifacts();
                    if (_job.Cache is { } cache)
                    {
                        cacheKey = cache.Key.Render(Current());
                        cacheHitKey = new CacheStore(run._engine.Options.StateDirectory).Restore(cache, cacheKey, cache.RestoreKeys.Select(k => k.Render(Current())).ToList(), _workspace, JobLine);
                    }

                    for (var index = 0; index < _job.Steps.Length; index++)
                    {
                        var step = _job.Steps[index];
                        var prior = token.IsCancellationRequested ? PriorOutcome.Cancelled : outcome;
                        var (status, continued) = await RunStepAsync(step, index, prior, token).ConfigureAwait(false);
                        if (status is RunStatus.Failed or RunStatus.TimedOut && !continued)
                        {
                            outcome = PriorOutcome.Failure;
                            _jobStatus = "failure";
                        }
                        else if (status == RunStatus.Cancelled)
                        {
                            outcome = PriorOutcome.Cancelled;
                            _jobStatus = "cancelled";
                        }
                    }

                    _afterCancel?.Dispose();
                    SaveOutputs();
                    if (outcome == PriorOutcome.Success)
                    {
                        SaveArtifacts();
                        if (_job.Cache is { } c && cacheKey is { Length: > 0 } && cacheHitKey != cacheKey)
                        {
                            new CacheStore(run._engine.Options.StateDirectory).Save(c, cacheKey, _workspace, JobLine);
                        }
                    }
                }
                catch (Exception e) when (e is StepFailedException or IOException or UnauthorizedAccessException or InvalidOperationException)
                {
                    var reason = e is StepFailedException or ExpressionEvaluationException ? e.Message : $"{e.GetType().Name}: {e.Message}";
                    JobLine(reason);
                    return run.SetJob(instance, RunStatus.Failed, _started, run.Time.GetUtcNow(), run._masker.MaskText(reason));
                }

                var final = outcome switch
                {
                    PriorOutcome.Success => RunStatus.Succeeded,
                    PriorOutcome.Cancelled when timeout.IsCancellationRequested && !jobToken.IsCancellationRequested => RunStatus.TimedOut,
                    PriorOutcome.Cancelled => RunStatus.Cancelled,
                    PriorOutcome.Failure or PriorOutcome.Skipped when timeout.IsCancellationRequested => RunStatus.TimedOut,
                    PriorOutcome.Failure or PriorOutcome.Skipped => RunStatus.Failed,
                };
                var message = final switch
                {
                    RunStatus.TimedOut => $"job timed out after {Core.Model.Durations.Format(jobTimeout)}",
                    RunStatus.Cancelled => cancelReason(),
                    _ => "",
                };
                return run.SetJob(instance, final, _started, run.Time.GetUtcNow(), run._masker.MaskText(message));
            }

            private string DisplayName()
            {
                try
                {
                    return _job.DisplayName?.Render(context) is { Length: > 0 } name ? run._masker.MaskText(name) : "";
                }
                catch (InvalidOperationException)
                {
                    return "";
                }
            }

            /// <summary>The job's values now: its env (with GITHUB_ENV additions), steps so far, and job.status.</summary>
            private ExpressionContext Current() => (context with { Env = _env })
                .WithContext("steps", Values.Object(_steps))
                .WithContext("job", Values.Object(new Dictionary<string, object?> { ["status"] = _jobStatus }));

            private void SaveOutputs()
            {
                if (_job.Outputs.IsEmpty)
                {
                    return;
                }

                var outputs = run.RenderEnv(_job.Outputs, Current(), ImmutableDictionary<string, string>.Empty);
                run._jobOutputs.AddOrUpdate(_job.Id, outputs, (_, existing) => existing.SetItems(outputs.Where(kv => kv.Value.Length > 0)));
            }

            private void JobLine(string text) => Line(-1, OutputStream.Stderr, run._masker.MaskText(text));

            private void Line(int stepIndex, OutputStream stream, string masked, string? kind = null)
            {
                run._store.AppendLog(run._runId, instance.Key, stepIndex, kind ?? (stream == OutputStream.Stdout ? "out" : "err"), masked, run.Time.GetUtcNow());
                run._engine.Observer?.Line(run._runId, instance.Key, stepIndex, stream, kind switch
                {
                    "group" => "▼ " + masked,
                    "endgroup" => "▲",
                    _ => masked,
                });
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
                    var files = FileHasher.Match(_workspace, [pattern]);
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

            private void SaveStep(StepDefinition step, string name, int index, string status, int? exitCode, int attempts, DateTimeOffset? started, DateTimeOffset? finished, string summary)
            {
                var record = new StepRecord(run._runId, instance.Key, index, run._masker.MaskText(name), step.Kind, status, exitCode, attempts, started, finished, run._masker.MaskText(summary));
                run._store.SaveStep(record);
                run._engine.Observer?.StepChanged(record);
            }

            private void RecordStep(StepDefinition step, string outcome, string conclusion, ImmutableDictionary<string, string> outputs)
            {
                if (step.Id is { } id)
                {
                    _steps[id] = Values.Object(new Dictionary<string, object?>
                    {
                        ["outputs"] = Values.Object(outputs.Select(kv => KeyValuePair.Create<string, object?>(kv.Key, kv.Value))),
                        ["outcome"] = outcome,
                        ["conclusion"] = conclusion,
                    });
                }
            }

            private async Task<(string Status, bool Continued)> RunStepAsync(StepDefinition step, int index, PriorOutcome prior, CancellationToken jobToken)
            {
                var stepContext = Current() with { Prior = prior, Cancellation = jobToken };
                var name = step.Name;
                bool go;
                try
                {
                    name = step.NameTemplate?.Render(stepContext) ?? step.Name;
                    go = step.If is null ? prior == PriorOutcome.Success : ExpressionEvaluator.EvaluateCondition(step.If, stepContext with { Cancellation = CancellationToken.None });
                }
                catch (Exception e) when (e is InvalidOperationException or IOException)
                {
                    SaveStep(step, name, index, RunStatus.Failed, null, 0, null, null, $"if: {e.Message}");
                    RecordStep(step, "failure", "failure", ImmutableDictionary<string, string>.Empty);
                    return (RunStatus.Failed, false);
                }

                if (!go)
                {
                    var skipped = prior == PriorOutcome.Cancelled ? RunStatus.Cancelled : RunStatus.Skipped;
                    SaveStep(step, name, index, skipped, null, 0, null, null, step.If is null ? "an earlier step did not succeed" : "if: was false");
                    RecordStep(step, "skipped", "skipped", ImmutableDictionary<string, string>.Empty);
                    return (skipped, false);
                }

                if (jobToken.IsCancellationRequested)
                {
                    // A step that runs because of always() or cancelled() after a cancel gets what is left of the grace
                    // period, shared by all such steps of the job: cancel always ends a run within the grace period.
                    _afterCancel ??= new CancellationTokenSource(run._engine.Options.KillGrace, run.Time);
                    jobToken = _afterCancel.Token;
                }

                var started = run.Time.GetUtcNow();
                var files = new StepFiles(Path.Combine(run._runDirectory, "steps", FileCopy.SafeName(instance.Key), index.ToString(CultureInfo.InvariantCulture)));
                bool continueOnError;
                TimeSpan? stepTimeout;
                StepRun stepRun;
                try
                {
                    continueOnError = step.ContinueOnError.Evaluate(stepContext);
                    stepTimeout = step.Timeout.Evaluate(stepContext);
                    var env = run.RenderEnv(step.Env, stepContext, _env).SetItems(files.Environment);
                    if (_addedPath.Count > 0)
                    {
                        var basePath = env.TryGetValue("PATH", out var p) ? p : Environment.GetEnvironmentVariable("PATH") ?? "";
                        env = env.SetItem("PATH", string.Join(':', Enumerable.Reverse(_addedPath).Append(basePath)));
                    }

                    stepContext = stepContext with { Env = env };
                    stepRun = new StepRun(this, step, name, index, stepContext, ResolveDirectory(step, stepContext), started, files);
                }
                catch (Exception e) when (e is InvalidOperationException or IOException)
                {
                    SaveStep(step, name, index, RunStatus.Failed, null, 0, started, run.Time.GetUtcNow(), e.Message);
                    Line(index, OutputStream.Stderr, run._masker.MaskText(e.Message));
                    RecordStep(step, "failure", "failure", ImmutableDictionary<string, string>.Empty);
                    return (RunStatus.Failed, false);
                }

                var attempts = 0;
                while (true)
                {
                    attempts++;
                    SaveStep(step, name, index, RunStatus.Running, null, attempts, started, null, "");
                    using var timeout = stepTimeout is { } t ? new CancellationTokenSource(t, run.Time) : new CancellationTokenSource();
                    using var stepCts = CancellationTokenSource.CreateLinkedTokenSource(jobToken, timeout.Token);
                    StepResult result;
                    try
                    {
                        result = await StepHandlers.ExecuteAsync(step, stepRun, stepCts.Token).ConfigureAwait(false);
                    }
                    catch (StepFailedException e)
                    {
                        result = new StepResult(RunStatus.Failed, null, e.Message);
                        Line(index, OutputStream.Stderr, run._masker.MaskText(e.Message));
                    }
                    catch (OperationCanceledException) when (stepCts.IsCancellationRequested)
                    {
                        result = new StepResult(RunStatus.Cancelled, null, "");
                    }
                    catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.ComponentModel.Win32Exception or HttpRequestException or InvalidOperationException or Docker.DotNet.DockerApiException)
                    {
                        // Not a user error we foresaw; still one line, never a stack trace in the run.
                        var text = e is ExpressionEvaluationException ? e.Message : $"{e.GetType().Name}: {e.Message}";
                        result = new StepResult(RunStatus.Failed, null, text);
                        Line(index, OutputStream.Stderr, run._masker.MaskText(text));
                    }

                    var (status, exitCode, summary) = result;
                    if (status == RunStatus.Cancelled && timeout.IsCancellationRequested && !jobToken.IsCancellationRequested)
                    {
                        status = RunStatus.TimedOut;
                        summary = $"timed out after {Core.Model.Durations.Format(stepTimeout!.Value)}";
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

                    var outputs = ImmutableDictionary<string, string>.Empty;
                    try
                    {
                        outputs = ReadFiles(files, index);
                    }
                    catch (StepFailedException e)
                    {
                        Line(index, OutputStream.Stderr, run._masker.MaskText(e.Message));
                        if (status == RunStatus.Succeeded)
                        {
                            status = RunStatus.Failed;
                            summary = e.Message;
                        }
                    }

                    if (status is RunStatus.Failed or RunStatus.TimedOut)
                    {
                        Log.StepFailed(run._engine._logger, run._runId, instance.Key, name, run._masker.MaskText(summary.Length > 0 ? summary : $"exit code {exitCode}"));
                        if (continueOnError)
                        {
                            summary = (summary.Length > 0 ? summary + "; " : "") + "continue-on-error";
                        }
                    }

                    SaveStep(step, name, index, status, exitCode, attempts, started, run.Time.GetUtcNow(), summary);
                    var outcome = Result(status);
                    RecordStep(step, outcome, outcome == "failure" && continueOnError ? "success" : outcome, outputs);
                    return (status, continueOnError);
                }
            }

            /// <summary>After a step: its outputs, and the env, PATH and summary it leaves to the steps after it.</summary>
            private ImmutableDictionary<string, string> ReadFiles(StepFiles files, int index)
            {
                var outputs = ImmutableDictionary.CreateRange(EnvironmentFile.Parse(files.Read(files.Output), "GITHUB_OUTPUT"));
                foreach (var (name, value) in EnvironmentFile.Parse(files.Read(files.Env), "GITHUB_ENV"))
                {
                    _env = _env.SetItem(name, value);
                }

                foreach (var line in files.Read(files.Path).Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
                {
                    _addedPath.Add(line);
                }

                var summary = files.Read(files.Summary);
                if (summary.Trim().Length > 0)
                {
                    run._store.AddAnnotation(new Annotation(run._runId, instance.Key, index, "summary", null, null, null, null, run._masker.MaskText(summary.TrimEnd())));
                }

                return outputs;
            }

            private string ResolveDirectory(StepDefinition step, ExpressionContext stepContext)
            {
                var directory = _workspace;
                if (_job.WorkingDirectory is { } jobDirectory)
                {
                    directory = Path.GetFullPath(Template.Parse(jobDirectory).Render(stepContext), directory);
                }

                // As GitHub: defaults.run.working-directory is for run steps that name no folder of their own.
                var stepDirectory = step.WorkingDirectory ?? (step is RunStep or TestStep ? Defaults.WorkingDirectory : null);
                if (stepDirectory is not null)
                {
                    directory = Path.GetFullPath(Template.Parse(stepDirectory).Render(stepContext), directory);
                }

                return directory;
            }

            /// <summary>One attempt's view for its handler; runs commands and reads workflow commands from their output.</summary>
            private sealed class StepRun(JobRun job, StepDefinition step, string name, int index, ExpressionContext context, string directory, DateTimeOffset started, StepFiles files) : IStepRun
            {
                private string? _stopToken;

                public string Directory => directory;

                public ExpressionContext Context => context;

                public DateTimeOffset Started => started;

                public PipelineEngineOptions Options => job.Run._engine.Options;

                public TimeProvider Time => job.Run.Time;

                public void Line(OutputStream stream, string text) => job.Line(index, stream, job.Run._masker.MaskText(text));

                public ImmutableDictionary<string, string> RenderValues(ImmutableArray<EnvEntry> entries) =>
                    job.Run.RenderEnv(entries, context, ImmutableDictionary<string, string>.Empty).Aggregate(
                        ImmutableDictionary<string, string>.Empty, (all, kv) => all.SetItem(kv.Key, kv.Value));

                public void Waiting(string message)
                {
                    job.SaveStep(step, name, index, RunStatus.Waiting, null, 1, started, null, message);
                    Line(OutputStream.Stdout, $"waiting for approval: {message} — run 'berth pipeline approve {job.Run._runId}'");
                }

                public bool IsApproved() => job.Run._store.IsApproved(job.Run._runId, job.Instance.Key);

                public Task<ProcessOutcome> RunCommandAsync(CommandDefinition command, CancellationToken cancellationToken)
                {
                    IReadOnlyList<string> argv;
                    if (command.IsArgv)
                    {
                        argv = command.Argv.Select(a => a.Render(context)).ToList();
                    }
                    else
                    {
                        // As GitHub: the rendered script goes to a file, which the shell runs.
                        var shell = command.Shell ?? job.Defaults.Shell;
                        var script = files.WriteScript(command.Script!.Render(context), ShellCommand.Extension(shell));
                        argv = ShellCommand.Argv(shell, script, HasBash.Value);
                    }

                    var spec = new ProcessSpec(argv, directory, context.Env);
                    return job.Run._engine._processes.RunAsync(spec, job.Run._masker, OnLine, job.Run._engine.Options.KillGrace, cancellationToken);
                }

                /// <summary>Workflow commands on stdout, as GitHub's runner reads them; other lines are output.</summary>
                private void OnLine(OutputStream stream, string text)
                {
                    if (stream == OutputStream.Stdout && WorkflowCommand.Parse(text) is { } command)
                    {
                        if (_stopToken is not null)
                        {
                            if (command.Name == _stopToken.ToLowerInvariant() && command.Properties.IsEmpty)
                            {
                                _stopToken = null;
                                return;
                            }
                        }
                        else if (Handle(command))
                        {
                            return;
                        }
                    }

                    // Masked again: a value added by ::add-mask:: may sit in output the stream masked before the command was read.
                    job.Line(index, stream, job.Run._masker.MaskText(text));
                }

                private bool Handle(WorkflowCommand command)
                {
                    var run = job.Run;
                    switch (command.Name)
                    {
                        case "add-mask":
                            if (command.Message.Length > 0)
                            {
                                run._masker.Add(command.Message);
                            }

                            return true;
                        case "group":
                            job.Line(index, OutputStream.Stdout, run._masker.MaskText(command.Message), "group");
                            return true;
                        case "endgroup":
                            job.Line(index, OutputStream.Stdout, "", "endgroup");
                            return true;
                        case "error" or "warning" or "notice":
                            var message = run._masker.MaskText(command.Message);
                            var file = command.Properties.GetValueOrDefault("file");
                            var line = command.IntProperty("line");
                            var column = command.IntProperty("col");
                            var title = command.Properties.GetValueOrDefault("title");
                            run._store.AddAnnotation(new Annotation(run._runId, job.Instance.Key, index, command.Name, file, line, column, title is null ? null : run._masker.MaskText(title), message));
                            var where = file is null ? "" : $" ({file}{(line is { } l ? $":{l}" : "")}{(column is { } c ? $":{c}" : "")})";
                            job.Line(index, command.Name == "error" ? OutputStream.Stderr : OutputStream.Stdout, $"{command.Name}: {(title is null ? "" : title + ": ")}{message}{where}");
                            return true;
                        case "debug":
                            return true;
                        case "stop-commands":
                            _stopToken = command.Message.Length > 0 ? command.Message : null;
                            return _stopToken is not null;
                        default:
                            return false;
                    }
                }
            }
        }

        /// <summary>The files a step writes for the runner, in a folder of its own under the run.</summary>
        private sealed class StepFiles
        {
            public StepFiles(string directory)
            {
                System.IO.Directory.CreateDirectory(directory);
                Directory = directory;
                foreach (var file in new[] { Output, Env, Path, Summary })
                {
                    File.WriteAllText(file, "");
                }
            }

            public string Directory { get; }

            public string Output => System.IO.Path.Combine(Directory, "output");

            public string Env => System.IO.Path.Combine(Directory, "env");

            public string Path => System.IO.Path.Combine(Directory, "path");

            public string Summary => System.IO.Path.Combine(Directory, "summary.md");

            public IEnumerable<KeyValuePair<string, string>> Environment =>
            [
                KeyValuePair.Create("GITHUB_OUTPUT", Output),
                KeyValuePair.Create("GITHUB_ENV", Env),
                KeyValuePair.Create("GITHUB_PATH", Path),
                KeyValuePair.Create("GITHUB_STEP_SUMMARY", Summary),
            ];

            public string Read(string file) => File.Exists(file) ? File.ReadAllText(file) : "";

            public string WriteScript(string script, string extension)
            {
                var file = System.IO.Path.Combine(Directory, "script" + extension);
                File.WriteAllText(file, script);
                return file;
            }
        }
    }
}
