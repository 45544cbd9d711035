using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;
using k8s;
using k8s.Autorest;
using k8s.Models;

namespace Berth.Kubernetes.Apply;

/// <summary>The few Kubernetes API calls apply and delete make: server-side apply, delete, workload status, pods.</summary>
internal interface IKubernetesApi
{
    /// <summary>The cluster's address, for messages.</summary>
    string Host { get; }

    /// <summary>Server-side applies the object; returns the object as the server answered it (what it stored, or would store in a dry run), as JSON.</summary>
    Task<string> ApplyAsync(ManifestObject obj, string ns, bool dryRun, bool force, CancellationToken cancellationToken);

    /// <summary>The live object as JSON; null when there is none.</summary>
    Task<string?> ReadAsync(string kind, string apiVersion, string name, string ns, CancellationToken cancellationToken);

    /// <summary>Whether the namespace exists; null when the cluster does not say (e.g. reading namespaces is not allowed).</summary>
    Task<bool?> NamespaceExistsAsync(string ns, CancellationToken cancellationToken);

    /// <summary>Deletes the object; false when it was not there.</summary>
    Task<bool> DeleteAsync(ManifestObject obj, string ns, bool dryRun, CancellationToken cancellationToken);

    Task<V1Deployment> ReadDeploymentStatusAsync(string name, string ns, CancellationToken cancellationToken);

    Task<V1StatefulSet> ReadStatefulSetStatusAsync(string name, string ns, CancellationToken cancellationToken);

    Task<V1Job> ReadJobStatusAsync(string name, string ns, CancellationToken cancellationToken);

    Task<IReadOnlyList<V1Pod>> ListPodsAsync(string ns, string labelSelector, CancellationToken cancellationToken);

    /// <summary>Names of the objects of one kind in <paramref name="ns"/> that match <paramref name="labelSelector"/>;
    /// empty when the cluster does not serve the kind (Istio not installed).</summary>
    Task<IReadOnlyList<string>> ListNamesAsync(string kind, string apiVersion, string ns, string labelSelector, CancellationToken cancellationToken);
}

/// <summary>A failed API call, with the server's own message and what to do about it.</summary>
public sealed class KubernetesApiException(string message, HttpStatusCode? status, Exception? inner = null) : Exception(message, inner)
{
    public HttpStatusCode? Status { get; } = status;

    /// <summary>True when the cluster could not be reached at all (as opposed to refusing a request).</summary>
    public bool Unreachable => Status is null;
}

/// <summary><see cref="IKubernetesApi"/> over the official client (KubernetesClient).</summary>
internal sealed partial class KubernetesApi(IKubernetes client, string host) : IKubernetesApi
{
    // The authorizer's denial, as the API server words it: 'User "jane" cannot patch resource "deployments" in API group "apps" …'.
    [GeneratedRegex(@"\bcannot [a-z]+ (?:resource|path) ""[^""]+""")]
    private static partial Regex RbacDenial();

    private const string DryRunAll = "All";

    public string Host { get; } = host;

    public async Task<string> ApplyAsync(ManifestObject obj, string ns, bool dryRun, bool force, CancellationToken cancellationToken)
    {
        // JSON is YAML: the client sends V1Patch content verbatim as application/apply-patch+yaml, and requires it to be JSON.
        var patch = new V1Patch(obj.ToJson(), V1Patch.PatchType.ApplyPatch);
        var dry = dryRun ? DryRunAll : null;
        bool? takeOver = force ? true : null; // omitted unless asked, as kubectl
        const string manager = GenerateDefaults.FieldManager;
        const string validation = "Strict";
        object? result = null;
        await Call(obj, ns, obj.Kind switch
        {
            "Namespace" => async () => result = await client.CoreV1.PatchNamespaceAsync(patch, obj.Name, dryRun: dry, fieldManager: manager, fieldValidation: validation, force: takeOver, cancellationToken: cancellationToken),
            "ConfigMap" => async () => result = await client.CoreV1.PatchNamespacedConfigMapAsync(patch, obj.Name, ns, dryRun: dry, fieldManager: manager, fieldValidation: validation, force: takeOver, cancellationToken: cancellationToken),
            "Secret" => async () => result = await client.CoreV1.PatchNamespacedSecretAsync(patch, obj.Name, ns, dryRun: dry, fieldManager: manager, fieldValidation: validation, force: takeOver, cancellationToken: cancellationToken),
            "PersistentVolumeClaim" => async () => result = await client.CoreV1.PatchNamespacedPersistentVolumeClaimAsync(patch, obj.Name, ns, dryRun: dry, fieldManager: manager, fieldValidation: validation, force: takeOver, cancellationToken: cancellationToken),
            "Service" => async () => result = await client.CoreV1.PatchNamespacedServiceAsync(patch, obj.Name, ns, dryRun: dry, fieldManager: manager, fieldValidation: validation, force: takeOver, cancellationToken: cancellationToken),
            "Deployment" => async () => result = await client.AppsV1.PatchNamespacedDeploymentAsync(patch, obj.Name, ns, dryRun: dry, fieldManager: manager, fieldValidation: validation, force: takeOver, cancellationToken: cancellationToken),
            "StatefulSet" => async () => result = await client.AppsV1.PatchNamespacedStatefulSetAsync(patch, obj.Name, ns, dryRun: dry, fieldManager: manager, fieldValidation: validation, force: takeOver, cancellationToken: cancellationToken),
            "Job" => async () => result = await client.BatchV1.PatchNamespacedJobAsync(patch, obj.Name, ns, dryRun: dry, fieldManager: manager, fieldValidation: validation, force: takeOver, cancellationToken: cancellationToken),
            "HorizontalPodAutoscaler" => async () => result = await client.AutoscalingV2.PatchNamespacedHorizontalPodAutoscalerAsync(patch, obj.Name, ns, dryRun: dry, fieldManager: manager, fieldValidation: validation, force: takeOver, cancellationToken: cancellationToken),
            "PodDisruptionBudget" => async () => result = await client.PolicyV1.PatchNamespacedPodDisruptionBudgetAsync(patch, obj.Name, ns, dryRun: dry, fieldManager: manager, fieldValidation: validation, force: takeOver, cancellationToken: cancellationToken),
            "Ingress" => async () => result = await client.NetworkingV1.PatchNamespacedIngressAsync(patch, obj.Name, ns, dryRun: dry, fieldManager: manager, fieldValidation: validation, force: takeOver, cancellationToken: cancellationToken),
            "DestinationRule" or "VirtualService" => async () => result = await client.CustomObjects.PatchNamespacedCustomObjectAsync(
                patch, Group(obj), Version(obj), ns, Plural(obj.Kind), obj.Name, dryRun: dry, fieldManager: manager, fieldValidation: validation, force: takeOver, cancellationToken: cancellationToken),
            _ => throw new NotSupportedException($"berth does not apply {obj.Kind} objects"),
        });
        return AsJson(result);
    }

    public async Task<string?> ReadAsync(string kind, string apiVersion, string name, string ns, CancellationToken cancellationToken)
    {
        object? result = null;
        try
        {
            await Call(kind, name, ns, kind switch
            {
                "Namespace" => async () => result = await client.CoreV1.ReadNamespaceAsync(name, cancellationToken: cancellationToken),
                "ConfigMap" => async () => result = await client.CoreV1.ReadNamespacedConfigMapAsync(name, ns, cancellationToken: cancellationToken),
                "Secret" => async () => result = await client.CoreV1.ReadNamespacedSecretAsync(name, ns, cancellationToken: cancellationToken),
                "PersistentVolumeClaim" => async () => result = await client.CoreV1.ReadNamespacedPersistentVolumeClaimAsync(name, ns, cancellationToken: cancellationToken),
                "Service" => async () => result = await client.CoreV1.ReadNamespacedServiceAsync(name, ns, cancellationToken: cancellationToken),
                "Deployment" => async () => result = await client.AppsV1.ReadNamespacedDeploymentAsync(name, ns, cancellationToken: cancellationToken),
                "StatefulSet" => async () => result = await client.AppsV1.ReadNamespacedStatefulSetAsync(name, ns, cancellationToken: cancellationToken),
                "Job" => async () => result = await client.BatchV1.ReadNamespacedJobAsync(name, ns, cancellationToken: cancellationToken),
                "HorizontalPodAutoscaler" => async () => result = await client.AutoscalingV2.ReadNamespacedHorizontalPodAutoscalerAsync(name, ns, cancellationToken: cancellationToken),
                "PodDisruptionBudget" => async () => result = await client.PolicyV1.ReadNamespacedPodDisruptionBudgetAsync(name, ns, cancellationToken: cancellationToken),
                "Ingress" => async () => result = await client.NetworkingV1.ReadNamespacedIngressAsync(name, ns, cancellationToken: cancellationToken),
                "DestinationRule" or "VirtualService" => async () => result = await client.CustomObjects.GetNamespacedCustomObjectAsync(
                    apiVersion.Split('/')[0], apiVersion.Split('/')[1], ns, Plural(kind), name, cancellationToken: cancellationToken),
                _ => throw new NotSupportedException($"berth does not read {kind} objects"),
            });
        }
        catch (KubernetesApiException e) when (e.Status == HttpStatusCode.NotFound)
        {
            return null;
        }

        return AsJson(result);
    }

    public async Task<bool?> NamespaceExistsAsync(string ns, CancellationToken cancellationToken)
    {
        try
        {
            return await ReadAsync("Namespace", "v1", ns, ns, cancellationToken) is not null;
        }
        catch (KubernetesApiException e) when (e.Status is HttpStatusCode.Forbidden or HttpStatusCode.Unauthorized)
        {
            return null;
        }
    }

    // Typed answers serialize with the client's own converters (quantities, int-or-string); custom objects arrive as JSON already.
    private static string AsJson(object? result) => result switch
    {
        null => "{}",
        JsonElement element => element.GetRawText(),
        _ => KubernetesJson.Serialize(result),
    };

    public async Task<bool> DeleteAsync(ManifestObject obj, string ns, bool dryRun, CancellationToken cancellationToken)
    {
        var dry = dryRun ? DryRunAll : null;
        const string background = "Background";
        try
        {
            await Call(obj, ns, obj.Kind switch
            {
                "Namespace" => () => client.CoreV1.DeleteNamespaceAsync(obj.Name, dryRun: dry, propagationPolicy: background, cancellationToken: cancellationToken),
                "ConfigMap" => () => client.CoreV1.DeleteNamespacedConfigMapAsync(obj.Name, ns, dryRun: dry, propagationPolicy: background, cancellationToken: cancellationToken),
                "Secret" => () => client.CoreV1.DeleteNamespacedSecretAsync(obj.Name, ns, dryRun: dry, propagationPolicy: background, cancellationToken: cancellationToken),
                "PersistentVolumeClaim" => () => client.CoreV1.DeleteNamespacedPersistentVolumeClaimAsync(obj.Name, ns, dryRun: dry, propagationPolicy: background, cancellationToken: cancellationToken),
                "Service" => () => client.CoreV1.DeleteNamespacedServiceAsync(obj.Name, ns, dryRun: dry, propagationPolicy: background, cancellationToken: cancellationToken),
                "Deployment" => () => client.AppsV1.DeleteNamespacedDeploymentAsync(obj.Name, ns, dryRun: dry, propagationPolicy: background, cancellationToken: cancellationToken),
                "StatefulSet" => () => client.AppsV1.DeleteNamespacedStatefulSetAsync(obj.Name, ns, dryRun: dry, propagationPolicy: background, cancellationToken: cancellationToken),
                "Job" => () => client.BatchV1.DeleteNamespacedJobAsync(obj.Name, ns, dryRun: dry, propagationPolicy: background, cancellationToken: cancellationToken),
                "HorizontalPodAutoscaler" => () => client.AutoscalingV2.DeleteNamespacedHorizontalPodAutoscalerAsync(obj.Name, ns, dryRun: dry, propagationPolicy: background, cancellationToken: cancellationToken),
                "PodDisruptionBudget" => () => client.PolicyV1.DeleteNamespacedPodDisruptionBudgetAsync(obj.Name, ns, dryRun: dry, propagationPolicy: background, cancellationToken: cancellationToken),
                "Ingress" => () => client.NetworkingV1.DeleteNamespacedIngressAsync(obj.Name, ns, dryRun: dry, propagationPolicy: background, cancellationToken: cancellationToken),
                "DestinationRule" or "VirtualService" => () => client.CustomObjects.DeleteNamespacedCustomObjectAsync(
                    Group(obj), Version(obj), ns, Plural(obj.Kind), obj.Name, propagationPolicy: background, dryRun: dry, cancellationToken: cancellationToken),
                _ => throw new NotSupportedException($"berth does not delete {obj.Kind} objects"),
            });
            return true;
        }
        catch (KubernetesApiException e) when (e.Status == HttpStatusCode.NotFound)
        {
            return false;
        }
    }

    public async Task<V1Deployment> ReadDeploymentStatusAsync(string name, string ns, CancellationToken cancellationToken)
    {
        V1Deployment? result = null;
        await Call("Deployment", name, ns, async () => result = await client.AppsV1.ReadNamespacedDeploymentStatusAsync(name, ns, cancellationToken: cancellationToken));
        return result!;
    }

    public async Task<V1StatefulSet> ReadStatefulSetStatusAsync(string name, string ns, CancellationToken cancellationToken)
    {
        V1StatefulSet? result = null;
        await Call("StatefulSet", name, ns, async () => result = await client.AppsV1.ReadNamespacedStatefulSetStatusAsync(name, ns, cancellationToken: cancellationToken));
        return result!;
    }

    public async Task<V1Job> ReadJobStatusAsync(string name, string ns, CancellationToken cancellationToken)
    {
        V1Job? result = null;
        await Call("Job", name, ns, async () => result = await client.BatchV1.ReadNamespacedJobStatusAsync(name, ns, cancellationToken: cancellationToken));
        return result!;
    }

    public async Task<IReadOnlyList<V1Pod>> ListPodsAsync(string ns, string labelSelector, CancellationToken cancellationToken)
    {
        V1PodList? result = null;
        await Call("Pod", labelSelector, ns, async () => result = await client.CoreV1.ListNamespacedPodAsync(ns, labelSelector: labelSelector, cancellationToken: cancellationToken));
        return [.. result!.Items ?? []];
    }

    public async Task<IReadOnlyList<string>> ListNamesAsync(string kind, string apiVersion, string ns, string labelSelector, CancellationToken cancellationToken)
    {
        IEnumerable<string?> names = [];
        try
        {
            await Call(kind, labelSelector, ns, async () => names = kind switch
            {
                "ConfigMap" => (await client.CoreV1.ListNamespacedConfigMapAsync(ns, labelSelector: labelSelector, cancellationToken: cancellationToken)).Items.Select(i => i.Metadata?.Name),
                "Secret" => (await client.CoreV1.ListNamespacedSecretAsync(ns, labelSelector: labelSelector, cancellationToken: cancellationToken)).Items.Select(i => i.Metadata?.Name),
                "PersistentVolumeClaim" => (await client.CoreV1.ListNamespacedPersistentVolumeClaimAsync(ns, labelSelector: labelSelector, cancellationToken: cancellationToken)).Items.Select(i => i.Metadata?.Name),
                "Service" => (await client.CoreV1.ListNamespacedServiceAsync(ns, labelSelector: labelSelector, cancellationToken: cancellationToken)).Items.Select(i => i.Metadata?.Name),
                "Deployment" => (await client.AppsV1.ListNamespacedDeploymentAsync(ns, labelSelector: labelSelector, cancellationToken: cancellationToken)).Items.Select(i => i.Metadata?.Name),
                "StatefulSet" => (await client.AppsV1.ListNamespacedStatefulSetAsync(ns, labelSelector: labelSelector, cancellationToken: cancellationToken)).Items.Select(i => i.Metadata?.Name),
                "Job" => (await client.BatchV1.ListNamespacedJobAsync(ns, labelSelector: labelSelector, cancellationToken: cancellationToken)).Items.Select(i => i.Metadata?.Name),
                "HorizontalPodAutoscaler" => (await client.AutoscalingV2.ListNamespacedHorizontalPodAutoscalerAsync(ns, labelSelector: labelSelector, cancellationToken: cancellationToken)).Items.Select(i => i.Metadata?.Name),
                "PodDisruptionBudget" => (await client.PolicyV1.ListNamespacedPodDisruptionBudgetAsync(ns, labelSelector: labelSelector, cancellationToken: cancellationToken)).Items.Select(i => i.Metadata?.Name),
                "Ingress" => (await client.NetworkingV1.ListNamespacedIngressAsync(ns, labelSelector: labelSelector, cancellationToken: cancellationToken)).Items.Select(i => i.Metadata?.Name),
                "DestinationRule" or "VirtualService" => CustomNames(await client.CustomObjects.ListNamespacedCustomObjectAsync(
                    apiVersion.Split('/')[0], apiVersion.Split('/')[1], ns, Plural(kind), labelSelector: labelSelector, cancellationToken: cancellationToken)),
                _ => throw new NotSupportedException($"berth does not list {kind} objects"),
            });
        }
        catch (KubernetesApiException e) when (e.Status == HttpStatusCode.NotFound)
        {
            return [];
        }

        return [.. names.OfType<string>().Order(StringComparer.Ordinal)];
    }

    // Custom objects come back as untyped JSON: { "items": [ { "metadata": { "name": … } } ] }.
    private static IEnumerable<string?> CustomNames(object list)
    {
        var json = list is JsonElement element ? element : JsonSerializer.SerializeToElement(list);
        if (!json.TryGetProperty("items", out var items) || items.ValueKind != JsonValueKind.Array)
        {
            return [];
        }

        return [.. items.EnumerateArray().Select(i => i.TryGetProperty("metadata", out var m) && m.TryGetProperty("name", out var n) ? n.GetString() : null)];
    }

    private static string Group(ManifestObject obj) => obj.ApiVersion.Split('/')[0];

    private static string Version(ManifestObject obj) => obj.ApiVersion.Split('/')[1];

    private static string Plural(string kind) => kind.ToLowerInvariant() + "s";

    private Task Call(ManifestObject obj, string ns, Func<Task> call) => Call(obj.Kind, obj.Name, ns, call);

    private async Task Call(string kind, string name, string ns, Func<Task> call)
    {
        try
        {
            await call();
        }
        catch (HttpOperationException e)
        {
            throw Describe(e, kind, name, ns);
        }
        catch (HttpRequestException e)
        {
            throw new KubernetesApiException($"cannot reach the cluster at {Host}: {e.Message}; check the kubeconfig context (--context) and that the API server is up", null, e);
        }
    }

    private KubernetesApiException Describe(HttpOperationException e, string kind, string name, string ns)
    {
        var status = e.Response.StatusCode;
        var serverMessage = (ServerMessage(e.Response.Content) ?? e.Message).Trim();
        var what = $"{kind.ToLowerInvariant()}/{name}";
        var text = status switch
        {
            HttpStatusCode.Unauthorized => $"{what}: the cluster at {Host} did not accept the credentials ({serverMessage}); refresh them (e.g. log in again) or pick another --context",
            HttpStatusCode.Forbidden when RbacDenial().IsMatch(serverMessage) =>
                $"{what}: not allowed in namespace '{ns}' ({serverMessage}); ask for a role that allows this on {kind} there, or use another --namespace",
            // Admission refuses with 403 too (a ResourceQuota, a PodSecurity or webhook policy): the server's message is the explanation.
            HttpStatusCode.Forbidden => $"{what}: the cluster refused it: {serverMessage}",
            HttpStatusCode.Conflict => $"{what}: another field manager owns some of these fields ({serverMessage}); re-run with --force-conflicts to take them over for 'berth'",
            HttpStatusCode.UnprocessableEntity => $"{what}: the cluster rejected it as invalid: {serverMessage}",
            HttpStatusCode.NotFound when kind is "DestinationRule" or "VirtualService" =>
                $"{what}: the cluster does not serve networking.istio.io/v1 ({serverMessage}); install Istio, or generate without --mesh istio",
            HttpStatusCode.NotFound => $"{what}: not found in namespace '{ns}' ({serverMessage})",
            _ => $"{what}: the cluster answered {(int)status} {status}: {serverMessage}",
        };
        return new KubernetesApiException(text, status, e);
    }

    // The API server answers errors with a Status object whose message says what is wrong.
    private static string? ServerMessage(string? content)
    {
        if (string.IsNullOrWhiteSpace(content))
        {
            return null;
        }

        try
        {
            using var doc = JsonDocument.Parse(content);
            return doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("message", out var m) ? m.GetString() : null;
        }
        catch (JsonException)
        {
            return content.Length > 300 ? content[..300] : content;
        }
    }
}
