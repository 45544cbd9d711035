using System.Collections.Immutable;
using Berth.Pipelines.Expressions;

namespace Berth.Pipelines.Definition;

/// <summary>Where a node is in its file (1-based line and column).</summary>
public sealed record SourcePosition(string File, int Line, int Column)
{
    public override string ToString() => $"{File}:{Line}:{Column}";
}

/// <summary>A pipeline: jobs in a DAG by <c>needs</c>, with triggers, env and secrets.</summary>
public sealed record PipelineDefinition(string Name, SourcePosition Position)
{
    /// <summary>Folder the steps run in by default and relative paths resolve against (the spec's folder).</summary>
    public required string BaseDirectory { get; init; }

    public PipelineTriggers On { get; init; } = new();

    public ImmutableArray<EnvEntry> Env { get; init; } = [];

    /// <summary>Secret names; values come from the environment or the secrets file, and are masked everywhere.</summary>
    public ImmutableArray<string> Secrets { get; init; } = [];

    /// <summary>Jobs running at once; default <see cref="PipelineDefaults.MaxParallel"/>.</summary>
    public int MaxParallel { get; init; } = PipelineDefaults.MaxParallel;

    public TimeSpan? Timeout { get; init; }

    public ImmutableArray<JobDefinition> Jobs { get; init; } = [];

    public ImmutableArray<InputDefinition> Inputs { get; init; } = [];

    public RunDefaults Defaults { get; init; } = RunDefaults.None;

    public ConcurrencyDefinition? Concurrency { get; init; }

    public JobDefinition? FindJob(string id) => Jobs.FirstOrDefault(j => j.Id == id);
}

/// <summary>Defaults, each named after the peer it follows.</summary>
public static class PipelineDefaults
{
    /// <summary>Jobs at once: the machine's cores, as act runs jobs with one container each up to the CPU count.</summary>
    public static int MaxParallel => Math.Max(2, Environment.ProcessorCount);

    /// <summary>A job's timeout when none is given: 360 minutes, as GitHub Actions' timeout-minutes.</summary>
    public static readonly TimeSpan JobTimeout = TimeSpan.FromMinutes(360);

    /// <summary>From SIGTERM to SIGKILL when a step is cancelled or times out: 10s, as docker stop.</summary>
    public static readonly TimeSpan KillGrace = TimeSpan.FromSeconds(10);

    /// <summary>A deploy step waits this long for the rollout: 10 minutes, as kubectl rollout status' progressDeadlineSeconds (600s).</summary>
    public static readonly TimeSpan DeployTimeout = TimeSpan.FromMinutes(10);
}

/// <summary>A name and a value template, in declaration order.</summary>
public sealed record EnvEntry(string Name, Template Value);

/// <summary>When a pipeline runs besides by hand.</summary>
public sealed record PipelineTriggers
{
    /// <summary>Globs (relative to the base folder) whose changes start a run; empty: no file trigger.</summary>
    public ImmutableArray<string> WatchPaths { get; init; } = [];

    /// <summary>Cron expressions (5 fields, UTC) that start a run while the scheduler runs.</summary>
    public ImmutableArray<string> Schedules { get; init; } = [];
}

/// <summary>One job: steps run in order in one workspace.</summary>
public sealed record JobDefinition(string Id, SourcePosition Position)
{
    /// <summary><c>name:</c>, which may hold expressions (matrix values, inputs).</summary>
    public Template? DisplayName { get; init; }

    public ImmutableArray<(string Job, SourcePosition Position)> Needs { get; init; } = [];

    public Expr? If { get; init; }

    public ImmutableArray<EnvEntry> Env { get; init; } = [];

    public string? WorkingDirectory { get; init; }

    public TimeoutValue Timeout { get; init; } = TimeoutValue.None;

    public Flag ContinueOnError { get; init; } = Flag.False;

    public MatrixDefinition? Matrix { get; init; }

    public RunDefaults Defaults { get; init; } = RunDefaults.None;

    public ConcurrencyDefinition? Concurrency { get; init; }

    /// <summary><c>outputs:</c> values for the jobs that need this one (<c>needs.&lt;id&gt;.outputs</c>), rendered when it ends.</summary>
    public ImmutableArray<EnvEntry> Outputs { get; init; } = [];

    /// <summary>Every job this one needs, directly or through others: a failure anywhere among them skips it, as GitHub.</summary>
    public ImmutableArray<string> Ancestors { get; init; } = [];

    /// <summary>Paths (globs, relative to the workspace) this job produces for the jobs that need it.</summary>
    public ImmutableArray<string> Artifacts { get; init; } = [];

    public CacheDefinition? Cache { get; init; }

    /// <summary>Run in a fresh folder of its own instead of the base folder.</summary>
    public bool IsolatedWorkspace { get; init; }

    public ImmutableArray<StepDefinition> Steps { get; init; } = [];
}

/// <summary>A matrix: the cross product of the axes, minus excludes, plus includes (or all of it from an expression). A strategy without a matrix has no axes.</summary>
public sealed record MatrixDefinition
{
    public ImmutableArray<(string Key, ImmutableArray<string> Values)> Axes { get; init; } = [];

    public ImmutableArray<ImmutableDictionary<string, string>> Include { get; init; } = [];

    public ImmutableArray<ImmutableDictionary<string, string>> Exclude { get; init; } = [];

    /// <summary>Cancel the other combinations when one fails; true, as GitHub Actions.</summary>
    public Flag FailFast { get; init; } = new(true);

    public int? MaxParallel { get; init; }

    /// <summary><c>matrix: ${{ fromJSON(...) }}</c>: the whole matrix from an expression, expanded when the job starts.</summary>
    public Expr? Dynamic { get; init; }

    /// <summary>The keys matrix.X may use; null when known only at run time.</summary>
    public ImmutableHashSet<string>? Keys => Dynamic is not null ? null :
        Axes.Select(a => a.Key).Concat(Include.SelectMany(i => i.Keys)).ToImmutableHashSet(StringComparer.OrdinalIgnoreCase);
}

/// <summary>A job cache: restored before the steps, saved after success when the key missed.</summary>
public sealed record CacheDefinition(Template Key, ImmutableArray<Template> RestoreKeys, ImmutableArray<string> Paths);

/// <summary>A command: argv templates (no shell), or a script for a shell (bash by default, as GitHub's Linux runners).</summary>
public sealed record CommandDefinition(ImmutableArray<Template> Argv, string? Shell, Template? Script)
{
    /// <summary>True for a list <c>run: [argv...]</c>, Berth's shell-free form.</summary>
    public bool IsArgv => Script is null;
}

/// <summary>How often a failing step is tried.</summary>
public sealed record RetryPolicy(int Attempts, ImmutableArray<int> OnExitCodes, TimeSpan Delay)
{
    public static readonly RetryPolicy None = new(1, [], TimeSpan.Zero);

    public bool ShouldRetry(int exitCode) => OnExitCodes.IsEmpty || OnExitCodes.Contains(exitCode);
}

/// <summary>A true/false setting that may be an expression (<c>continue-on-error: ${{ matrix.experimental }}</c>).</summary>
public sealed record Flag(bool Constant, Expr? Expression = null)
{
    public static readonly Flag False = new(false);

    public bool Evaluate(ExpressionContext context) =>
        Expression is null ? Constant : Values.IsTruthy(ExpressionEvaluator.Evaluate(Expression, context));
}

/// <summary>A timeout: a duration, or <c>timeout-minutes</c> given by an expression.</summary>
public sealed record TimeoutValue(TimeSpan? Constant, Expr? Minutes = null)
{
    public static readonly TimeoutValue None = new((TimeSpan?)null);

    /// <summary>The timeout, or null for none; an expression must give a positive number of minutes.</summary>
    public TimeSpan? Evaluate(ExpressionContext context)
    {
        if (Minutes is null)
        {
            return Constant;
        }

        var value = ExpressionEvaluator.Evaluate(Minutes, context);
        var minutes = Values.ToNumber(value);
        if (double.IsNaN(minutes) || minutes <= 0 || double.IsInfinity(minutes))
        {
            throw new ExpressionEvaluationException($"timeout-minutes must be a positive number, got '{Values.ToText(value)}'");
        }

        return TimeSpan.FromMinutes(minutes);
    }
}

/// <summary><c>defaults.run</c>: the shell and folder of run: steps that name none.</summary>
public sealed record RunDefaults(string? Shell = null, string? WorkingDirectory = null)
{
    public static readonly RunDefaults None = new();

    /// <summary>These defaults over <paramref name="outer"/> (a job's over the pipeline's).</summary>
    public RunDefaults Over(RunDefaults outer) => new(Shell ?? outer.Shell, WorkingDirectory ?? outer.WorkingDirectory);
}

/// <summary><c>concurrency:</c> at most one run (or job) of a group at a time; a newer pending one replaces an older pending one.</summary>
public sealed record ConcurrencyDefinition(Template Group, Flag CancelInProgress);

/// <summary>A declared input of <c>berth pipeline run NAME --input k=v</c> (<c>inputs:</c>, or GitHub's <c>on.workflow_dispatch.inputs</c>).</summary>
public sealed record InputDefinition(string Name, string? Default, bool Required, string Type, string Description);

public sealed record BuildImageDefinition(Template Context, Template? Dockerfile, ImmutableArray<Template> Tags, ImmutableArray<EnvEntry> BuildArgs);

public sealed record DeployDefinition(Template Service, Template? Image, ImmutableArray<Template>? Command, ImmutableArray<EnvEntry> Env, TimeSpan? Timeout);

/// <summary>One step of a job: what every kind shares. Each kind is a record of its own with a handler of its own (Steps/).</summary>
public abstract record StepDefinition(string Name, SourcePosition Position)
{
    /// <summary>The key as written: run, test, build-image, deploy, approve.</summary>
    public abstract string Kind { get; }

    /// <summary><c>id:</c>, under which <c>steps.&lt;id&gt;</c> holds its outputs, outcome and conclusion.</summary>
    public string? Id { get; init; }

    /// <summary>The name when it has expressions (rendered when the step starts); else <see cref="Name"/>.</summary>
    public Template? NameTemplate { get; init; }

    public ImmutableArray<EnvEntry> Env { get; init; } = [];

    public string? WorkingDirectory { get; init; }

    public Expr? If { get; init; }

    public TimeoutValue Timeout { get; init; } = TimeoutValue.None;

    public RetryPolicy Retry { get; init; } = RetryPolicy.None;

    public Flag ContinueOnError { get; init; } = Flag.False;
}

/// <summary><c>run:</c> a command or a script.</summary>
public sealed record RunStep(string Name, SourcePosition Position, CommandDefinition Command) : StepDefinition(Name, Position)
{
    public override string Kind => "run";
}

/// <summary><c>test:</c> a command, then the TRX or JUnit files it wrote.</summary>
public sealed record TestStep(string Name, SourcePosition Position, CommandDefinition Command, ImmutableArray<string> Results) : StepDefinition(Name, Position)
{
    public override string Kind => "test";
}

/// <summary><c>build-image:</c> a Docker image from a context folder.</summary>
public sealed record BuildImageStep(string Name, SourcePosition Position, BuildImageDefinition Build) : StepDefinition(Name, Position)
{
    public override string Kind => "build-image";
}

/// <summary><c>deploy:</c> a service update through the running control plane, followed to the end of its rollout.</summary>
public sealed record DeployStep(string Name, SourcePosition Position, DeployDefinition Deploy) : StepDefinition(Name, Position)
{
    public override string Kind => "deploy";
}

/// <summary><c>approve:</c> waits for <c>berth pipeline approve</c>.</summary>
public sealed record ApproveStep(string Name, SourcePosition Position, string Message) : StepDefinition(Name, Position)
{
    public override string Kind => "approve";
}
