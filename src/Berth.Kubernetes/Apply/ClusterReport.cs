using Berth.Core.Model;

namespace Berth.Kubernetes.Apply;

/// <summary>What <c>berth k8s status</c> and <c>berth k8s diff</c> compute, in one answer, for the dashboard's Kubernetes view: where it
/// looked, each workload's live state, drift, and what apply would change. <see cref="Error"/> says why there is nothing else.</summary>
public sealed record ClusterReport
{
    /// <summary>The API server's address, from the kubeconfig.</summary>
    public string? Cluster { get; init; }

    public string? Context { get; init; }

    public string? Namespace { get; init; }

    /// <summary>How many objects the spec generates (what the diff compares).</summary>
    public int Objects { get; init; }

    public StatusReport? Status { get; init; }

    public DiffResult? Diff { get; init; }

    /// <summary>Why the cluster was not read: no kubeconfig, a spec that cannot map to Kubernetes, an unreachable cluster.</summary>
    public string? Error { get; init; }

    /// <summary>Reads the cluster for <paramref name="app"/> as <c>berth k8s status</c> and <c>berth k8s diff</c> (without --prune) do, with the
    /// same generate options and the kubeconfig found the same way (KUBECONFIG, else ~/.kube/config, of the process that asks).</summary>
    public static async Task<ClusterReport> ReadAsync(Application app, GenerateOptions generate, string? context, CancellationToken cancellationToken)
    {
        var set = ManifestGenerator.Generate(app, generate);
        if (!set.Succeeded)
        {
            return new ClusterReport { Error = "this spec cannot run on Kubernetes: " + string.Join("; ", set.Errors) };
        }

        KubeConnection connection;
        try
        {
            connection = KubeConnection.Open(context);
        }
        catch (KubernetesApiException e)
        {
            return new ClusterReport { Error = e.Message, Objects = set.Objects.Length };
        }

        using (connection)
        {
            var report = new ClusterReport
            {
                Cluster = connection.Host,
                Context = connection.Context,
                Namespace = generate.Namespace ?? connection.DefaultNamespace,
                Objects = set.Objects.Length,
            };
            try
            {
                var status = await new ClusterStatus(connection).ReadAsync(set, report.Namespace, cancellationToken);
                if (status.Unreachable)
                {
                    return report with { Status = status, Error = status.Objects.LastOrDefault()?.State ?? $"cannot reach {connection.Host}" };
                }

                var diff = await new ClusterApplier(connection).DiffAsync(set, report.Namespace, new ApplyOptions(), cancellationToken);
                return report with { Status = status, Diff = diff };
            }
            catch (KubernetesApiException e)
            {
                return report with { Error = e.Message };
            }
        }
    }
}
