using Berth.Core.Model;
using Berth.Kubernetes.Apply;

namespace Berth.Kubernetes;

/// <summary>What <c>berth k8s generate</c> writes.</summary>
public enum ManifestFormat
{
    /// <summary>One YAML file per object and a kustomization.yaml (or one stream on stdout).</summary>
    Yaml,

    /// <summary>A Helm chart: Chart.yaml, values.yaml and templates/.</summary>
    Helm,
}

/// <summary>How a <c>berth k8s</c> command ended; the CLI maps each to its named exit code.</summary>
public enum WorkflowOutcome
{
    Ok,

    /// <summary>The spec has errors, or cannot map to Kubernetes.</summary>
    InvalidSpec,

    /// <summary>Bad option value.</summary>
    Usage,

    /// <summary>An object was refused or a rollout failed.</summary>
    Failed,

    /// <summary>No kubeconfig, or the cluster could not be reached.</summary>
    Unavailable,

    Cancelled,

    /// <summary><c>diff</c> found differences (exit 1, as kubectl diff).</summary>
    Differences,
}

/// <summary>What <c>berth k8s generate|apply|delete</c> do with a loaded spec, to files or a cluster; the writers are parameters
/// so that tests read what a user sees: results on stdout, diagnostics and progress on stderr.</summary>
public static class KubernetesWorkflow
{
    public static Task<WorkflowOutcome> GenerateAsync(Application app, string output, GenerateOptions options, TextWriter stdout, TextWriter stderr, CancellationToken cancellationToken) =>
        GenerateAsync(app, output, options, ManifestFormat.Yaml, [], stdout, stderr, cancellationToken);

    /// <summary><c>generate -o json</c>: every object in one kubectl-style <c>List</c> (<c>kubectl get -o json</c>'s shape) on stdout.</summary>
    public static Task<WorkflowOutcome> GenerateListJsonAsync(Application app, GenerateOptions options, TextWriter stdout, TextWriter stderr, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var (set, exit) = Generate(app, options, stderr);
        if (set is null)
        {
            return Task.FromResult(exit);
        }

        var list = new System.Text.Json.Nodes.JsonObject
        {
            ["apiVersion"] = "v1",
            ["kind"] = "List",
            ["items"] = new System.Text.Json.Nodes.JsonArray([.. set.Objects.Select(o => System.Text.Json.Nodes.JsonNode.Parse(o.ToJson()))]),
        };
        stdout.WriteLine(list.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }));
        return Task.FromResult(WorkflowOutcome.Ok);
    }

    /// <summary><c>generate</c>: plain manifests with a kustomization.yaml (and <paramref name="overlays"/> beside them), or a Helm chart.</summary>
    public static Task<WorkflowOutcome> GenerateAsync(Application app, string output, GenerateOptions options, ManifestFormat format, IReadOnlyList<string> overlays, TextWriter stdout, TextWriter stderr, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        if (output == "-" && (format == ManifestFormat.Helm || overlays.Count > 0))
        {
            stderr.WriteLine($"berth: {(format == ManifestFormat.Helm ? "a Helm chart" : "an overlay")} is a folder, not a stream; give a folder with --output-dir (e.g. --output-dir {(format == ManifestFormat.Helm ? "chart" : "k8s")})");
            return Task.FromResult(WorkflowOutcome.Usage);
        }

        if (format == ManifestFormat.Helm && overlays.Count > 0)
        {
            stderr.WriteLine("berth: --overlay writes Kustomize overlays, which a Helm chart does not use; set per-environment values with helm's -f values-prod.yaml instead");
            return Task.FromResult(WorkflowOutcome.Usage);
        }

        if (overlays.FirstOrDefault(o => KubeNames.Label(o) != o) is { } badOverlay)
        {
            stderr.WriteLine($"berth: --overlay '{badOverlay}' is not a folder name berth writes; use lowercase letters, digits and '-' (e.g. {KubeNames.Label(badOverlay)})");
            return Task.FromResult(WorkflowOutcome.Usage);
        }

        var (set, exit) = Generate(app, options, stderr);
        if (set is null)
        {
            return Task.FromResult(exit);
        }

        if (format == ManifestFormat.Helm)
        {
            try
            {
                foreach (var path in HelmChart.WriteTo(set, app.Name, output))
                {
                    stdout.WriteLine(path);
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                stderr.WriteLine($"berth: cannot write the chart to {output}: {e.Message}; pick another folder with --output-dir");
                return Task.FromResult(WorkflowOutcome.Failed);
            }

            stderr.WriteLine($"berth: wrote a Helm chart of {set.Objects.Length} objects to {output} (values.yaml: each service's image, replicas, resources and env); install with 'helm install {KubeNames.Label(app.Name)} {output}'");
            return Task.FromResult(WorkflowOutcome.Ok);
        }

        if (output == "-")
        {
            stdout.Write(string.Join("---\n", set.Objects.Select(o => o.ToYaml())));
            return Task.FromResult(WorkflowOutcome.Ok);
        }

        IReadOnlyList<string> written;
        try
        {
            written = set.WriteTo(output);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            stderr.WriteLine($"berth: cannot write the manifests to {output}: {e.Message}; pick another folder with -o");
            return Task.FromResult(WorkflowOutcome.Failed);
        }

        foreach (var path in written)
        {
            stdout.WriteLine(path);
        }

        foreach (var overlay in overlays)
        {
            var (path, wrote) = KustomizeOverlay.WriteTo(set, output, overlay);
            if (wrote)
            {
                stdout.WriteLine(path);
            }
            else
            {
                stderr.WriteLine($"berth: {path} exists and was left as it is (it is the environment's own file; delete it to have berth write it anew)");
            }
        }

        stderr.WriteLine($"berth: wrote {set.Objects.Length} objects to {output} (kustomization.yaml lists them); apply with 'berth k8s apply' or 'kubectl apply -k {output}'");
        return Task.FromResult(WorkflowOutcome.Ok);
    }

    public static async Task<WorkflowOutcome> ApplyAsync(Application app, GenerateOptions generate, string? context, ApplyOptions options, string? timeout, TextWriter stdout, TextWriter stderr, CancellationToken cancellationToken)
    {
        if (!WithTimeout(ref options, timeout, stderr))
        {
            return WorkflowOutcome.Usage;
        }

        return await RunAsync(app, generate, context, stdout, stderr, (applier, set, ns, progress) =>
            applier.ApplyAsync(set, ns, options, progress, cancellationToken), options.DryRun ? "apply (server dry run)" : "apply");
    }

    public static Task<WorkflowOutcome> DeleteAsync(Application app, GenerateOptions generate, string? context, ApplyOptions options, string? timeout, TextWriter stdout, TextWriter stderr, CancellationToken cancellationToken)
    {
        if (!WithTimeout(ref options, timeout, stderr))
        {
            return Task.FromResult(WorkflowOutcome.Usage);
        }

        return RunAsync(app, generate, context, stdout, stderr, (applier, set, ns, progress) =>
            applier.DeleteAsync(set, ns, options, progress, cancellationToken), options.DryRun ? "delete (server dry run)" : "delete");
    }

    private static bool WithTimeout(ref ApplyOptions options, string? timeout, TextWriter stderr)
    {
        if (timeout is null)
        {
            return true;
        }

        if (!Durations.TryParse(timeout, out var t, out var error))
        {
            stderr.WriteLine($"berth: --timeout {error}");
            return false;
        }

        options = options with { Timeout = t };
        return true;
    }

    /// <summary><c>berth k8s diff</c>: unified diffs on stdout (live → what apply would make it, by a server-side dry run), the rest on stderr.</summary>
    public static async Task<WorkflowOutcome> DiffAsync(Application app, GenerateOptions generate, string? context, ApplyOptions options, TextWriter stdout, TextWriter stderr, CancellationToken cancellationToken)
    {
        var (set, exit) = Generate(app, generate, stderr);
        if (set is null)
        {
            return exit;
        }

        if (Open(context, stderr) is not { } connection)
        {
            return WorkflowOutcome.Unavailable;
        }

        using (connection)
        {
            var ns = generate.Namespace ?? connection.DefaultNamespace;
            stderr.WriteLine($"berth: diff: {set.Objects.Length} objects, namespace '{ns}', cluster {connection.Host}{(connection.Context is null ? "" : $" (context {connection.Context})")}");
            var result = await new ClusterApplier(connection).DiffAsync(set, ns, options, cancellationToken);
            foreach (var o in result.Objects)
            {
                stdout.Write(o.Diff);
                if (o.Error is not null)
                {
                    stderr.WriteLine($"berth: {o.Object}: {o.Error}");
                }
            }

            foreach (var o in result.PruneCandidates)
            {
                stderr.WriteLine($"berth: {o.Object}: the spec no longer has it; apply --prune would remove it");
                if (options.Prune)
                {
                    stdout.Write(o.Diff);
                }
            }

            if (result.Unreachable)
            {
                return WorkflowOutcome.Unavailable;
            }

            if (result.Failed)
            {
                return WorkflowOutcome.Failed;
            }

            var changed = result.Objects.Count(o => o.Diff.Length > 0);
            stderr.WriteLine(changed == 0 ? "berth: diff: apply would change nothing" : $"berth: diff: apply would change {changed} of {set.Objects.Length} objects");
            return result.HasDifferences(options.Prune) ? WorkflowOutcome.Differences : WorkflowOutcome.Ok;
        }
    }

    /// <summary><c>berth k8s status</c>: one line per workload and autoscaler, then drift (fields other managers changed since Berth's apply).</summary>
    public static async Task<WorkflowOutcome> StatusAsync(Application app, GenerateOptions generate, string? context, TextWriter stdout, TextWriter stderr, CancellationToken cancellationToken)
    {
        var (set, exit) = Generate(app, generate, stderr);
        if (set is null)
        {
            return exit;
        }

        if (Open(context, stderr) is not { } connection)
        {
            return WorkflowOutcome.Unavailable;
        }

        using (connection)
        {
            var ns = generate.Namespace ?? connection.DefaultNamespace;
            var report = await new ClusterStatus(connection).ReadAsync(set, ns, cancellationToken);
            foreach (var o in report.Objects)
            {
                stdout.WriteLine($"{o.Object}\t{(o.Healthy ? "ok" : "not ready")}\t{o.State}");
            }

            foreach (var d in report.Drift)
            {
                stdout.WriteLine($"{d.Object}\tdrift\t{d.Manager} ({d.Operation}{(d.Time is null ? "" : $" at {d.Time}")}) changed {string.Join(", ", d.Fields)}");
            }

            if (report.Unreachable)
            {
                return WorkflowOutcome.Unavailable;
            }

            stderr.WriteLine(report.Drift.Length == 0
                ? "berth: status: no drift: no other manager changed these objects since berth applied them"
                : $"berth: status: {report.Drift.Length} drift entries; 'berth k8s diff' shows what apply would put back (--force-conflicts takes over fields another manager owns)");
            return report.Objects.All(o => o.Healthy) ? WorkflowOutcome.Ok : WorkflowOutcome.Failed;
        }
    }

    private static KubeConnection? Open(string? context, TextWriter stderr)
    {
        try
        {
            return KubeConnection.Open(context);
        }
        catch (KubernetesApiException e)
        {
            stderr.WriteLine($"berth: {e.Message}");
            return null;
        }
    }

    private static async Task<WorkflowOutcome> RunAsync(
        Application app,
        GenerateOptions generate,
        string? context,
        TextWriter stdout,
        TextWriter stderr,
        Func<ClusterApplier, ManifestSet, string, IProgress<string>, Task<ApplyResult>> action,
        string verb)
    {
        var (set, exit) = Generate(app, generate, stderr);
        if (set is null)
        {
            return exit;
        }

        KubeConnection connection;
        try
        {
            connection = KubeConnection.Open(context);
        }
        catch (KubernetesApiException e)
        {
            stderr.WriteLine($"berth: {e.Message}");
            return WorkflowOutcome.Unavailable;
        }

        using (connection)
        {
            var ns = generate.Namespace ?? connection.DefaultNamespace;
            stderr.WriteLine($"berth: {verb}: {set.Objects.Length} objects, namespace '{ns}', cluster {connection.Host}{(connection.Context is null ? "" : $" (context {connection.Context})")}");
            ApplyResult result;
            try
            {
                result = await action(new ClusterApplier(connection), set, ns, new LineProgress(stderr));
            }
            catch (OperationCanceledException)
            {
                stderr.WriteLine("berth: interrupted");
                return WorkflowOutcome.Cancelled;
            }

            foreach (var outcome in result.Objects.Concat(result.Rollouts))
            {
                stdout.WriteLine($"{outcome.Object}\t{(outcome.NotChecked ? "not checked" : outcome.Succeeded ? "ok" : "failed")}\t{outcome.Message}");
            }

            if (result.Unreachable)
            {
                return WorkflowOutcome.Unavailable;
            }

            var failures = result.Objects.Concat(result.Rollouts).Count(o => !o.Succeeded);
            if (failures > 0)
            {
                stderr.WriteLine($"berth: {verb} failed for {failures} of {result.Objects.Length + result.Rollouts.Length} steps (see above)");
                return WorkflowOutcome.Failed;
            }

            var notChecked = result.Objects.Count(o => o.NotChecked);
            stderr.WriteLine(notChecked == 0
                ? $"berth: {verb} done"
                : $"berth: {verb} done; {notChecked} of {result.Objects.Length} objects not checked: their namespace does not exist yet (a real apply creates it first)");
            return WorkflowOutcome.Ok;
        }
    }

    private static (ManifestSet? Set, WorkflowOutcome Exit) Generate(Application app, GenerateOptions options, TextWriter stderr)
    {
        var set = ManifestGenerator.Generate(app, options);
        foreach (var diagnostic in set.Diagnostics)
        {
            stderr.WriteLine(diagnostic);
        }

        if (!set.Succeeded)
        {
            var count = set.Errors.Count();
            stderr.WriteLine($"berth: {count} {(count == 1 ? "problem keeps" : "problems keep")} this spec from running on Kubernetes; nothing was written or applied");
            return (null, WorkflowOutcome.InvalidSpec);
        }

        return (set, WorkflowOutcome.Ok);
    }

    private sealed class LineProgress(TextWriter writer) : IProgress<string>
    {
        public void Report(string value)
        {
            lock (writer)
            {
                writer.WriteLine($"  {value}");
            }
        }
    }
}
