using System.CommandLine;
using Berth.Cli.Pipelines;

namespace Berth.Cli.Commands;

/// <summary>pipeline run|list|show|logs|cancel|rerun|approve.</summary>
internal static class PipelineCommands
{
    public static IEnumerable<Command> Create()
    {
        var file = new Option<string?>("--file", "-f") { Description = "Spec or pipelines file (default: berth.yaml, compose.yaml… in the current folder)" };
        var state = new Option<string?>("--state") { Description = "State folder (default: .berth beside the file)" };
        var output = new Option<string>("--output", "-o") { Description = "text or json", DefaultValueFactory = _ => "text" };
        output.AcceptOnlyFromAmong("text", "json");
        var runId = new Argument<long>("RUN") { Description = "Run id (see 'berth pipeline list')" };

        var pipeline = new Command("pipeline", "Run CI/CD pipelines: jobs, steps, matrices, artifacts, caches, deploys.");

        var name = new Argument<string>("NAME") { Description = "Pipeline name under pipelines:" };
        var watch = new Option<bool>("--watch") { Description = "After the run, keep running the pipeline on its triggers (on.watch file changes, on.schedule) until Ctrl-C" };
        var branch = new Option<string?>("--branch") { Description = "Branch for expressions (default: the git branch checked out)" };
        var secretsFile = new Option<string?>("--secrets-file") { Description = "KEY=VALUE file outside the repository (default: $BERTH_SECRETS_FILE)" };
        var inputs = new Option<string[]>("--input") { Description = "An input of the pipeline (inputs: or on.workflow_dispatch.inputs), as NAME=VALUE; repeat for more", AllowMultipleArgumentsPerToken = false };
        var varsFile = new Option<string?>("--vars-file") { Description = "NAME=VALUE file for the vars context (default: $BERTH_VARS_FILE)" };
        var run = new Command("run", "Run a pipeline now and show its progress.") { name, file, state, watch, branch, secretsFile, inputs, varsFile, output };
        run.SetAction((parse, ct) => new PipelineCli(parse.GetValue(file), parse.GetValue(state), parse.GetValue(output)!).RunAsync(
            parse.GetValue(name)!, parse.GetValue(watch), parse.GetValue(branch), parse.GetValue(secretsFile), parse.GetValue(inputs) ?? [], parse.GetValue(varsFile), ct));
        pipeline.Subcommands.Add(run);

        var limit = new Option<int>("--limit") { Description = "How many runs", DefaultValueFactory = _ => 20 };
        var list = new Command("list", "List recent runs.") { file, state, output, limit };
        list.SetAction(parse => new PipelineCli(parse.GetValue(file), parse.GetValue(state), parse.GetValue(output)!).List(parse.GetValue(limit)));
        pipeline.Subcommands.Add(list);

        var show = new Command("show", "Show a run: status, jobs and steps with durations and exit codes.") { runId, file, state, output };
        show.SetAction(parse => new PipelineCli(parse.GetValue(file), parse.GetValue(state), parse.GetValue(output)!).Show(parse.GetValue(runId)));
        pipeline.Subcommands.Add(show);

        var job = new Argument<string?>("JOB") { Description = "Only this job (all its matrix combinations)", Arity = ArgumentArity.ZeroOrOne };
        var follow = new Option<bool>("--follow") { Description = "Keep printing until the run ends" };
        var logs = new Command("logs", "Print a run's logs (secrets masked).") { runId, job, file, state, follow };
        logs.SetAction((parse, ct) => new PipelineCli(parse.GetValue(file), parse.GetValue(state), "text").LogsAsync(parse.GetValue(runId), parse.GetValue(job), parse.GetValue(follow), ct));
        pipeline.Subcommands.Add(logs);

        var cancel = new Command("cancel", "Cancel a running run: its steps' process trees get SIGTERM, then SIGKILL after the grace period.") { runId, file, state };
        cancel.SetAction(parse => new PipelineCli(parse.GetValue(file), parse.GetValue(state), "text").Cancel(parse.GetValue(runId)));
        pipeline.Subcommands.Add(cancel);

        var failed = new Option<bool>("--failed") { Description = "Only the jobs that failed and the jobs that depend on them" };
        var rerun = new Command("rerun", "Run a run's failed jobs again, reusing the jobs that succeeded.") { runId, failed, file, state, secretsFile, output };
        rerun.SetAction((parse, ct) => new PipelineCli(parse.GetValue(file), parse.GetValue(state), parse.GetValue(output)!).RerunAsync(
            parse.GetValue(runId), parse.GetValue(failed), parse.GetValue(secretsFile), ct));
        pipeline.Subcommands.Add(rerun);

        var approveJob = new Option<string?>("--job") { Description = "Only this job's gate (default: every gate of the run)" };
        var approve = new Command("approve", "Release a run's approve: gate.") { runId, approveJob, file, state };
        approve.SetAction(parse => new PipelineCli(parse.GetValue(file), parse.GetValue(state), "text").Approve(parse.GetValue(runId), parse.GetValue(approveJob)));
        pipeline.Subcommands.Add(approve);

        return [pipeline];
    }
}
