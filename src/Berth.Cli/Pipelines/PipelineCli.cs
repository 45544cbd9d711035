using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;
using Berth.Core.Loading;
using Berth.Pipelines.Definition;
using Berth.Pipelines.Execution;
using Berth.Pipelines.Storage;
using Berth.Pipelines.Triggers;

namespace Berth.Cli.Pipelines;

/// <summary>The pipeline commands: machine output (-o json) on stdout, human progress on stderr.</summary>
internal sealed class PipelineCli(string? file, string? state, string output)
{
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase };

    private bool AsJson => output == "json";

    public async Task<int> RunAsync(string name, bool watch, string? branch, string? secretsFile, IReadOnlyList<string> inputArgs, string? varsFile, CancellationToken cancellationToken)
    {
        if (Load(name, out var pipeline) is { } error)
        {
            return error;
        }

        var secrets = SecretSource.Resolve(pipeline!.Secrets, secretsFile ?? Environment.GetEnvironmentVariable("BERTH_SECRETS_FILE"),
            pipeline.BaseDirectory, Environment.GetEnvironmentVariable, out var secretErrors);
        if (secretErrors.Count > 0)
        {
            foreach (var e in secretErrors)
            {
                Console.Error.WriteLine($"berth: {e}");
            }

            return ExitCodes.InvalidSpec;
        }

        if (ReadInputs(pipeline, inputArgs, varsFile ?? Environment.GetEnvironmentVariable("BERTH_VARS_FILE"), out var inputs, out var vars) is { } inputError)
        {
            return inputError;
        }

        var request = new RunRequest { Branch = branch ?? SecretSource.CurrentBranch(pipeline.BaseDirectory), Secrets = secrets, Inputs = inputs, Vars = vars };
        var result = await ExecuteAsync(pipeline, request, cancellationToken).ConfigureAwait(false);
        if (!watch || cancellationToken.IsCancellationRequested)
        {
            return ExitCode(result.Status);
        }

        if (pipeline.On.WatchPaths.IsEmpty && pipeline.On.Schedules.IsEmpty)
        {
            Console.Error.WriteLine($"berth: pipeline {name} has no on.watch paths or on.schedule; nothing to watch");
            return ExitCode(result.Status);
        }

        Console.Error.WriteLine($"watching {string.Join(", ", pipeline.On.WatchPaths.Concat(pipeline.On.Schedules.Select(s => $"cron '{s}'")))} — Ctrl-C to stop");
        var triggers = new TriggerRunner(pipeline, async (trigger, ct) =>
        {
            // Re-read the definition so an edited pipeline is what runs.
            if (Load(name, out var fresh) is null)
            {
                result = await ExecuteAsync(fresh!, request with { Trigger = trigger }, ct).ConfigureAwait(false);
            }
        }, TimeProvider.System);
        await triggers.RunAsync(cancellationToken).ConfigureAwait(false);
        return ExitCodes.Cancelled;
    }

    /// <summary>The inputs context from --input NAME=VALUE and the vars context from the vars file; every problem is printed.</summary>
    private static int? ReadInputs(PipelineDefinition pipeline, IReadOnlyList<string> inputArgs, string? varsFile,
        out IReadOnlyDictionary<string, object?> inputs, out IReadOnlyDictionary<string, string> vars)
    {
        var errors = new List<string>();
        var given = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var arg in inputArgs)
        {
            var eq = arg.IndexOf('=');
            if (eq <= 0)
            {
                errors.Add($"--input {arg}: expected NAME=VALUE");
            }
            else
            {
                given[arg[..eq]] = arg[(eq + 1)..];
            }
        }

        inputs = PipelineInputs.Resolve(pipeline, given, out var inputErrors);
        errors.AddRange(inputErrors);
        vars = new Dictionary<string, string>();
        if (varsFile is not null)
        {
            var full = Path.GetFullPath(varsFile);
            if (File.Exists(full))
            {
                vars = SecretSource.ReadValuesFile(full, errors);
            }
            else
            {
                errors.Add($"vars file {full} does not exist");
            }
        }

        foreach (var e in errors)
        {
            Console.Error.WriteLine($"berth: {e}");
        }

        return errors.Count > 0 ? ExitCodes.InvalidSpec : null;
    }

    public async Task<int> RerunAsync(long runId, bool failed, string? secretsFile, CancellationToken cancellationToken)
    {
        if (!failed)
        {
            Console.Error.WriteLine("berth: rerun needs --failed (only failed jobs and their dependents run again); to run everything use 'berth pipeline run NAME'");
            return ExitCodes.Usage;
        }

        using (var store = OpenStore())
        {
            if (store?.GetRun(runId) is not { } previous)
            {
                return NoRun(runId);
            }

            if (!store.GetJobs(runId).Any(j => !RunStatus.IsSuccess(j.Status)))
            {
                Console.Error.WriteLine($"run {runId} has no failed jobs; nothing to rerun");
                return ExitCodes.Ok;
            }

            file ??= previous.File;
            if (Load(previous.Pipeline, out var pipeline) is { } error)
            {
                return error;
            }

            var secrets = SecretSource.Resolve(pipeline!.Secrets, secretsFile ?? Environment.GetEnvironmentVariable("BERTH_SECRETS_FILE"),
                pipeline.BaseDirectory, Environment.GetEnvironmentVariable, out var secretErrors);
            if (secretErrors.Count > 0)
            {
                secretErrors.ForEach(e => Console.Error.WriteLine($"berth: {e}"));
                return ExitCodes.InvalidSpec;
            }

            var result = await ExecuteAsync(pipeline, new RunRequest { Branch = previous.Branch, Secrets = secrets, RerunFailedOf = runId }, cancellationToken).ConfigureAwait(false);
            return ExitCode(result.Status);
        }
    }

    public int List(int limit)
    {
        using var store = OpenStore();
        var runs = store?.ListRuns(limit) ?? [];
        if (AsJson)
        {
            Console.WriteLine(JsonSerializer.Serialize(runs.Select(RunJson), Json));
            return ExitCodes.Ok;
        }

        Console.WriteLine($"{"RUN",-6} {"PIPELINE",-16} {"STATUS",-12} {"TRIGGER",-9} {"BRANCH",-14} {"STARTED",-20} DURATION");
        foreach (var run in runs)
        {
            Console.WriteLine($"{run.Id,-6} {run.Pipeline,-16} {Status(run),-12} {run.Trigger,-9} {run.Branch,-14} {run.Created.ToLocalTime():yyyy-MM-dd HH:mm:ss}  {Duration(run.Duration)}");
        }

        return ExitCodes.Ok;
    }

    public int Show(long runId)
    {
        using var store = OpenStore();
        if (store?.GetRun(runId) is not { } run)
        {
            return NoRun(runId);
        }

        var jobs = store.GetJobs(runId);
        var steps = store.GetSteps(runId);
        if (AsJson)
        {
            var json = RunJson(run);
            json["jobs"] = jobs.Select(j => new Dictionary<string, object?>
            {
                ["key"] = j.Key,
                ["job"] = j.JobId,
                ["matrix"] = JsonDocument.Parse(j.Matrix).RootElement,
                ["status"] = j.Status,
                ["started"] = j.Started,
                ["finished"] = j.Finished,
                ["durationMs"] = j.Duration?.TotalMilliseconds,
                ["message"] = j.Message,
                ["steps"] = steps.Where(s => s.JobKey == j.Key).Select(s => new Dictionary<string, object?>
                {
                    ["index"] = s.Index,
                    ["name"] = s.Name,
                    ["kind"] = s.Kind,
                    ["status"] = s.Status,
                    ["exitCode"] = s.ExitCode,
                    ["attempts"] = s.Attempts,
                    ["durationMs"] = s.Duration?.TotalMilliseconds,
                    ["summary"] = s.Summary,
                }).ToList(),
            }).ToList();
            Console.WriteLine(JsonSerializer.Serialize(json, Json));
            return ExitCodes.Ok;
        }

        Console.WriteLine($"run {run.Id}  {run.Pipeline}  {Status(run)}  ({run.Trigger}{(run.RerunOf is { } of ? $" of run {of}" : "")}, branch {(run.Branch.Length > 0 ? run.Branch : "-")}, {Duration(run.Duration)})");
        foreach (var j in jobs)
        {
            Console.WriteLine($"  {j.Key,-30} {j.Status,-10} {Duration(j.Duration),8}  {j.Message}");
            foreach (var s in steps.Where(s => s.JobKey == j.Key))
            {
                var exit = s.ExitCode is { } code ? $"exit {code}" : "";
                var tries = s.Attempts > 1 ? $" ({s.Attempts} attempts)" : "";
                Console.WriteLine($"    {s.Index + 1,2}. {Pad(Truncate(s.Name, 40), 40)} {s.Status,-10} {Duration(s.Duration),8} {exit,-8}{tries} {s.Summary}");
            }
        }

        var annotations = store.GetAnnotations(runId);
        if (annotations.Any(a => a.Level != "summary"))
        {
            Console.WriteLine("annotations:");
            foreach (var a in annotations.Where(a => a.Level != "summary"))
            {
                var where = a.File is null ? "" : $"{a.File}{(a.Line is { } l ? $":{l}" : "")}{(a.Column is { } c ? $":{c}" : "")}: ";
                Console.WriteLine($"  {a.Level,-7} [{a.JobKey}] {where}{(a.Title is null ? "" : a.Title + ": ")}{a.Message}");
            }
        }

        foreach (var summary in annotations.Where(a => a.Level == "summary"))
        {
            Console.WriteLine($"summary of {summary.JobKey} step {summary.StepIndex + 1}:");
            foreach (var line in summary.Message.Split('\n'))
            {
                Console.WriteLine("  " + line);
            }
        }

        return ExitCodes.Ok;
    }

    public async Task<int> LogsAsync(long runId, string? job, bool follow, CancellationToken cancellationToken)
    {
        using var store = OpenStore();
        if (store?.GetRun(runId) is null)
        {
            return NoRun(runId);
        }

        long after = 0;
        var groups = new Dictionary<string, int>();
        while (true)
        {
            foreach (var line in store.GetLogs(runId, job, after))
            {
                // ::group:: folds: a heading, the group's lines indented, a closing mark.
                var depth = groups.GetValueOrDefault(line.JobKey);
                switch (line.Stream)
                {
                    case "group":
                        Console.WriteLine($"[{line.JobKey}] {new string(' ', depth * 2)}▼ {line.Text}");
                        groups[line.JobKey] = depth + 1;
                        break;
                    case "endgroup":
                        groups[line.JobKey] = Math.Max(0, depth - 1);
                        break;
                    default:
                        Console.WriteLine($"[{line.JobKey}] {new string(' ', depth * 2)}{line.Text}");
                        break;
                }

                after = line.Seq;
            }

            if (!follow || RunStatus.IsFinal(store.GetRun(runId)!.Status) || cancellationToken.IsCancellationRequested)
            {
                return ExitCodes.Ok;
            }

            try
            {
                await Task.Delay(TimeSpan.FromMilliseconds(250), cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return ExitCodes.Ok;
            }
        }
    }

    public int Cancel(long runId)
    {
        using var store = OpenStore();
        if (store?.GetRun(runId) is not { } run)
        {
            return NoRun(runId);
        }

        if (RunStatus.IsFinal(run.Status))
        {
            Console.Error.WriteLine($"run {runId} already ended: {run.Status}");
            return ExitCodes.Ok;
        }

        store.RequestCancel(runId);
        Console.Error.WriteLine($"cancel requested for run {runId}; its steps get SIGTERM, then SIGKILL after the grace period");
        return ExitCodes.Ok;
    }

    public int Approve(long runId, string? job)
    {
        using var store = OpenStore();
        if (store?.GetRun(runId) is not { } run)
        {
            return NoRun(runId);
        }

        if (job is not null && !store.GetJobs(runId).Any(j => j.Key == job || j.JobId == job))
        {
            Console.Error.WriteLine($"berth: run {runId} has no job '{job}'; jobs: {string.Join(", ", store.GetJobs(runId).Select(j => j.Key))}");
            return ExitCodes.NotFound;
        }

        foreach (var key in job is null ? ["*"] : store.GetJobs(runId).Where(j => j.Key == job || j.JobId == job).Select(j => j.Key))
        {
            store.Approve(runId, key, DateTimeOffset.UtcNow);
        }

        Console.Error.WriteLine($"approved run {runId}{(job is null ? "" : $" job {job}")}{(RunStatus.IsFinal(run.Status) ? $" (the run already ended: {run.Status})" : "")}");
        return ExitCodes.Ok;
    }

    private async Task<RunResult> ExecuteAsync(PipelineDefinition pipeline, RunRequest request, CancellationToken cancellationToken)
    {
        // Ctrl-C and SIGTERM cancel the run: its steps' process groups get SIGTERM, the grace period, then SIGKILL.
        // Handled here rather than left to the default, which would end this process and orphan the steps (they
        // run in sessions of their own, so the terminal's SIGINT does not reach them); should the host still exit
        // first, no step outlives it.
        using var interrupted = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, Interrupt);
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Interrupt);
        void Interrupt(PosixSignalContext context)
        {
            context.Cancel = true;
            Console.Error.WriteLine("berth: cancelling the run (steps get SIGTERM, then SIGKILL after the grace period)");
            interrupted.Cancel();
        }

        cancellationToken = interrupted.Token;
        AppDomain.CurrentDomain.ProcessExit -= KillSteps;
        AppDomain.CurrentDomain.ProcessExit += KillSteps;
        // build-image steps reach the engine a normal user can use too (rootless Docker's socket), as 'berth up' does.
        var images = new Berth.Pipelines.Steps.DockerImageBuilder(Berth.Runtime.Docker.DockerDriver.FindEngine(new Berth.Runtime.Docker.DockerDriverOptions()));
        var engine = new PipelineEngine(new PipelineEngineOptions { StateDirectory = StateDirectory(), ImageBuilder = images }, TimeProvider.System, observer: new ConsoleObserver());
        var result = await engine.RunAsync(pipeline, request with { Started = id => Console.Error.WriteLine($"run {id} of {pipeline.Name} started") }, cancellationToken).ConfigureAwait(false);
        if (AsJson)
        {
            Console.WriteLine(JsonSerializer.Serialize(new { runId = result.RunId, status = result.Status }, Json));
        }
        else
        {
            Console.Error.WriteLine($"run {result.RunId} {result.Status} — details: berth pipeline show {result.RunId}");
        }

        return result;
    }

    private static void KillSteps(object? sender, EventArgs e) => ProcessRunner.KillAll();

    /// <summary>Parses the pipelines file; prints every diagnostic and returns an exit code when it cannot run.</summary>
    private int? Load(string name, out PipelineDefinition? pipeline)
    {
        pipeline = null;
        var path = SpecFile();
        if (path is null)
        {
            Console.Error.WriteLine($"berth: no spec file here ({string.Join(", ", SpecLoader.DefaultFileNames)}); pass -f FILE");
            return ExitCodes.NotFound;
        }

        if (!File.Exists(path))
        {
            Console.Error.WriteLine($"berth: {path} not found");
            return ExitCodes.NotFound;
        }

        var parsed = PipelineParser.ParseFile(path);
        foreach (var diagnostic in parsed.Diagnostics)
        {
            Console.Error.WriteLine(diagnostic);
        }

        if (!parsed.Succeeded)
        {
            Console.Error.WriteLine($"berth: {parsed.Diagnostics.Count(d => d.Severity == DiagnosticSeverity.Error)} error(s) in {path}; nothing was run");
            return ExitCodes.InvalidSpec;
        }

        pipeline = parsed.Find(name);
        if (pipeline is null)
        {
            Console.Error.WriteLine($"berth: no pipeline '{name}' in {path}; pipelines: {(parsed.Pipelines.IsEmpty ? "(none)" : string.Join(", ", parsed.Pipelines.Select(p => p.Name)))}");
            return ExitCodes.NotFound;
        }

        return null;
    }

    private string? SpecFile() => file is not null ? Path.GetFullPath(file) : SpecLoader.FindDefaultFile(Environment.CurrentDirectory);

    private string StateDirectory()
    {
        if (state is not null)
        {
            return Path.GetFullPath(state);
        }

        var spec = SpecFile();
        return Path.Combine(spec is not null ? Path.GetDirectoryName(spec)! : Environment.CurrentDirectory, ".berth");
    }

    private RunStore? OpenStore()
    {
        var database = Path.Combine(StateDirectory(), "pipelines.db");
        return File.Exists(database) ? new RunStore(database) : null;
    }

    private int NoRun(long runId)
    {
        Console.Error.WriteLine($"berth: no run {runId} in {StateDirectory()}; see 'berth pipeline list'");
        return ExitCodes.NotFound;
    }

    private static int ExitCode(string status) => status switch
    {
        RunStatus.Succeeded => ExitCodes.Ok,
        RunStatus.Cancelled => ExitCodes.Cancelled,
        _ => ExitCodes.Failed,
    };

    /// <summary>A run still "running" whose process is gone was interrupted (the CLI was killed).</summary>
    private static string Status(RunRecord run) =>
        run.Status == RunStatus.Running && run.OwnerPid != Environment.ProcessId && !Directory.Exists($"/proc/{run.OwnerPid}") ? "interrupted" : run.Status;

    private static Dictionary<string, object?> RunJson(RunRecord run) => new()
    {
        ["id"] = run.Id,
        ["pipeline"] = run.Pipeline,
        ["status"] = Status(run),
        ["trigger"] = run.Trigger,
        ["branch"] = run.Branch,
        ["rerunOf"] = run.RerunOf,
        ["created"] = run.Created,
        ["finished"] = run.Finished,
        ["durationMs"] = run.Duration?.TotalMilliseconds,
    };

    private static string Duration(TimeSpan? duration) => duration switch
    {
        null => "-",
        { TotalSeconds: < 1 } d => $"{d.TotalMilliseconds:0}ms",
        { TotalMinutes: < 1 } d => $"{d.TotalSeconds:0.0}s",
        { } d => $"{(int)d.TotalMinutes}m{d.Seconds:00}s",
    };

    /// <summary>Cuts at whole characters (an emoji or an accented letter is never split into '�').</summary>
    private static string Truncate(string text, int length)
    {
        var info = new StringInfo(text);
        return info.LengthInTextElements <= length ? text : info.SubstringByTextElements(0, length - 1) + "…";
    }

    private static string Pad(string text, int width) => text + new string(' ', Math.Max(0, width - new StringInfo(text).LengthInTextElements));

    /// <summary>Progress on stderr: job and step transitions and every (masked) output line.</summary>
    private sealed class ConsoleObserver : IRunObserver
    {
        private readonly Lock _lock = new();

        public void JobChanged(long runId, string jobKey, string status, string message) =>
            Write($"[{jobKey}] {status}{(message.Length > 0 ? ": " + message : "")}");

        public void StepChanged(StepRecord step)
        {
            if (step.Status == RunStatus.Running && step.Attempts <= 1)
            {
                Write($"[{step.JobKey}] ▶ {step.Name}");
            }
            else if (RunStatus.IsFinal(step.Status))
            {
                var code = step.ExitCode is { } c && c != 0 ? $" exit {c.ToString(CultureInfo.InvariantCulture)}" : "";
                Write($"[{step.JobKey}] {(RunStatus.IsSuccess(step.Status) ? "✓" : step.Status == RunStatus.Skipped ? "-" : "✗")} {step.Name} {step.Status}{code} {Duration(step.Duration)}{(step.Summary.Length > 0 ? " — " + step.Summary : "")}");
            }
        }

        public void Line(long runId, string jobKey, int stepIndex, OutputStream stream, string text) => Write($"[{jobKey}] {text}");

        private void Write(string text)
        {
            lock (_lock)
            {
                Console.Error.WriteLine(text);
            }
        }
    }
}
