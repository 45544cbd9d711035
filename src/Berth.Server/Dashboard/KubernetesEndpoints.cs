using Berth.Kubernetes;
using Berth.Kubernetes.Apply;
using Berth.Orchestration;
using Berth.Orchestration.Controllers;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Berth.Server.Dashboard;

/// <summary>The Kubernetes view's data: the running spec's objects on the cluster the control plane's kubeconfig names, as
/// <c>berth k8s status</c> (live state, drift) and <c>berth k8s diff</c> (what apply would change) compute them.</summary>
internal static class KubernetesEndpoints
{
    /// <summary>How long one read of the cluster may take: 30s, as kubectl's default --request-timeout is unlimited but a view that
    /// waits longer is not live any more; the view says the cluster did not answer.</summary>
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    public static void Map(WebApplication app, DashboardContext d) =>
        app.MapGet("/dashboard/api/kubernetes", (Delegate)((HttpContext context) => ReportAsync(context, d)));

    private static async Task<IResult> ReportAsync(HttpContext context, DashboardContext d)
    {
        var application = d.Plane.Current?.Application ?? throw ControlPlaneMessages.NothingAppliedError();
        var q = context.Request.Query;
        var mesh = q["mesh"].ToString() switch
        {
            "" or "none" => MeshTarget.None,
            "istio" => MeshTarget.Istio,
            var other => throw new ControlPlaneException(ControlPlaneError.Invalid, $"mesh '{other}' is not one berth k8s generates for; use none or istio"),
        };
        var generate = new GenerateOptions { Namespace = Empty(q["namespace"]), Mesh = mesh };
        var kubeContext = Empty(q["context"]);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
        deadline.CancelAfter(Timeout);
        ClusterReport report;
        try
        {
            report = await ClusterReport.ReadAsync(application, generate, kubeContext, deadline.Token);
        }
        catch (OperationCanceledException) when (!context.RequestAborted.IsCancellationRequested)
        {
            report = new ClusterReport { Namespace = generate.Namespace, Context = kubeContext, Error = $"the cluster did not answer within {Timeout.TotalSeconds:0}s" };
        }

        var diff = report.Diff;
        return DashboardEndpoints.Json(d, new
        {
            cluster = report.Cluster,
            context = report.Context,
            @namespace = report.Namespace,
            objects = report.Objects,
            error = report.Error,
            status = report.Status?.Objects.Select(o => new { @object = o.Object, healthy = o.Healthy, state = o.State }),
            drift = report.Status?.Drift.Select(x => new { @object = x.Object, manager = x.Manager, operation = x.Operation, time = x.Time, fields = x.Fields }),
            diff = diff?.Objects.Where(o => o.Diff.Length > 0 || o.Error is not null).Select(o => new { @object = o.Object, diff = o.Diff, error = o.Error }),
            changed = diff?.Objects.Count(o => o.Diff.Length > 0),
            prune = diff?.PruneCandidates.Select(o => new { @object = o.Object, diff = o.Diff }),
        });
    }

    private static string? Empty(string? s) => string.IsNullOrEmpty(s) ? null : s;
}
