using System.Collections.Immutable;
using System.Globalization;
using System.Text.Json;

namespace Berth.Kubernetes.Apply;

/// <summary>The live state of one object: <c>deployment/api</c>, e.g. "2/3 ready, 3 updated, 2 available; pod api-1: …".</summary>
public sealed record LiveState(string Object, bool Healthy, string State);

/// <summary>Fields of an object that another field manager changed after Berth's last apply, read from its managedFields.</summary>
public sealed record Drift(string Object, string Manager, string Operation, string? Time, ImmutableArray<string> Fields);

/// <summary>What <c>berth k8s status</c> shows: each workload and autoscaler, and drift.</summary>
public sealed record StatusReport(ImmutableArray<LiveState> Objects, ImmutableArray<Drift> Drift)
{
    public bool Unreachable { get; init; }
}

/// <summary>Reads live state and drift for the objects of a spec.</summary>
public sealed class ClusterStatus
{
    private readonly IKubernetesApi _api;

    internal ClusterStatus(IKubernetesApi api) => _api = api;

    public ClusterStatus(KubeConnection connection)
        : this(connection.Api)
    {
    }

    public async Task<StatusReport> ReadAsync(ManifestSet set, string ns, CancellationToken cancellationToken)
    {
        var states = ImmutableArray.CreateBuilder<LiveState>();
        var drift = ImmutableArray.CreateBuilder<Drift>();
        foreach (var obj in set.Objects.Where(o => o.Kind != "Namespace"))
        {
            var target = obj.Namespace ?? ns;
            try
            {
                var live = await _api.ReadAsync(obj.Kind, obj.ApiVersion, obj.Name, target, cancellationToken);
                if (live is null)
                {
                    if (obj.Kind is "Deployment" or "StatefulSet" or "Job" or "HorizontalPodAutoscaler")
                    {
                        states.Add(new LiveState(obj.DisplayName, false, "not on the cluster (run berth k8s apply)"));
                    }

                    continue;
                }

                using var doc = JsonDocument.Parse(live);
                drift.AddRange(DriftOf(obj.DisplayName, doc.RootElement));
                switch (obj.Kind)
                {
                    case "Deployment" or "StatefulSet" or "Job":
                        states.Add(await WorkloadAsync(obj, target, cancellationToken));
                        break;
                    case "HorizontalPodAutoscaler":
                        states.Add(Autoscaler(obj.DisplayName, doc.RootElement));
                        break;
                }
            }
            catch (KubernetesApiException e)
            {
                states.Add(new LiveState(obj.DisplayName, false, e.Message));
                if (e.Unreachable)
                {
                    return new StatusReport(states.ToImmutable(), drift.ToImmutable()) { Unreachable = true };
                }
            }
        }

        return new StatusReport(states.ToImmutable(), drift.ToImmutable());
    }

    private async Task<LiveState> WorkloadAsync(ManifestObject obj, string ns, CancellationToken cancellationToken)
    {
        string counts;
        WorkloadRolloutState state;
        switch (obj.Kind)
        {
            case "Deployment":
                {
                    var d = await _api.ReadDeploymentStatusAsync(obj.Name, ns, cancellationToken);
                    var s = d.Status;
                    counts = $"{s?.ReadyReplicas ?? 0}/{d.Spec?.Replicas ?? 1} ready, {s?.UpdatedReplicas ?? 0} updated, {s?.AvailableReplicas ?? 0} available";
                    state = WorkloadRollout.Evaluate(d);
                    break;
                }

            case "StatefulSet":
                {
                    var d = await _api.ReadStatefulSetStatusAsync(obj.Name, ns, cancellationToken);
                    var s = d.Status;
                    counts = $"{s?.ReadyReplicas ?? 0}/{d.Spec?.Replicas ?? 1} ready, {s?.UpdatedReplicas ?? 0} updated, {s?.AvailableReplicas ?? 0} available";
                    state = WorkloadRollout.Evaluate(d);
                    break;
                }

            default:
                {
                    var j = await _api.ReadJobStatusAsync(obj.Name, ns, cancellationToken);
                    counts = $"{j.Status?.Succeeded ?? 0} succeeded, {j.Status?.Active ?? 0} active, {j.Status?.Failed ?? 0} failed";
                    state = WorkloadRollout.Evaluate(j);
                    break;
                }
        }

        var text = $"{counts}; {state.Message}";
        var selector = obj.Object switch
        {
            k8s.Models.V1Deployment d => d.Spec.Selector.MatchLabels,
            k8s.Models.V1StatefulSet s => s.Spec.Selector.MatchLabels,
            k8s.Models.V1Job j => j.Spec.Template.Metadata.Labels.Where(kv => kv.Key is ManifestGenerator.NameLabel or ManifestGenerator.PartOfLabel).ToDictionary(),
            _ => new Dictionary<string, string>(),
        };
        if (!state.Done && selector.Count > 0)
        {
            var (reasons, _) = WorkloadRollout.PodProblems(await _api.ListPodsAsync(ns, string.Join(',', selector.Select(kv => $"{kv.Key}={kv.Value}")), cancellationToken));
            if (reasons.Count > 0)
            {
                text += "; " + string.Join("; ", reasons);
            }
        }

        return new LiveState(obj.DisplayName, state.Done, text);
    }

    // "3 replicas (desired 3, min 2, max 10); cpu 45% (target 80%)"
    private static LiveState Autoscaler(string name, JsonElement hpa)
    {
        var spec = hpa.TryGetProperty("spec", out var sp) ? sp : default;
        var status = hpa.TryGetProperty("status", out var st) ? st : default;
        var current = Int(status, "currentReplicas");
        var desired = Int(status, "desiredReplicas");
        var text = $"{current?.ToString(CultureInfo.InvariantCulture) ?? "?"} replicas (desired {desired?.ToString(CultureInfo.InvariantCulture) ?? "?"}, min {Int(spec, "minReplicas") ?? 1}, max {Int(spec, "maxReplicas")})";
        var targets = spec.ValueKind == JsonValueKind.Object && spec.TryGetProperty("metrics", out var m) ? m.EnumerateArray().ToList() : [];
        var currents = status.ValueKind == JsonValueKind.Object && status.TryGetProperty("currentMetrics", out var c) && c.ValueKind == JsonValueKind.Array ? c.EnumerateArray().ToList() : [];
        foreach (var target in targets)
        {
            var (metric, goal) = Metric(target, "target");
            var now = currents.Select(x => Metric(x, "current")).FirstOrDefault(x => x.Name == metric).Value;
            text += $"; {metric} {now ?? "unknown"} (target {goal})";
        }

        return new LiveState(name, current is not null && current == desired, text);
    }

    private static (string Name, string? Value) Metric(JsonElement metric, string side)
    {
        foreach (var kind in new[] { "resource", "pods", "object", "external" })
        {
            if (metric.TryGetProperty(kind, out var body))
            {
                var name = body.TryGetProperty("name", out var n) ? n.GetString()! : body.TryGetProperty("metric", out var mm) && mm.TryGetProperty("name", out var mn) ? mn.GetString()! : kind;
                if (!body.TryGetProperty(side, out var v))
                {
                    return (name, null);
                }

                if (v.TryGetProperty("averageUtilization", out var u))
                {
                    return (name, $"{u.GetInt32()}%");
                }

                return (name, v.TryGetProperty("averageValue", out var av) ? av.ToString() : v.TryGetProperty("value", out var val) ? val.ToString() : null);
            }
        }

        return ("metric", null);
    }

    private static int? Int(JsonElement obj, string name) =>
        obj.ValueKind == JsonValueKind.Object && obj.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetInt32() : null;

    /// <summary>Drift: managedFields entries of other managers, written after Berth's own apply (not the status subresource, which controllers own).</summary>
    internal static IEnumerable<Drift> DriftOf(string name, JsonElement obj)
    {
        if (!obj.TryGetProperty("metadata", out var meta) || !meta.TryGetProperty("managedFields", out var managed) || managed.ValueKind != JsonValueKind.Array)
        {
            yield break;
        }

        var entries = managed.EnumerateArray().ToList();
        var ours = entries.FirstOrDefault(e => Str(e, "manager") == GenerateDefaults.FieldManager && Str(e, "operation") == "Apply");
        if (ours.ValueKind != JsonValueKind.Object)
        {
            yield break;
        }

        var since = Str(ours, "time");
        foreach (var entry in entries)
        {
            var manager = Str(entry, "manager");
            if (manager == GenerateDefaults.FieldManager || Str(entry, "subresource") == "status")
            {
                continue;
            }

            var time = Str(entry, "time");
            // RFC 3339 UTC times of one server compare as text; an entry without a time cannot be placed, so it is shown.
            if (since is not null && time is not null && string.CompareOrdinal(time, since) <= 0)
            {
                continue;
            }

            var fields = entry.TryGetProperty("fieldsV1", out var f) ? FieldPaths(f, "").ToImmutableArray() : [];
            if (fields.Length > 0)
            {
                yield return new Drift(name, manager ?? "?", Str(entry, "operation") ?? "?", time, fields);
            }
        }
    }

    private static string? Str(JsonElement e, string name) => e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    // FieldsV1 → ".spec.replicas", ".spec.template.spec.containers[name=api].image"; a "." key marks the parent itself, not a leaf of it.
    private static IEnumerable<string> FieldPaths(JsonElement set, string prefix)
    {
        var children = set.EnumerateObject().Where(p => p.Name != ".").ToList();
        if (children.Count == 0)
        {
            if (prefix.Length > 0)
            {
                yield return prefix;
            }

            yield break;
        }

        foreach (var p in children)
        {
            var segment = p.Name switch
            {
                var n when n.StartsWith("f:", StringComparison.Ordinal) => "." + n[2..],
                var n when n.StartsWith("k:", StringComparison.Ordinal) => $"[{Key(n[2..])}]",
                var n when n.StartsWith("v:", StringComparison.Ordinal) => $"[={n[2..]}]",
                var n when n.StartsWith("i:", StringComparison.Ordinal) => $"[{n[2..]}]",
                var n => "." + n,
            };
            foreach (var path in FieldPaths(p.Value, prefix + segment))
            {
                yield return path;
            }
        }
    }

    // k:{"name":"api"} → name=api
    private static string Key(string json)
    {
        try
        {
            using var doc = JsonDocument.Parse(json);
            return string.Join(",", doc.RootElement.EnumerateObject().Select(p => $"{p.Name}={p.Value}"));
        }
        catch (JsonException)
        {
            return json;
        }
    }
}
