using System.Collections.Immutable;
using Berth.Core.Contracts;
using Berth.Pipelines.Definition;
using Berth.Pipelines.Execution;
using Berth.Pipelines.Expressions;
using Berth.Pipelines.Storage;

namespace Berth.Pipelines.Steps;

/// <summary>How one attempt of a step ended.</summary>
public sealed record StepResult(string Status, int? ExitCode, string Summary)
{
    public static StepResult Stopped(int? exitCode) => new(RunStatus.Cancelled, exitCode, "");
}

/// <summary>What a step handler may use while its step runs: its folder, its values, its output, the engine's parts.</summary>
public interface IStepRun
{
    /// <summary>The folder the step runs in (workspace, then job and step working-directory).</summary>
    string Directory { get; }

    /// <summary>The values the step's expressions see; <c>env</c> is the step's whole environment.</summary>
    ExpressionContext Context { get; }

    DateTimeOffset Started { get; }

    PipelineEngineOptions Options { get; }

    TimeProvider Time { get; }

    /// <summary>Masks, stores and shows one line of the step's output.</summary>
    void Line(OutputStream stream, string text);

    /// <summary>Runs a command or script as the step's process group, with the step's environment.</summary>
    Task<ProcessOutcome> RunCommandAsync(CommandDefinition command, CancellationToken cancellationToken);

    /// <summary>Renders name/value templates in order, each seeing the ones before it in <c>env</c>.</summary>
    ImmutableDictionary<string, string> RenderValues(ImmutableArray<EnvEntry> entries);

    /// <summary>Marks the step as waiting (approve) with a message.</summary>
    void Waiting(string message);

    /// <summary>True once <c>berth pipeline approve</c> released this job.</summary>
    bool IsApproved();
}

/// <summary>Runs one kind of step.</summary>
public abstract class StepHandler<TStep>
    where TStep : StepDefinition
{
    public abstract Task<StepResult> ExecuteAsync(TStep step, IStepRun run, CancellationToken cancellationToken);
}

/// <summary>The handler of each step kind: the one place a step's type picks what runs it.</summary>
public static class StepHandlers
{
    private static readonly RunStepHandler Run = new();
    private static readonly TestStepHandler Test = new();
    private static readonly BuildImageStepHandler BuildImage = new();
    private static readonly DeployStepHandler Deploy = new();
    private static readonly ApproveStepHandler Approve = new();

    public static Task<StepResult> ExecuteAsync(StepDefinition step, IStepRun run, CancellationToken cancellationToken) => step switch
    {
        RunStep s => Run.ExecuteAsync(s, run, cancellationToken),
        TestStep s => Test.ExecuteAsync(s, run, cancellationToken),
        BuildImageStep s => BuildImage.ExecuteAsync(s, run, cancellationToken),
        DeployStep s => Deploy.ExecuteAsync(s, run, cancellationToken),
        ApproveStep s => Approve.ExecuteAsync(s, run, cancellationToken),
        _ => throw new InvalidOperationException($"no handler for {step.GetType().Name}"),
    };
}

/// <summary><c>run:</c> the command's exit code decides.</summary>
public sealed class RunStepHandler : StepHandler<RunStep>
{
    public override async Task<StepResult> ExecuteAsync(RunStep step, IStepRun run, CancellationToken cancellationToken)
    {
        var outcome = await run.RunCommandAsync(step.Command, cancellationToken).ConfigureAwait(false);
        if (outcome.Stopped)
        {
            return StepResult.Stopped(outcome.ExitCode);
        }

        return outcome.ExitCode == 0
            ? new StepResult(RunStatus.Succeeded, 0, "")
            : new StepResult(RunStatus.Failed, outcome.ExitCode, $"exit code {outcome.ExitCode}");
    }
}

/// <summary><c>test:</c> the command, then the TRX or JUnit files it wrote during this step.</summary>
public sealed class TestStepHandler : StepHandler<TestStep>
{
    public override async Task<StepResult> ExecuteAsync(TestStep step, IStepRun run, CancellationToken cancellationToken)
    {
        var outcome = await run.RunCommandAsync(step.Command, cancellationToken).ConfigureAwait(false);
        if (outcome.Stopped)
        {
            return StepResult.Stopped(outcome.ExitCode);
        }

        var patterns = step.Results.Select(r => Template.Parse(r).Render(run.Context)).ToList();
        var files = FileHasher.Match(run.Directory, patterns)
            .Where(f => File.GetLastWriteTimeUtc(f) >= run.Started.UtcDateTime.AddSeconds(-2))
            .ToList();
        if (files.Count == 0)
        {
            return new StepResult(RunStatus.Failed, outcome.ExitCode, $"no test results matching {string.Join(", ", patterns)} were written under {run.Directory}");
        }

        var summary = files.Aggregate(TestSummary.Empty, (sum, f) => sum.Add(TestResults.Read(f)));
        run.Line(OutputStream.Stdout, $"tests: {summary}");
        foreach (var failed in summary.FailedTests.Take(20))
        {
            run.Line(OutputStream.Stdout, $"  failed: {failed}");
        }

        var ok = outcome.ExitCode == 0 && summary.Failed == 0;
        return new StepResult(ok ? RunStatus.Succeeded : RunStatus.Failed, outcome.ExitCode, summary.ToString());
    }
}

/// <summary><c>build-image:</c> through <see cref="PipelineEngineOptions.ImageBuilder"/>, the Docker Engine API by default.</summary>
public sealed class BuildImageStepHandler : StepHandler<BuildImageStep>
{
    public override async Task<StepResult> ExecuteAsync(BuildImageStep step, IStepRun run, CancellationToken cancellationToken)
    {
        var build = step.Build;
        var contextDir = Path.GetFullPath(build.Context.Render(run.Context), run.Directory);
        var tags = build.Tags.Select(t => t.Render(run.Context)).ToList();
        var args = run.RenderValues(build.BuildArgs);
        var builder = run.Options.ImageBuilder ?? new DockerImageBuilder();
        await builder.BuildAsync(contextDir, build.Dockerfile?.Render(run.Context) ?? "Dockerfile", tags, args,
            line => run.Line(OutputStream.Stdout, line), cancellationToken).ConfigureAwait(false);
        return new StepResult(RunStatus.Succeeded, null, $"built {string.Join(", ", tags)}");
    }
}

/// <summary>
/// <c>deploy:</c> PATCH the service on the running control plane with values rendered like any step's (its env, matrix,
/// steps and needs outputs), then follow the rollout until it completes, rolls back or fails, or the timeout passes.
/// </summary>
public sealed class DeployStepHandler : StepHandler<DeployStep>
{
    private static readonly HttpClient SharedHttp = new() { Timeout = TimeSpan.FromSeconds(30) };

    public override async Task<StepResult> ExecuteAsync(DeployStep step, IStepRun run, CancellationToken cancellationToken)
    {
        var deploy = step.Deploy;
        var service = deploy.Service.Render(run.Context);
        var endpoint = ControlPlaneEndpoint.Discover(run.Options.StateDirectory);
        var client = run.Options.ControlPlane?.Invoke(endpoint) ?? new ControlPlaneClient(SharedHttp, endpoint);
        var update = new ServicePatchRequest
        {
            Image = deploy.Image?.Render(run.Context),
            Command = deploy.Command?.Select(c => c.Render(run.Context)).ToList(),
            Env = deploy.Env.IsEmpty ? null : run.RenderValues(deploy.Env),
        };
        var revision = await client.UpdateServiceAsync(service, update, cancellationToken).ConfigureAwait(false);
        run.Line(OutputStream.Stdout, $"rollout of {service} to revision {revision} started");
        var timeout = deploy.Timeout ?? PipelineDefaults.DeployTimeout;
        using var deadline = new CancellationTokenSource(timeout, run.Time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, deadline.Token);
        RolloutState? lastState = null;
        try
        {
            while (true)
            {
                var status = await client.GetRolloutAsync(service, linked.Token).ConfigureAwait(false);
                if (status.State != lastState)
                {
                    lastState = status.State;
                    run.Line(OutputStream.Stdout, $"rollout of {service} revision {status.Revision}: {status.State.Name()}{(string.IsNullOrEmpty(status.Message) ? "" : " — " + status.Message)}");
                }

                switch (status.State)
                {
                    case RolloutState.Complete when status.Revision >= revision:
                        return new StepResult(RunStatus.Succeeded, null, $"{service} at revision {status.Revision}");
                    case RolloutState.RolledBack or RolloutState.Failed:
                        return new StepResult(RunStatus.Failed, null,
                            $"rollout of {service} revision {revision} {status.State.Name()}{(string.IsNullOrEmpty(status.Message) ? "" : ": " + status.Message)}; the app stays on its previous revision");
                }

                await Task.Delay(run.Options.RolloutPollInterval, run.Time, linked.Token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            return new StepResult(RunStatus.Failed, null,
                $"rollout of {service} revision {revision} did not complete within {Core.Model.Durations.Format(timeout)} (last state: {lastState?.Name() ?? "none"}); see 'berth rollout status {service}'");
        }
    }
}

/// <summary><c>approve:</c> waits for <c>berth pipeline approve RUN</c>, polling the run store.</summary>
public sealed class ApproveStepHandler : StepHandler<ApproveStep>
{
    public override async Task<StepResult> ExecuteAsync(ApproveStep step, IStepRun run, CancellationToken cancellationToken)
    {
        run.Waiting(step.Message);
        using var timer = new PeriodicTimer(run.Options.PollInterval, run.Time);
        while (!run.IsApproved())
        {
            await timer.WaitForNextTickAsync(cancellationToken).ConfigureAwait(false);
        }

        run.Line(OutputStream.Stdout, "approved");
        return new StepResult(RunStatus.Succeeded, null, "approved");
    }
}
