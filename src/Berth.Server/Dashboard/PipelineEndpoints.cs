using Berth.Orchestration;
using Berth.Pipelines.Storage;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Berth.Server.Dashboard;

/// <summary>Pipeline runs for the dashboard, read from the state folder's <c>pipelines.db</c> as <c>berth pipeline show</c>
/// does; approve and cancel write the same requests <c>berth pipeline approve|cancel</c> write, which the running
/// engine picks up.</summary>
internal static class PipelineEndpoints
{
    public static void Map(WebApplication app, DashboardContext d)
    {
        app.MapGet("/dashboard/api/pipelines", () => WithStore(d, store => DashboardEndpoints.Json(d, store?.ListRuns(50).Select(r => new
        {
            id = r.Id, pipeline = r.Pipeline, status = r.Status, trigger = r.Trigger, branch = r.Branch, created = r.Created, finished = r.Finished,
            durationMs = r.Duration?.TotalMilliseconds, cancelRequested = r.CancelRequested,
        }) ?? [])));
        app.MapGet("/dashboard/api/pipelines/{id:long}", (long id) => WithStore(d, store =>
        {
            var run = store?.GetRun(id) ?? throw new ControlPlaneException(ControlPlaneError.NotFound, $"no pipeline run {id}");
            return DashboardEndpoints.Json(d, new
            {
                run = new { id = run.Id, pipeline = run.Pipeline, status = run.Status, trigger = run.Trigger, created = run.Created, finished = run.Finished },
                jobs = store.GetJobs(id).Select(j => new { key = j.Key, job = j.JobId, matrix = j.Matrix, status = j.Status, started = j.Started, finished = j.Finished, message = j.Message, needs = j.Needs }),
                steps = store.GetSteps(id).Select(s => new { job = s.JobKey, index = s.Index, name = s.Name, kind = s.Kind, status = s.Status, exitCode = s.ExitCode, summary = s.Summary }),
                logs = store.GetLogs(id, null).TakeLast(2000).Select(l => new { job = l.JobKey, step = l.StepIndex, stream = l.Stream, text = l.Text, time = l.Time }),
            });
        }));
        app.MapPost("/v1/pipelines/runs/{id:long}/cancel", (long id) => WithStore(d, store =>
        {
            var run = store?.GetRun(id) ?? throw new ControlPlaneException(ControlPlaneError.NotFound, $"no pipeline run {id}");
            if (RunStatus.IsFinal(run.Status))
            {
                throw new ControlPlaneException(ControlPlaneError.Conflict, $"run {id} already ended ({run.Status})");
            }

            store.RequestCancel(id);
            return Results.Json(new { run = id, cancelRequested = true });
        }));
        app.MapPost("/v1/pipelines/runs/{id:long}/approve/{job}", (long id, string job) => WithStore(d, store =>
        {
            var run = store?.GetRun(id) ?? throw new ControlPlaneException(ControlPlaneError.NotFound, $"no pipeline run {id}");
            if (store.GetJobs(id).All(j => j.Key != job))
            {
                throw new ControlPlaneException(ControlPlaneError.NotFound, $"run {id} has no job '{job}'; jobs: {string.Join(", ", store.GetJobs(id).Select(j => j.Key))}");
            }

            store.Approve(id, job, d.Time.GetUtcNow());
            return Results.Json(new { run = run.Id, job, approved = true });
        }));
    }

    private static IResult WithStore(DashboardContext d, Func<RunStore?, IResult> use)
    {
        var path = d.PipelineDatabase;
        if (path is null || !File.Exists(path))
        {
            return use(null);
        }

        using var store = new RunStore(path);
        return use(store);
    }
}
