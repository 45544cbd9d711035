using Berth.Core.Model;
using Berth.Kubernetes.Apply;

namespace Berth.Kubernetes;

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
}

/// <summary>What <c>berth k8s generate|apply|delete</c> do with a loaded spec, to files or a cluster; the writers are parameters
/// so that tests read what a user sees: results on stdout, diagnostics and progress on stderr.</summary>
public static class KubernetesWorkflow
{
    public static Task<WorkflowOutcome> GenerateAsync(Application app, string output, GenerateOptions options, TextWriter stdout, TextWriter stderr, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var (set, exit) = Generate(app, options, stderr);
        if (set is null)
        {
            return Task.FromResult(exit);
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
