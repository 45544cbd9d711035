using System.Text.Encodings.Web;
using System.Text.Json;
using Berth.Core.Model;
using YamlDotNet.Serialization;

namespace Berth.Core.Loading;

/// <summary>Writes an <see cref="Application"/> as the normalized spec that <c>berth config</c> prints: berth.yaml syntax with
/// every default spelled out, interpolation done and env files merged, so the YAML loads back to the same model.</summary>
public static class SpecWriter
{
    /// <summary>What secret env values are replaced with.</summary>
    public const string Mask = "***";

    /// <summary>berth.yaml syntax. A literal <c>$</c> is written <c>$$</c> (as <c>docker compose config</c> does), so loading the
    /// output again does not interpolate what was already interpolated.</summary>
    public static string ToYaml(Application app, bool showSecrets = false) =>
        new SerializerBuilder().WithQuotingNecessaryStrings().DisableAliases().Build().Serialize(EscapeDollars(ToTree(app, showSecrets)));

    private static object? EscapeDollars(object? value) => value switch
    {
        string s => s.Replace("$", "$$", StringComparison.Ordinal),
        OrderedDictionary<string, object?> map => map.Aggregate(new OrderedDictionary<string, object?>(), (copy, kv) =>
        {
            copy[kv.Key] = EscapeDollars(kv.Value);
            return copy;
        }),
        List<object?> list => list.Select(EscapeDollars).ToList(),
        List<string> list => list.Select(EscapeDollars).ToList(),
        List<OrderedDictionary<string, object?>> list => list.Select(EscapeDollars).ToList(),
        _ => value,
    };

    public static string ToJson(Application app, bool showSecrets = false) =>
        JsonSerializer.Serialize(ToTree(app, showSecrets), JsonOptions) + "\n";

    private static readonly JsonSerializerOptions JsonOptions = new()
    {
        WriteIndented = true,
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    /// <summary>The normalized spec as ordered maps, lists and scalars.</summary>
    public static OrderedDictionary<string, object?> ToTree(Application app, bool showSecrets = false)
    {
        var root = new OrderedDictionary<string, object?>
        {
            ["name"] = app.Name,
            ["scheduler"] = Name(SpecReader.SchedulerNames, app.Scheduler),
        };
        if (!app.Nodes.IsEmpty)
        {
            root["nodes"] = app.Nodes.Select(n => Map(("name", n.Name), ("cpu", n.Cpu.ToString()), ("memory", n.Memory.ToString()),
                ("labels", n.Labels.IsEmpty ? null : Strings(n.Labels)))).ToList();
        }

        if (app.Telemetry != TelemetrySpec.Default)
        {
            var t = app.Telemetry;
            root["telemetry"] = Map(("otlp_endpoint", t.OtlpEndpoint?.ToString()), ("max_spans", t.MaxSpans), ("max_logs", t.MaxLogs), ("max_metric_points", t.MaxMetricPoints));
        }

        var services = new OrderedDictionary<string, object?>();
        foreach (var service in app.Services)
        {
            services[service.Name] = ServiceTree(service, showSecrets);
        }

        root["services"] = services;
        if (!app.Volumes.IsEmpty)
        {
            var mounts = app.Services.SelectMany(s => s.Volumes).Where(m => m.Type == VolumeType.Volume && m.Source is not null).ToList();
            root["volumes"] = app.Volumes.ToDictionary(v => v, v => (object?)(mounts.FirstOrDefault(m => m.Source == v) is { } m
                ? Map(("name", m.External || m.VolumeName != $"{app.Name}_{v}" ? m.VolumeName : null), ("external", m.External ? true : null))
                : new OrderedDictionary<string, object?>())).ToOrdered();
        }

        foreach (var (key, kind) in new[] { ("secrets", MountedFileKind.Secret), ("configs", MountedFileKind.Config) })
        {
            var files = app.Services.SelectMany(s => s.Files).Where(f => f.Kind == kind).DistinctBy(f => f.Name).ToList();
            if (files.Count > 0)
            {
                root[key] = files.ToDictionary(f => f.Name, f => (object?)Map(("file", f.SourceFile),
                    ("content", f.Content is null ? null : kind == MountedFileKind.Secret && !showSecrets ? Mask : f.Content))).ToOrdered();
            }
        }

        if (!app.Pipelines.IsEmpty)
        {
            // Pipelines stay in their source; this says where (an x- key, so the output still loads).
            root["x-pipelines"] = app.Pipelines.ToDictionary(p => p.Name, p => (object?)Map(("file", p.SourceFile), ("line", p.Line), ("column", p.Column))).ToOrdered();
        }

        return root;
    }

    private static OrderedDictionary<string, object?> ServiceTree(Service s, bool showSecrets)
    {
        var tree = Map(
            ("runtime", Name(SpecReader.RuntimeNames, s.EffectiveRuntime)),
            ("image", s.Image),
            ("build", s.Build is { } b ? Map(("context", b.Context), ("dockerfile", b.Dockerfile), ("args", b.Args.IsEmpty ? null : Strings(b.Args)),
                ("target", b.Target), ("command", b.Command.IsDefaultOrEmpty ? null : b.Command.ToList()), ("working_dir", b.WorkingDir)) : null),
            ("develop", s.Watch.IsDefaultOrEmpty && !s.HotReload ? null : Map(("hot_reload", s.HotReload ? true : null), ("watch", s.Watch.IsDefaultOrEmpty ? null : s.Watch.Select(w => (object?)Map(
                ("action", Name(SpecReader.WatchActionNames, w.Action)), ("path", w.Path), ("target", w.Target),
                ("ignore", w.Ignore.IsDefaultOrEmpty ? null : w.Ignore.ToList()), ("include", w.Include.IsDefaultOrEmpty ? null : w.Include.ToList()),
                ("initial_sync", w.InitialSync ? true : null))).ToList()))),
            ("entrypoint", s.Entrypoint?.ToList()),
            ("run", s.Command.IsEmpty ? null : s.Command.ToList()),
            ("shell", s.Shell ? true : null),
            ("network", s.Network == NetworkMode.Auto ? null : Name(SpecReader.NetworkNames, s.Network)),
            ("aliases", s.Aliases.IsDefaultOrEmpty ? null : s.Aliases.ToList()),
            ("egress", s.Egress ? true : null),
            ("working_dir", s.WorkingDir),
            ("user", s.User),
            ("inherit_env", s.InheritEnv ? true : null),
            ("replicas", s.Replicas),
            ("environment", s.Env.IsEmpty ? null : s.Env.ToDictionary(kv => kv.Key, kv => (object?)(s.SecretEnv.Contains(kv.Key) && !showSecrets ? Mask : kv.Value)).ToOrdered()),
            ("secret_env", s.SecretEnv.IsEmpty ? null : s.SecretEnv.ToList()),
            ("endpoints", s.Endpoints.IsEmpty ? null : s.Endpoints.ToDictionary(e => e.Name, e => (object?)Map(
                ("port", e.Port), ("target_port", e.TargetPort), ("protocol", Name(SpecReader.ProtocolNames, e.Protocol)),
                ("public", e.Public), ("host_ip", e.HostIp))).ToOrdered()),
            ("volumes", s.Volumes.IsEmpty ? null : s.Volumes.Select(v => Map(("type", Name(SpecReader.VolumeTypeNames, v.Type)),
                ("source", v.Source), ("target", v.Target), ("read_only", v.ReadOnly),
                ("volume", v.NoCopy || v.Subpath is not null ? Map(("nocopy", v.NoCopy ? true : null), ("subpath", v.Subpath)) : null),
                ("bind", v.Type == VolumeType.Bind && !v.CreateHostPath ? Map(("create_host_path", false)) : null),
                ("tmpfs", v.TmpfsSize is not null || v.TmpfsMode is not null
                    ? Map(("size", v.TmpfsSize?.Bytes.ToString(System.Globalization.CultureInfo.InvariantCulture)), ("mode", v.TmpfsMode is { } m ? "0" + Convert.ToString(m, 8) : null)) : null))).ToList()),
            ("resources", Resources(s.Resources)),
            ("probes", Probes(s)),
            ("restart", Map(("mode", Name(SpecReader.RestartNames, s.Restart.Mode)), ("max_attempts", s.Restart.MaxAttempts),
                ("backoff", D(s.Restart.InitialBackoff)), ("max_backoff", D(s.Restart.MaxBackoff)), ("reset_after", D(s.Restart.ResetAfter)))),
            ("update", Update(s.Update)),
            ("rollback", s.Rollback is { } r ? Update(r) : null),
            ("depends_on", s.DependsOn.IsEmpty ? null : s.DependsOn.ToDictionary(d => d.Service, d => (object?)Map(
                ("condition", Name(SpecReader.ConditionNames, d.Condition)), ("required", d.Required), ("restart", d.Restart))).ToOrdered()),
            ("mesh", Mesh(s.Mesh)),
            ("autoscale", s.Autoscale is { } a ? Map(("min", a.Min), ("max", a.Max), ("target_cpu", a.TargetCpuPercent), ("target_rps", a.TargetRequestsPerSecond),
                ("tolerance", a.Tolerance), ("scale_down_stabilization", D(a.ScaleDownStabilization))) : null),
            ("stop_grace_period", D(s.StopGracePeriod)),
            ("labels", s.Labels.IsEmpty ? null : Strings(s.Labels)),
            ("deploy_labels", s.DeployLabels.IsEmpty ? null : Strings(s.DeployLabels)),
            ("profiles", s.Profiles.IsEmpty ? null : s.Profiles.ToList()),
            ("pull_policy", s.PullPolicy == PullPolicy.Missing ? null : Name(SpecReader.PullPolicyNames, s.PullPolicy)),
            ("secret_files", FileRefs(s, MountedFileKind.Secret)),
            ("configs", FileRefs(s, MountedFileKind.Config)));
        foreach (var (key, value) in Container(s.Container, s.Logging))
        {
            tree[key] = value;
        }

        return tree;
    }

    private static List<object?>? FileRefs(Service s, MountedFileKind kind)
    {
        var files = s.Files.Where(f => f.Kind == kind).Select(f => (object?)Map(("source", f.Name), ("target", f.Target), ("uid", f.Uid), ("gid", f.Gid),
            ("mode", f.Mode is { } mode ? "0" + Convert.ToString(mode, 8) : null))).ToList();
        return files.Count == 0 ? null : files;
    }

    private static OrderedDictionary<string, object?> Container(ContainerOptions c, LogRotation logging) => Map(
        ("init", c.Init),
        ("read_only", c.ReadOnly ? true : null),
        ("privileged", c.Privileged ? true : null),
        ("tmpfs", c.Tmpfs.IsDefaultOrEmpty ? null : c.Tmpfs.ToList()),
        ("cap_add", c.CapAdd.IsDefaultOrEmpty ? null : c.CapAdd.ToList()),
        ("cap_drop", c.CapDrop.IsDefaultOrEmpty ? null : c.CapDrop.ToList()),
        ("ulimits", c.Ulimits.IsEmpty ? null : c.Ulimits.ToDictionary(u => u.Key, u => (object?)Map(("soft", u.Value.Soft), ("hard", u.Value.Hard))).ToOrdered()),
        ("sysctls", c.Sysctls.IsEmpty ? null : Strings(c.Sysctls)),
        ("stop_signal", c.StopSignal),
        ("shm_size", c.ShmSize is { } shm ? shm.Bytes.ToString(System.Globalization.CultureInfo.InvariantCulture) : null),
        ("security_opt", c.SecurityOpt.IsDefaultOrEmpty ? null : c.SecurityOpt.ToList()),
        ("devices", c.Devices.IsDefaultOrEmpty ? null : c.Devices.ToList()),
        ("extra_hosts", c.ExtraHosts.IsDefaultOrEmpty ? null : c.ExtraHosts.ToList()),
        ("hostname", c.Hostname),
        ("group_add", c.GroupAdd.IsDefaultOrEmpty ? null : c.GroupAdd.ToList()),
        ("pids_limit", c.PidsLimit),
        ("logging", c.LogDriver is null && c.LogOptions.IsEmpty && logging == LogRotation.Default ? null : Map(("driver", c.LogDriver),
            ("options", c.LogOptions.IsEmpty ? null : Strings(c.LogOptions)),
            ("max_size", logging == LogRotation.Default ? null : logging.MaxSize.ToString()),
            ("max_file", logging == LogRotation.Default ? null : logging.MaxFiles))));

    private static OrderedDictionary<string, object?>? Resources(Resources r)
    {
        var requests = Map(("cpu", r.CpuRequest?.ToString()), ("memory", r.MemoryRequest?.ToString()));
        var limits = Map(("cpu", r.CpuLimit?.ToString()), ("memory", r.MemoryLimit?.ToString()));
        var tree = Map(("requests", requests.Count == 0 ? null : requests), ("limits", limits.Count == 0 ? null : limits));
        return tree.Count == 0 ? null : tree;
    }

    private static OrderedDictionary<string, object?>? Probes(Service s)
    {
        var tree = Map(("liveness", Probe(s.Liveness)), ("readiness", Probe(s.Readiness)), ("startup", Probe(s.Startup)));
        return tree.Count == 0 ? null : tree;
    }

    private static OrderedDictionary<string, object?>? Probe(Probe? p)
    {
        if (p is null)
        {
            return null;
        }

        object? check = p.Kind switch
        {
            ProbeKind.Http => Map(("path", p.Path), ("endpoint", p.Endpoint), ("port", p.Port), ("headers", p.Headers.IsEmpty ? null : Strings(p.Headers))),
            ProbeKind.Tcp => Map(("endpoint", p.Endpoint), ("port", p.Port)),
            ProbeKind.Exec => p.Command.ToList(),
        };
        return Map((p.Kind.ToString().ToLowerInvariant(), check), ("initial_delay", D(p.InitialDelay)), ("period", D(p.Period)), ("timeout", D(p.Timeout)),
            ("success_threshold", p.SuccessThreshold), ("failure_threshold", p.FailureThreshold));
    }

    private static OrderedDictionary<string, object?> Update(UpdateStrategy u) => Map(
        ("max_surge", u.MaxSurge.ToString()), ("max_unavailable", u.MaxUnavailable.ToString()), ("min_ready", D(u.MinReady)),
        ("progress_deadline", D(u.ProgressDeadline)), ("auto_rollback", u.AutoRollback), ("order", Name(SpecReader.OrderNames, u.Order)),
        ("delay", D(u.Delay)), ("failure_action", Name(SpecReader.FailureActionNames, u.FailureAction)), ("monitor", D(u.Monitor)),
        ("max_failure_ratio", u.MaxFailureRatio), ("revision_history_limit", u.RevisionHistoryLimit));

    private static OrderedDictionary<string, object?> Mesh(MeshPolicy m) => Map(
        ("lb", Name(SpecReader.LoadBalancingNames, m.LoadBalancing)),
        ("hash_on", m.HashOn),
        ("timeout", m.Timeout is { } t ? D(t) : "none"),
        ("per_try_timeout", m.PerTryTimeout is { } pt ? D(pt) : "none"),
        ("retries", Map(("attempts", m.Retries.Attempts), ("on", m.Retries.On.ToList()), ("non_idempotent", m.Retries.NonIdempotent),
            ("max_buffered_body", m.Retries.MaxBufferedBody.ToString()), ("backoff_base", D(m.Retries.BackoffBase)), ("backoff_max", D(m.Retries.BackoffMax)),
            ("budget_ratio", m.Retries.BudgetRatio), ("budget_min_per_second", m.Retries.BudgetMinPerSecond), ("budget_window", D(m.Retries.BudgetWindow)))),
        ("circuit_breaker", Map(("enabled", m.CircuitBreaker.Enabled), ("consecutive_failures", m.CircuitBreaker.ConsecutiveFailures),
            ("failure_ratio", m.CircuitBreaker.FailureRatio), ("sampling_window", D(m.CircuitBreaker.SamplingWindow)),
            ("minimum_throughput", m.CircuitBreaker.MinimumThroughput), ("break_duration", D(m.CircuitBreaker.BreakDuration)),
            ("half_open_requests", m.CircuitBreaker.HalfOpenRequests))),
        ("outlier_detection", Map(("enabled", m.OutlierDetection.Enabled), ("consecutive_5xx", m.OutlierDetection.Consecutive5xx),
            ("consecutive_gateway_errors", m.OutlierDetection.ConsecutiveGatewayErrors), ("base_ejection_time", D(m.OutlierDetection.BaseEjectionTime)),
            ("max_ejection_time", D(m.OutlierDetection.MaxEjectionTime)), ("max_ejection_percent", m.OutlierDetection.MaxEjectionPercent),
            ("interval", D(m.OutlierDetection.Interval)))),
        ("limits", Map(("max_connections", m.Limits.MaxConnections), ("max_pending_requests", m.Limits.MaxPendingRequests), ("max_requests", m.Limits.MaxRequests))),
        ("split", m.Split.IsEmpty ? null : m.Split.Select(r => Map(("version", r.Version), ("weight", r.HeaderName is null ? r.Weight : null),
            ("header", r.HeaderName is null ? null : $"{r.HeaderName}: {r.HeaderValue}"))).ToList()),
        ("access_log", m.AccessLog));

    private static string D(TimeSpan t) => Durations.Format(t);

    private static string Name<T>(IReadOnlyDictionary<string, T> names, T value) where T : struct =>
        names.First(kv => EqualityComparer<T>.Default.Equals(kv.Value, value)).Key;

    private static OrderedDictionary<string, object?> Strings(IEnumerable<KeyValuePair<string, string>> pairs) =>
        pairs.ToDictionary(kv => kv.Key, kv => (object?)kv.Value).ToOrdered();

    /// <summary>An ordered map without the null entries, so defaults that are "none" are simply absent.</summary>
    private static OrderedDictionary<string, object?> Map(params (string Key, object? Value)[] entries)
    {
        var map = new OrderedDictionary<string, object?>();
        foreach (var (key, value) in entries)
        {
            if (value is not null)
            {
                map[key] = value is double d ? Math.Round(d, 6) : value;
            }
        }

        return map;
    }

    private static OrderedDictionary<string, object?> ToOrdered(this Dictionary<string, object?> source)
    {
        var map = new OrderedDictionary<string, object?>();
        foreach (var (key, value) in source)
        {
            map[key] = value;
        }

        return map;
    }
}
