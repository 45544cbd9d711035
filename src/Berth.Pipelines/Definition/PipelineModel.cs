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
    public string? DisplayName { get; init; }

    public ImmutableArray<(string Job, SourcePosition Position)> Needs { get; init; } = [];

    public Expr? If { get; init; }

    public ImmutableArray<EnvEntry> Env { get; init; } = [];

    public string? WorkingDirectory { get; init; }

    public TimeSpan? Timeout { get; init; }

    public bool ContinueOnError { get; init; }

    public MatrixDefinition? Matrix { get; init; }

    /// <summary>Paths (globs, relative to the workspace) this job produces for the jobs that need it.</summary>
    public ImmutableArray<string> Artifacts { get; init; } = [];

    public CacheDefinition? Cache { get; init; }

    /// <summary>Run in a fresh folder of its own instead of the base folder.</summary>
    public bool IsolatedWorkspace { get; init; }

    public ImmutableArray<StepDefinition> Steps { get; init; } = [];
}

/// <summary>A matrix: the cross product of the axes, minus excludes, plus includes.</summary>
public sealed record MatrixDefinition
{
    public ImmutableArray<(string Key, ImmutableArray<string> Values)> Axes { get; init; } = [];

    public ImmutableArray<ImmutableDictionary<string, string>> Include { get; init; } = [];

    public ImmutableArray<ImmutableDictionary<string, string>> Exclude { get; init; } = [];

    /// <summary>Cancel the other combinations when one fails; true, as GitHub Actions.</summary>
    public bool FailFast { get; init; } = true;

    public int? MaxParallel { get; init; }

    public ImmutableHashSet<string> Keys =>
        Axes.Select(a => a.Key).Concat(Include.SelectMany(i => i.Keys)).ToImmutableHashSet(StringComparer.OrdinalIgnoreCase);
}

/// <summary>A job cache: restored before the steps, saved after success when the key missed.</summary>
public sealed record CacheDefinition(Template Key, ImmutableArray<Template> RestoreKeys, ImmutableArray<string> Paths);

public enum StepKind
{
    Run,
    Test,
    BuildImage,
    Deploy,
    Approve,
}

/// <summary>A command: argv templates, or a script for a shell when <c>shell:</c> asks for one.</summary>
public sealed record CommandDefinition(ImmutableArray<Template> Argv, string? Shell, Template? Script);

/// <summary>How often a failing step is tried.</summary>
public sealed record RetryPolicy(int Attempts, ImmutableArray<int> OnExitCodes, TimeSpan Delay)
{
    public static readonly RetryPolicy None = new(1, [], TimeSpan.Zero);

    public bool ShouldRetry(int exitCode) => OnExitCodes.IsEmpty || OnExitCodes.Contains(exitCode);
}

public sealed record BuildImageDefinition(Template Context, Template? Dockerfile, ImmutableArray<Template> Tags, ImmutableArray<EnvEntry> BuildArgs);

public sealed record DeployDefinition(Template Service, Template? Image, ImmutableArray<Template>? Command, ImmutableArray<EnvEntry> Env, TimeSpan? Timeout);

/// <summary>One step of a job.</summary>
public sealed record StepDefinition(string Name, StepKind Kind, SourcePosition Position)
{
    public CommandDefinition? Command { get; init; }

    public ImmutableArray<EnvEntry> Env { get; init; } = [];

    public string? WorkingDirectory { get; init; }

    public Expr? If { get; init; }

    public TimeSpan? Timeout { get; init; }

    public RetryPolicy Retry { get; init; } = RetryPolicy.None;

    public bool ContinueOnError { get; init; }

    /// <summary>For test steps: globs of TRX or JUnit XML files written by the command.</summary>
    public ImmutableArray<string> Results { get; init; } = [];

    public BuildImageDefinition? BuildImage { get; init; }

    public DeployDefinition? Deploy { get; init; }

    public string? ApproveMessage { get; init; }
}
