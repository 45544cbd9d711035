using System.Collections.Immutable;
using k8s;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Berth.Kubernetes.Apply;

/// <summary>Options of <c>berth k8s apply</c> and <c>delete</c>.</summary>
public sealed record ApplyOptions
{
    /// <summary>Send every request with dryRun=All: the server validates and admits, nothing is stored, no rollout is waited for.</summary>
    public bool DryRun { get; init; }

    /// <summary>Take over fields another manager owns (kubectl's --force-conflicts). Off, as kubectl.</summary>
    public bool ForceConflicts { get; init; }

    /// <summary>apply: wait for each Deployment and StatefulSet to roll out, and each Job to complete, as <c>kubectl rollout status</c> after apply.
    /// delete: wait until each deleted object is gone (its finalizers done), as <c>kubectl delete --wait</c>. On, as kubectl.</summary>
    public bool Wait { get; init; } = true;

    /// <summary>How often rollout status is read: 2s (kubectl watches; polling every 2s is as prompt and simpler to bound).</summary>
    public TimeSpan PollInterval { get; init; } = ApplyDefaults.PollInterval;

    /// <summary>Longest wait for one rollout (or, for delete, for the objects to be gone); null: the Deployment's progressDeadlineSeconds (600s, as Kubernetes), 600s for a StatefulSet.</summary>
    public TimeSpan? Timeout { get; init; }

    /// <summary>Fail a rollout as soon as a pod reports a reason in <see cref="WorkloadRollout.FatalReasons"/> (CrashLoopBackOff, ImagePullBackOff, …).</summary>
    public bool FailFast { get; init; } = true;

    /// <summary>After a successful apply, delete this app's objects (by its <c>part-of</c> and <c>managed-by: berth</c> labels)
    /// that the spec no longer produces, as <c>kubectl apply --prune</c>. Claims only with <see cref="DeleteVolumes"/>. Off, as kubectl.</summary>
    public bool Prune { get; init; }

    /// <summary><c>delete</c> only: also delete PersistentVolumeClaims, as <c>docker compose down --volumes</c>. Off: data stays.</summary>
    public bool DeleteVolumes { get; init; }
}

/// <summary>Defaults of apply, each named after the peer it follows.</summary>
public static class ApplyDefaults
{
    public static readonly TimeSpan PollInterval = TimeSpan.FromSeconds(2);

    /// <summary>600s, as a Deployment's default progressDeadlineSeconds.</summary>
    public static readonly TimeSpan RolloutTimeout = TimeSpan.FromSeconds(600);
}

/// <summary>What happened to one object.</summary>
public sealed record ObjectOutcome(string Object, bool Succeeded, string Message)
{
    /// <summary>Neither applied nor refused: the dry run could not check it (its namespace does not exist yet).</summary>
    public bool NotChecked { get; init; }
}

/// <summary>What apply or delete did: one outcome per object and one per rollout waited for.</summary>
public sealed record ApplyResult(ImmutableArray<ObjectOutcome> Objects, ImmutableArray<ObjectOutcome> Rollouts)
{
    public bool Succeeded => Objects.All(o => o.Succeeded) && Rollouts.All(r => r.Succeeded);

    /// <summary>True when the cluster could not be reached at all.</summary>
    public bool Unreachable { get; init; }
}

/// <summary>One object's diff: empty when apply would change nothing; <see cref="Error"/> when the server refused the dry run.</summary>
public sealed record ObjectDiff(string Object, string Diff, string? Error);

/// <summary>What <c>berth k8s diff</c> found: a diff per object, and the objects <c>--prune</c> would remove (with their live state as removed lines).</summary>
public sealed record DiffResult(ImmutableArray<ObjectDiff> Objects, ImmutableArray<ObjectDiff> PruneCandidates)
{
    public bool Unreachable { get; init; }

    public bool Failed => Unreachable || Objects.Any(o => o.Error is not null);

    /// <summary>Whether apply would change something; with <paramref name="prune"/>, removals count too, as <c>kubectl diff --prune</c>.</summary>
    public bool HasDifferences(bool prune) => Objects.Any(o => o.Diff.Length > 0) || (prune && PruneCandidates.Length > 0);
}

/// <summary>Applies generated objects with server-side apply (field manager <c>berth</c>), waits for rollouts, deletes.</summary>
public sealed partial class ClusterApplier
{
    private readonly IKubernetesApi _api;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;

    internal ClusterApplier(IKubernetesApi api, TimeProvider? time = null, ILogger? logger = null)
    {
        _api = api;
        _time = time ?? TimeProvider.System;
        _logger = logger ?? NullLogger.Instance;
    }

    public ClusterApplier(KubeConnection connection, TimeProvider? time = null, ILogger? logger = null)
        : this(connection.Api, time, logger)
    {
    }

    /// <summary>Applies every object in order into <paramref name="ns"/> (objects that name their own namespace keep it), then waits for the rollouts.
    /// Progress lines (<c>deployment/api: 1 of 3 replicas updated</c>) go to <paramref name="progress"/>.</summary>
    public async Task<ApplyResult> ApplyAsync(ManifestSet set, string ns, ApplyOptions options, IProgress<string>? progress, CancellationToken cancellationToken)
    {
        var outcomes = ImmutableArray.CreateBuilder<ObjectOutcome>();
        var suffix = options.DryRun ? " (server dry run)" : "";
        HashSet<string> absent;
        try
        {
            absent = options.DryRun ? await AbsentNamespacesAsync(set, ns, cancellationToken) : [];
        }
        catch (KubernetesApiException e) when (e.Unreachable)
        {
            return new ApplyResult([new ObjectOutcome("cluster", false, e.Message)], []) { Unreachable = true };
        }

        foreach (var obj in set.Objects)
        {
            var target = obj.Namespace ?? ns;
            if (obj.Kind != "Namespace" && absent.Contains(target))
            {
                // A dry run creates nothing, so the server would refuse every object of a namespace that is not there yet.
                var why = $"not checked: namespace '{target}' does not exist yet, and a dry run creates none";
                outcomes.Add(new ObjectOutcome(obj.DisplayName, true, why) { NotChecked = true });
                progress?.Report($"{obj.DisplayName}: {why}");
                continue;
            }

            try
            {
                await _api.ApplyAsync(obj, target, options.DryRun, options.ForceConflicts, cancellationToken);
                outcomes.Add(new ObjectOutcome(obj.DisplayName, true, "applied" + suffix));
                Log.Applied(_logger, obj.DisplayName, target, options.DryRun);
                progress?.Report($"{obj.DisplayName}: applied{suffix}");
            }
            catch (KubernetesApiException e)
            {
                outcomes.Add(new ObjectOutcome(obj.DisplayName, false, e.Message));
                Log.ApplyFailed(_logger, obj.DisplayName, e.Message);
                progress?.Report($"{obj.DisplayName}: failed: {e.Message}");
                if (e.Unreachable)
                {
                    return new ApplyResult(outcomes.ToImmutable(), []) { Unreachable = true };
                }
            }
        }

        if (options.Prune && outcomes.All(o => o.Succeeded))
        {
            await PruneAsync(set, ns, options, outcomes, progress, cancellationToken);
        }

        var applied = outcomes.ToImmutable();
        if (options.DryRun || !options.Wait || applied.Any(o => !o.Succeeded))
        {
            return new ApplyResult(applied, []);
        }

        var rollouts = ImmutableArray.CreateBuilder<ObjectOutcome>();
        foreach (var obj in set.Objects.Where(o => o.Kind is "Deployment" or "StatefulSet" or "Job"))
        {
            rollouts.Add(await WaitForRolloutAsync(obj, obj.Namespace ?? ns, options, progress, cancellationToken));
        }

        return new ApplyResult(applied, rollouts.ToImmutable());
    }

    /// <summary>The namespaces the objects go to that the cluster says do not exist (a namespace it will not say anything about counts as present).</summary>
    internal async Task<HashSet<string>> AbsentNamespacesAsync(ManifestSet set, string ns, CancellationToken cancellationToken)
    {
        var absent = new HashSet<string>(StringComparer.Ordinal);
        foreach (var target in set.Objects.Where(o => o.Kind != "Namespace").Select(o => o.Namespace ?? ns).Distinct(StringComparer.Ordinal))
        {
            if (await _api.NamespaceExistsAsync(target, cancellationToken) == false)
            {
                absent.Add(target);
            }
        }

        return absent;
    }

    /// <summary>Deletes the objects in reverse order; missing ones are fine. Namespaces are left alone (they may hold more than this app),
    /// and so are PersistentVolumeClaims unless <see cref="ApplyOptions.DeleteVolumes"/>.</summary>
    public async Task<ApplyResult> DeleteAsync(ManifestSet set, string ns, ApplyOptions options, IProgress<string>? progress, CancellationToken cancellationToken)
    {
        var outcomes = ImmutableArray.CreateBuilder<ObjectOutcome>();
        var pending = new List<(ManifestObject Object, int Index)>();
        var suffix = options.DryRun ? " (server dry run)" : "";
        foreach (var obj in set.Objects.Reverse())
        {
            if (obj.Kind == "Namespace" || (obj.Kind == "PersistentVolumeClaim" && !options.DeleteVolumes))
            {
                var why = obj.Kind == "Namespace" ? "kept: it may hold more than this app" : "kept: it holds data (pass --volumes to delete it)";
                outcomes.Add(new ObjectOutcome(obj.DisplayName, true, why));
                progress?.Report($"{obj.DisplayName}: {why}");
                continue;
            }

            try
            {
                var existed = await _api.DeleteAsync(obj, obj.Namespace ?? ns, options.DryRun, cancellationToken);
                var message = (existed ? (options.DryRun || options.Wait ? "deleted" : "deletion requested (not waited for)") : "not found") + suffix;
                if (existed && options.Wait && !options.DryRun)
                {
                    pending.Add((obj, outcomes.Count));
                }

                outcomes.Add(new ObjectOutcome(obj.DisplayName, true, message));
                Log.Deleted(_logger, obj.DisplayName, obj.Namespace ?? ns, existed);
                progress?.Report($"{obj.DisplayName}: {message}");
            }
            catch (KubernetesApiException e)
            {
                outcomes.Add(new ObjectOutcome(obj.DisplayName, false, e.Message));
                progress?.Report($"{obj.DisplayName}: failed: {e.Message}");
                if (e.Unreachable)
                {
                    return new ApplyResult(outcomes.ToImmutable(), []) { Unreachable = true };
                }
            }
        }

        if (pending.Count > 0)
        {
            var unreachable = await WaitUntilGoneAsync(pending, ns, options, outcomes, progress, cancellationToken);
            return new ApplyResult(outcomes.ToImmutable(), []) { Unreachable = unreachable };
        }

        return new ApplyResult(outcomes.ToImmutable(), []);
    }

    // As kubectl delete --wait (its default): an object with finalizers (a claim's kubernetes.io/pvc-protection while a pod mounts it)
    // is only marked for deletion; it is gone when the finalizers are done.
    private async Task<bool> WaitUntilGoneAsync(List<(ManifestObject Object, int Index)> pending, string ns, ApplyOptions options, ImmutableArray<ObjectOutcome>.Builder outcomes, IProgress<string>? progress, CancellationToken cancellationToken)
    {
        var timeout = options.Timeout ?? ApplyDefaults.RolloutTimeout;
        var started = _time.GetTimestamp();
        var lastState = new Dictionary<string, string>(StringComparer.Ordinal);
        while (true)
        {
            foreach (var (obj, index) in pending.ToList())
            {
                string? live;
                try
                {
                    live = await _api.ReadAsync(obj.Kind, obj.ApiVersion, obj.Name, obj.Namespace ?? ns, cancellationToken);
                }
                catch (KubernetesApiException e)
                {
                    outcomes[index] = new ObjectOutcome(obj.DisplayName, false, $"deletion requested, but its state cannot be read: {e.Message}");
                    pending.Remove((obj, index));
                    if (e.Unreachable)
                    {
                        return true;
                    }

                    continue;
                }

                if (live is null)
                {
                    pending.Remove((obj, index));
                    outcomes[index] = new ObjectOutcome(obj.DisplayName, true, "deleted");
                    if (lastState.ContainsKey(obj.DisplayName))
                    {
                        progress?.Report($"{obj.DisplayName}: deleted");
                    }

                    continue;
                }

                var state = Terminating(live);
                outcomes[index] = new ObjectOutcome(obj.DisplayName, false, $"still terminating after {Core.Model.Durations.Format(timeout)}: {state}");
                if (lastState.GetValueOrDefault(obj.DisplayName) != state)
                {
                    lastState[obj.DisplayName] = state;
                    progress?.Report($"{obj.DisplayName}: {state}");
                }
            }

            if (pending.Count == 0)
            {
                return false;
            }

            var waited = _time.GetElapsedTime(started);
            if (waited >= timeout)
            {
                return false; // the pending outcomes already say what is still terminating
            }

            var delay = options.PollInterval < timeout - waited ? options.PollInterval : timeout - waited;
            await Task.Delay(delay, _time, cancellationToken);
        }
    }

    // "terminating, waiting for finalizers: kubernetes.io/pvc-protection"
    private static string Terminating(string json)
    {
        using var doc = System.Text.Json.JsonDocument.Parse(json);
        var finalizers = doc.RootElement.TryGetProperty("metadata", out var meta) && meta.TryGetProperty("finalizers", out var f) && f.ValueKind == System.Text.Json.JsonValueKind.Array
            ? [.. f.EnumerateArray().Select(e => e.GetString() ?? "")]
            : Array.Empty<string>();
        var hint = finalizers.Contains("kubernetes.io/pvc-protection") ? " (a pod still mounts the claim)" : "";
        return finalizers.Length > 0
            ? $"terminating, waiting for finalizers: {string.Join(", ", finalizers)}{hint}"
            : "terminating";
    }

    // Kinds Berth generates, in apply order, with the group/version it writes them in.
    private static readonly (string Kind, string ApiVersion)[] PrunableKinds =
    [
        ("ConfigMap", "v1"), ("Secret", "v1"), ("PersistentVolumeClaim", "v1"), ("Service", "v1"), ("Deployment", "apps/v1"),
        ("StatefulSet", "apps/v1"), ("Job", "batch/v1"), ("HorizontalPodAutoscaler", "autoscaling/v2"), ("PodDisruptionBudget", "policy/v1"),
        ("Ingress", "networking.k8s.io/v1"), ("DestinationRule", "networking.istio.io/v1"), ("VirtualService", "networking.istio.io/v1"),
    ];

    private async Task PruneAsync(ManifestSet set, string ns, ApplyOptions options, ImmutableArray<ObjectOutcome>.Builder outcomes, IProgress<string>? progress, CancellationToken cancellationToken)
    {
        var suffix = options.DryRun ? " (server dry run)" : "";
        var (stale, failures) = await PruneCandidatesAsync(set, ns, options.DeleteVolumes, cancellationToken);
        foreach (var failure in failures)
        {
            outcomes.Add(failure);
            progress?.Report($"{failure.Object}: {failure.Message}");
        }

        foreach (var obj in stale)
        {
            try
            {
                var existed = await _api.DeleteAsync(obj, ns, options.DryRun, cancellationToken);
                var message = (existed ? "pruned: the spec no longer has it" : "already gone") + suffix;
                outcomes.Add(new ObjectOutcome(obj.DisplayName, true, message));
                progress?.Report($"{obj.DisplayName}: {message}");
            }
            catch (KubernetesApiException e)
            {
                outcomes.Add(new ObjectOutcome(obj.DisplayName, false, $"prune failed: {e.Message}"));
                progress?.Report($"{obj.DisplayName}: prune failed: {e.Message}");
            }
        }
    }

    /// <summary>This app's objects in <paramref name="ns"/> (by its part-of and managed-by labels) that the spec no longer produces, in delete order:
    /// what <c>--prune</c> removes. A kind the cluster does not serve (Istio) is skipped; a kind that cannot be listed is a failure.</summary>
    internal async Task<(IReadOnlyList<ManifestObject> Stale, IReadOnlyList<ObjectOutcome> Failures)> PruneCandidatesAsync(ManifestSet set, string ns, bool includeClaims, CancellationToken cancellationToken)
    {
        var partOf = set.Objects
            .Select(o => o.Object.Metadata.Labels is { } labels && labels.TryGetValue(ManifestGenerator.PartOfLabel, out var v) ? v : null)
            .FirstOrDefault(v => v is not null);
        var stale = new List<ManifestObject>();
        var failures = new List<ObjectOutcome>();
        if (partOf is null)
        {
            return (stale, failures);
        }

        var selector = $"{ManifestGenerator.ManagedByLabel}=berth,{ManifestGenerator.PartOfLabel}={partOf}";
        foreach (var (kind, apiVersion) in PrunableKinds.Reverse())
        {
            if (kind == "PersistentVolumeClaim" && !includeClaims)
            {
                continue;
            }

            try
            {
                foreach (var name in await _api.ListNamesAsync(kind, apiVersion, ns, selector, cancellationToken))
                {
                    if (!set.Objects.Any(o => o.Kind == kind && o.Name == name && (o.Namespace ?? ns) == ns))
                    {
                        stale.Add(new ManifestObject(name, new ObjectReference(apiVersion, kind, name, ns)));
                    }
                }
            }
            catch (KubernetesApiException e)
            {
                failures.Add(new ObjectOutcome($"{kind.ToLowerInvariant()}/*", false, $"prune failed: {e.Message}"));
            }
        }

        return (stale, failures);
    }

    /// <summary>What <c>apply</c> would change: each object's live state (managed fields hidden) against the server's dry run of the apply,
    /// as a unified diff, as <c>kubectl diff --server-side</c>; and what <c>--prune</c> would remove.</summary>
    public async Task<DiffResult> DiffAsync(ManifestSet set, string ns, ApplyOptions options, CancellationToken cancellationToken)
    {
        var objects = ImmutableArray.CreateBuilder<ObjectDiff>();
        HashSet<string> absent;
        try
        {
            absent = await AbsentNamespacesAsync(set, ns, cancellationToken);
        }
        catch (KubernetesApiException e) when (e.Unreachable)
        {
            return new DiffResult([new ObjectDiff("cluster", "", e.Message)], []) { Unreachable = true };
        }

        foreach (var obj in set.Objects)
        {
            var target = obj.Namespace ?? ns;
            var file = $"{obj.ApiVersion.Replace('/', '.')}.{obj.Kind}.{(obj.Kind == "Namespace" ? "" : target + ".")}{obj.Name}";
            try
            {
                string? live;
                string merged;
                if (obj.Kind != "Namespace" && absent.Contains(target))
                {
                    // Nothing is there, and the server cannot dry-run into a namespace that does not exist: the object as generated.
                    live = null;
                    merged = obj.ToJson();
                }
                else
                {
                    live = await _api.ReadAsync(obj.Kind, obj.ApiVersion, obj.Name, target, cancellationToken);
                    merged = await _api.ApplyAsync(obj, target, dryRun: true, options.ForceConflicts, cancellationToken);
                }

                (live, var shown) = UnifiedDiff.MaskSecretData(live, merged);
                var diff = UnifiedDiff.Create(UnifiedDiff.ObjectYaml(live), UnifiedDiff.ObjectYaml(shown), $"live/{file}", $"merged/{file}");
                objects.Add(new ObjectDiff(obj.DisplayName, diff, null));
            }
            catch (KubernetesApiException e)
            {
                objects.Add(new ObjectDiff(obj.DisplayName, "", e.Message));
                if (e.Unreachable)
                {
                    return new DiffResult(objects.ToImmutable(), []) { Unreachable = true };
                }
            }
        }

        var (stale, failures) = await PruneCandidatesAsync(set, ns, options.DeleteVolumes, cancellationToken);
        objects.AddRange(failures.Select(f => new ObjectDiff(f.Object, "", f.Message)));
        var prune = ImmutableArray.CreateBuilder<ObjectDiff>();
        foreach (var obj in stale)
        {
            var (live, _) = UnifiedDiff.MaskSecretData(await _api.ReadAsync(obj.Kind, obj.ApiVersion, obj.Name, ns, cancellationToken), null);
            var file = $"{obj.ApiVersion.Replace('/', '.')}.{obj.Kind}.{ns}.{obj.Name}";
            prune.Add(new ObjectDiff(obj.DisplayName, UnifiedDiff.Create(UnifiedDiff.ObjectYaml(live), "", $"live/{file}", $"merged/{file}"), null));
        }

        return new DiffResult(objects.ToImmutable(), prune.ToImmutable());
    }

    /// <summary>Just enough of an object to delete it by kind and name.</summary>
    private sealed class ObjectReference(string apiVersion, string kind, string name, string ns) : IKubernetesObject<k8s.Models.V1ObjectMeta>
    {
        public string ApiVersion { get; set; } = apiVersion;

        public string Kind { get; set; } = kind;

        public k8s.Models.V1ObjectMeta Metadata { get; set; } = new() { Name = name, NamespaceProperty = ns };
    }

    internal async Task<ObjectOutcome> WaitForRolloutAsync(ManifestObject obj, string ns, ApplyOptions options, IProgress<string>? progress, CancellationToken cancellationToken)
    {
        var timeout = options.Timeout
            ?? (obj.Object is k8s.Models.V1Deployment { Spec.ProgressDeadlineSeconds: { } seconds } ? TimeSpan.FromSeconds(seconds) : ApplyDefaults.RolloutTimeout);
        var started = _time.GetTimestamp();
        var selector = string.Join(',', Selector(obj).Select(kv => $"{kv.Key}={kv.Value}"));
        string? lastMessage = null;
        IReadOnlyList<string> lastReasons = [];
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            WorkloadRolloutState state;
            try
            {
                state = obj.Kind switch
                {
                    "Deployment" => WorkloadRollout.Evaluate(await _api.ReadDeploymentStatusAsync(obj.Name, ns, cancellationToken)),
                    "StatefulSet" => WorkloadRollout.Evaluate(await _api.ReadStatefulSetStatusAsync(obj.Name, ns, cancellationToken)),
                    _ => WorkloadRollout.Evaluate(await _api.ReadJobStatusAsync(obj.Name, ns, cancellationToken)),
                };
                if (!state.Done && selector.Length > 0)
                {
                    var (reasons, fatal) = WorkloadRollout.PodProblems(await _api.ListPodsAsync(ns, selector, cancellationToken));
                    lastReasons = reasons;
                    if (fatal && options.FailFast)
                    {
                        state = WorkloadRolloutState.Failure($"{state.Message}; {string.Join("; ", reasons)}");
                    }
                    else if (reasons.Count > 0)
                    {
                        state = WorkloadRolloutState.Progressing($"{state.Message}; {string.Join("; ", reasons)}");
                    }
                }
            }
            catch (KubernetesApiException e)
            {
                return new ObjectOutcome(obj.DisplayName, false, e.Message);
            }

            if (state.Message != lastMessage)
            {
                progress?.Report($"{obj.DisplayName}: {state.Message}");
                Log.Rollout(_logger, obj.DisplayName, state.Message);
                lastMessage = state.Message;
            }

            if (state.Done)
            {
                return new ObjectOutcome(obj.DisplayName, true, $"rolled out: {state.Message}");
            }

            if (state.Failed)
            {
                return new ObjectOutcome(obj.DisplayName, false, $"rollout failed: {state.Message}");
            }

            var waited = _time.GetElapsedTime(started);
            if (waited >= timeout)
            {
                var why = lastReasons.Count > 0 ? string.Join("; ", lastReasons) : state.Message;
                return new ObjectOutcome(obj.DisplayName, false, $"rollout did not finish within {Core.Model.Durations.Format(timeout)}: {why}");
            }

            var delay = options.PollInterval < timeout - waited ? options.PollInterval : timeout - waited;
            await Task.Delay(delay, _time, cancellationToken);
        }
    }

    private static IDictionary<string, string> Selector(ManifestObject obj) => obj.Object switch
    {
        k8s.Models.V1Deployment d => d.Spec.Selector.MatchLabels,
        k8s.Models.V1StatefulSet s => s.Spec.Selector.MatchLabels,
        // A Job's own selector is generated by the cluster; its pods carry the template's name and part-of labels.
        k8s.Models.V1Job j => j.Spec.Template.Metadata.Labels.Where(kv => kv.Key is ManifestGenerator.NameLabel or ManifestGenerator.PartOfLabel).ToDictionary(),
        _ => new Dictionary<string, string>(),
    };

    private static partial class Log
    {
        [LoggerMessage(EventId = 7001, Level = LogLevel.Information, Message = "Applied {Object} in {Namespace} (dry run: {DryRun})")]
        public static partial void Applied(ILogger logger, string @object, string @namespace, bool dryRun);

        [LoggerMessage(EventId = 7002, Level = LogLevel.Warning, Message = "Apply of {Object} failed: {Reason}")]
        public static partial void ApplyFailed(ILogger logger, string @object, string reason);

        [LoggerMessage(EventId = 7003, Level = LogLevel.Information, Message = "Rollout of {Object}: {State}")]
        public static partial void Rollout(ILogger logger, string @object, string state);

        [LoggerMessage(EventId = 7004, Level = LogLevel.Information, Message = "Deleted {Object} in {Namespace} (existed: {Existed})")]
        public static partial void Deleted(ILogger logger, string @object, string @namespace, bool existed);
    }
}
