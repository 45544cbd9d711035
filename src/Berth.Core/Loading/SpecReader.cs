using System.Collections.Immutable;
using Berth.Core.Model;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Berth.Core.Loading;

/// <summary>Which dialect a spec file is written in.</summary>
public enum SpecFormat
{
    /// <summary>Berth's own <c>berth.yaml</c>.</summary>
    Berth,

    /// <summary>A Compose Specification file (<c>compose.yaml</c>, <c>docker-compose.yml</c>).</summary>
    Compose,
}

/// <summary>Reads a parsed spec (either dialect) into an <see cref="Application"/>, then runs the checks that span services.</summary>
internal sealed partial class SpecReader(string file, string baseDirectory, Interpolator interpolator, SpecFormat format)
    : NodeReader(file, interpolator)
{
    private readonly List<ServiceDraft> _services = [];
    private readonly List<Located<Node>> _nodes = [];
    private readonly List<PipelineRef> _pipelines = [];
    private readonly Dictionary<string, YamlNode> _declaredVolumes = new(StringComparer.Ordinal);
    private string _projectName = "app";
    private SchedulerPolicy _scheduler = SchedulerPolicy.LeastLoaded;
    private TelemetrySpec _telemetry = TelemetrySpec.Default;

    public SpecFormat Format { get; } = format;

    /// <summary>The key whose handler is running, so a handler can point at the key rather than its value.</summary>
    public YamlScalarNode? CurrentKey { get; private set; }

    /// <summary>The folder relative paths resolve against: the spec's, or an extended or included file's while it is read.</summary>
    public string BaseDirectory { get; private set; } = baseDirectory;

    /// <summary>Absolute path of the file, for <see cref="PipelineRef"/> and <see cref="Application.SourceFile"/>.</summary>
    public string? SourcePath { get; init; }

    public IReadOnlyList<string> ActiveProfiles { get; init; } = [];

    /// <summary>Reads every key, reporting what is wrong; returns the application when nothing was.</summary>
    public Application? Read(YamlNode root) => Read([root]);

    /// <summary>Reads a file and the files that override it (as Compose merges compose.override.yaml): later files'
    /// scalars win, their lists (ports, volumes, environment, depends_on, …) add to or replace entries of the earlier.</summary>
    public Application? Read(IReadOnlyList<YamlNode> roots)
    {
        // As Compose, the project name is known before anything else is read, so ${COMPOSE_PROJECT_NAME} works anywhere.
        _projectName = ProjectNameFor(roots);
        Interpolator.Define("COMPOSE_PROJECT_NAME", _projectName);
        for (var i = 0; i < roots.Count; i++)
        {
            var root = roots[i];
            var map = Mapping(root, "", "a mapping with services: at the top");
            if (map is null)
            {
                continue;
            }

            if (Format == SpecFormat.Berth)
            {
                ReadKeys(map, "", BerthTopKeys, this, allowExtensions: true);
            }
            else
            {
                ReadKeys(map, "", ComposeTopKeys, this, allowExtensions: true, extension: ComposeTopExtension);
            }

            if (i == 0 && !map.Children.ContainsKey(new YamlScalarNode("services")))
            {
                Error(root, "", "has no services:; add a services: mapping with at least one service");
            }
        }

        foreach (var draft in _services)
        {
            FinishService(draft, draft.KeyNode);
        }

        CheckAcrossServices();
        ApplyLinks();
        if (HasErrors)
        {
            return null;
        }

        var active = _services.Where(IsActive).ToList();
        return new Application
        {
            Name = _projectName,
            Services = [.. active.Select(Build).Select(s => s with { Volumes = ResolveVolumeNames(s.Volumes) })],
            Nodes = [.. _nodes.Select(n => n.Value)],
            Scheduler = _scheduler,
            Telemetry = _telemetry,
            Pipelines = [.. _pipelines],
            SourceFile = SourcePath,
            BaseDirectory = BaseDirectory,
            Volumes = [.. _declaredVolumes.Keys],
        };
    }

    /// <summary>Compose's precedence: <c>COMPOSE_PROJECT_NAME</c>, then the last file's <c>name:</c>, then the folder
    /// (berth.yaml: <c>name:</c> first). Read quietly here; the <c>name</c> key's own handler reports problems.</summary>
    private string ProjectNameFor(IReadOnlyList<YamlNode> roots)
    {
        string? fromFile = null;
        foreach (var root in roots)
        {
            if (root is YamlMappingNode map && map.Children.TryGetValue(new YamlScalarNode("name"), out var node) && node is YamlScalarNode scalar
                && Interpolator.TryInterpolate(scalar.Value ?? "", out var text, out _) && text.Length > 0)
            {
                fromFile = Format == SpecFormat.Compose ? text.ToLowerInvariant() : text;
            }
        }

        var fromEnv = Interpolator.Variables.TryGetValue("COMPOSE_PROJECT_NAME", out var env) && env.Length > 0 ? env : null;
        var chosen = Format == SpecFormat.Compose ? fromEnv ?? fromFile : fromFile ?? fromEnv;
        return chosen is not null && IsValidName(chosen, lowercase: true) ? chosen : DefaultName();
    }

    private string DefaultName()
    {
        // As Compose's project name: COMPOSE_PROJECT_NAME, else the folder's name, lowercased, with only [a-z0-9_-].
        var folder = Interpolator.Variables.TryGetValue("COMPOSE_PROJECT_NAME", out var fromEnv) && fromEnv.Length > 0
            ? fromEnv
            : System.IO.Path.GetFileName(BaseDirectory.TrimEnd(System.IO.Path.DirectorySeparatorChar));
        var name = new string([.. folder.ToLowerInvariant().Where(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_')]);
        return name.Length > 0 ? name : "app";
    }

    private bool IsActive(ServiceDraft d) => d.S.Profiles.IsEmpty || d.S.Profiles.Any(p => ActiveProfiles.Contains(p) || ActiveProfiles.Contains("*"));

    /// <summary>Reads each key of <paramref name="map"/> through <paramref name="table"/>; <c>x-</c> keys are ignored where
    /// extensions are allowed, or passed to <paramref name="extension"/>.</summary>
    public void ReadKeys<T>(YamlMappingNode map, string path, KeyTable<T> table, T target, bool allowExtensions = false,
        Action<string, YamlScalarNode, YamlNode>? extension = null, Func<string, YamlScalarNode, YamlNode, bool>? other = null)
    {
        foreach (var (key, keyNode, value) in Entries(map, path))
        {
            var p = Join(path, key);
            if (table.TryGetValue(key, out var handler))
            {
                CurrentKey = keyNode;
                handler(this, value, p, target);
            }
            else if (allowExtensions && key.StartsWith("x-", StringComparison.Ordinal))
            {
                extension?.Invoke(key, keyNode, value);
            }
            else if (other is null || !other(key, keyNode, value))
            {
                UnknownKey(keyNode, path, key, table.Keys, table.Where);
            }
        }
    }

    private static readonly KeyTable<SpecReader> BerthTopKeys = new("the spec")
    {
        ["name"] = (r, v, p, _) => r.ProjectName(v, p),
        ["services"] = (r, v, p, _) => r.ReadServices(v, p),
        ["nodes"] = (r, v, p, _) => r.ReadNodes(v, p),
        ["scheduler"] = (r, v, p, _) => r.ReadScheduler(v, p),
        ["pipelines"] = (r, v, p, _) => r.ReadPipelines(v, p),
        ["volumes"] = (r, v, p, _) => r.ReadTopVolumes(v, p),
        ["telemetry"] = (r, v, p, _) => r.ReadTelemetry(v, p),
        ["secrets"] = (r, v, p, _) => r.ReadTopFiles(v, p, MountedFileKind.Secret),
        ["configs"] = (r, v, p, _) => r.ReadTopFiles(v, p, MountedFileKind.Config),
    };

    private void ReadTelemetry(YamlNode v, string p)
    {
        if (Mapping(v, p, "a mapping: {otlp_endpoint: http://127.0.0.1:4318, max_spans: N, max_logs: N, max_metric_points: N}") is { } map)
        {
            ReadKeys(map, p, TelemetryKeys, this);
        }
    }

    private static readonly KeyTable<SpecReader> TelemetryKeys = new("telemetry")
    {
        ["otlp_endpoint"] = (r, v, p, _) =>
        {
            var text = r.String(v, p);
            if (text is null)
            {
                return;
            }

            if (Uri.TryCreate(text, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https")
            {
                r._telemetry = r._telemetry with { OtlpEndpoint = uri };
            }
            else
            {
                r.Error(v, p, $"'{text}' is not an http(s) URL; write the collector's OTLP/HTTP address, e.g. http://127.0.0.1:4318");
            }
        },
        ["max_spans"] = (r, v, p, _) => r._telemetry = r._telemetry with { MaxSpans = r.Int(v, p, 1, 10_000_000) ?? r._telemetry.MaxSpans },
        ["max_logs"] = (r, v, p, _) => r._telemetry = r._telemetry with { MaxLogs = r.Int(v, p, 1, 10_000_000) ?? r._telemetry.MaxLogs },
        ["max_metric_points"] = (r, v, p, _) => r._telemetry = r._telemetry with { MaxMetricPoints = r.Int(v, p, 1, 10_000_000) ?? r._telemetry.MaxMetricPoints },
    };

    private string? ProjectName(YamlNode v, string p)
    {
        var name = String(v, p);
        if (Format == SpecFormat.Compose)
        {
            name = name?.ToLowerInvariant(); // as Compose: name: myProject is the project myproject
        }

        if (name is not null && !IsValidName(name, lowercase: true))
        {
            Error(v, p, $"'{name}' is not a valid app name; use lowercase letters, digits, '-' and '_', starting with a letter or digit");
            return null;
        }

        return name;
    }

    private static bool IsValidName(string name, bool lowercase) =>
        name.Length > 0 && name.Length <= 63 && char.IsAsciiLetterOrDigit(name[0])
        && name.All(c => (lowercase ? char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) : char.IsAsciiLetterOrDigit(c)) || c is '-' or '_' or '.');

    private void ReadServices(YamlNode v, string path) => ReadServices(v, path, included: false);

    private void ReadServices(YamlNode v, string path, bool included)
    {
        var map = Mapping(v, path, "a mapping of service names to services");
        if (map is null)
        {
            return;
        }

        foreach (var (name, keyNode, value) in Entries(map, path))
        {
            var p = Join(path, name);
            if (!IsValidName(name, lowercase: false) || name.Contains('.', StringComparison.Ordinal))
            {
                Error(keyNode, p, $"'{name}' is not a valid service name; use letters, digits, '-' and '_', starting with a letter or digit");
                continue;
            }

            // A service named again (in an override file) adds to the same draft.
            var existing = _services.Find(d => d.Name == name);
            if (existing is not null && included)
            {
                Error(keyNode, p, $"service {name} is defined both here and at {FileOf(existing.KeyNode)}:{existing.KeyNode.Start.Line}:{existing.KeyNode.Start.Column}; an included file may not redefine a service (as Compose); rename one of them");
                continue;
            }

            var draft = existing ?? new ServiceDraft(name, p, keyNode.Start) { KeyNode = keyNode };
            if (existing is null && Format == SpecFormat.Compose)
            {
                // Compose's default restart policy is "no"; berth.yaml's is always.
                draft.S = draft.S with { Restart = RestartPolicy.Default with { Mode = RestartMode.Never } };
            }

            if (IsNull(value) && existing is not null)
            {
                continue;
            }

            if (IsNull(value))
            {
                Error(value.Start.Line == keyNode.Start.Line ? keyNode : value, p, Format == SpecFormat.Berth
                    ? "is empty; give it run: (a command to run as a process) or image: (a container image)"
                    : "is empty; give it image: or build:");
                continue;
            }

            var body = Mapping(value, p, "a mapping of service settings");
            if (body is null)
            {
                continue;
            }

            if (Format == SpecFormat.Berth)
            {
                ReadKeys(body, p, BerthServiceKeys, draft, allowExtensions: true, other: (key, keyNode, _) =>
                {
                    if (!ComposeOnlyHints.TryGetValue(key, out var hint))
                    {
                        return false;
                    }

                    Error(keyNode, Join(p, key), $"'{key}' is a Compose key; in berth.yaml {hint} (or name the file compose.yaml to load it as Compose)");
                    return true;
                });
            }
            else
            {
                ApplyExtends(body, p, draft, map, []);
                ReadComposeService(body, p, draft);
            }

            if (existing is null)
            {
                _services.Add(draft);
            }
        }
    }

    /// <summary>Compose keys a Compose user is likely to write in berth.yaml, and what berth.yaml says instead.</summary>
    private static readonly Dictionary<string, string> ComposeOnlyHints = new(StringComparer.Ordinal)
    {
        ["command"] = "write run: [program, args…]",
        ["ports"] = "write endpoints: {http: 8080}",
        ["expose"] = "write endpoints: {http: {}} (no port: one is assigned)",
        ["healthcheck"] = "write probes: {readiness: {exec: [cmd, args…]}} (or http:/tcp:)",
        ["deploy"] = "write replicas:, resources:, restart: and update: directly on the service",
        ["restart_policy"] = "write restart: {mode: on-failure, max_attempts: 3}",
        ["mem_limit"] = "write resources: {limits: {memory: 512Mi}}",
        ["cpus"] = "write resources: {limits: {cpu: 500m}}",
        ["scale"] = "write replicas:",
    };

    private void ReadNodes(YamlNode v, string path)
    {
        var seq = Sequence(v, path, "a list of nodes, each with name, cpu and memory");
        if (seq is null)
        {
            return;
        }

        for (var i = 0; i < seq.Children.Count; i++)
        {
            var p = Index(path, i);
            var map = Mapping(seq.Children[i], p, "a node: name, cpu and memory");
            if (map is null)
            {
                continue;
            }

            var node = new Box<Node>(new Node("", default, default));
            ReadKeys(map, p, NodeKeys, node);
            var missing = new[] { "name", "cpu", "memory" }.Where(k => !map.Children.ContainsKey(new YamlScalarNode(k))).ToList();
            if (missing.Count > 0)
            {
                Error(map, p, $"node is missing {string.Join(" and ", missing)}; write e.g. {{name: node-a, cpu: 2, memory: 4Gi}}");
                continue;
            }

            _nodes.Add(new Located<Node>(node.V, map, p));
        }
    }

    private static readonly KeyTable<Box<Node>> NodeKeys = new("a node")
    {
        ["name"] = (r, v, p, b) =>
        {
            if (r.String(v, p) is { } name)
            {
                if (!IsValidName(name, lowercase: true))
                {
                    r.Error(v, p, $"'{name}' is not a valid node name; use lowercase letters, digits and '-'");
                }

                b.V = b.V with { Name = name };
            }
        },
        ["cpu"] = (r, v, p, b) =>
        {
            if (r.Cpu(v, p) is { } cpu)
            {
                if (cpu.MilliCores <= 0)
                {
                    r.Error(v, p, $"must be more than 0, got {cpu}");
                }

                b.V = b.V with { Cpu = cpu };
            }
        },
        ["memory"] = (r, v, p, b) =>
        {
            if (r.Memory(v, p) is { } memory)
            {
                if (memory.Bytes <= 0)
                {
                    r.Error(v, p, $"must be more than 0, got {memory}");
                }

                b.V = b.V with { Memory = memory };
            }
        },
        ["labels"] = (r, v, p, b) => b.V = b.V with { Labels = r.Labels(v, p) },
    };

    internal static readonly IReadOnlyDictionary<string, SchedulerPolicy> SchedulerNames = new Dictionary<string, SchedulerPolicy>
    {
        ["least-loaded"] = SchedulerPolicy.LeastLoaded,
        ["round-robin"] = SchedulerPolicy.RoundRobin,
        ["bin-pack"] = SchedulerPolicy.BinPack,
        ["random"] = SchedulerPolicy.Random,
    };

    private void ReadScheduler(YamlNode v, string p)
    {
        // scheduler: bin-pack, or scheduler: {policy: bin-pack}
        if (v is YamlMappingNode map)
        {
            ReadKeys(map, p, SchedulerKeys, this);
        }
        else if (Enum(v, p, SchedulerNames) is { } policy)
        {
            _scheduler = policy;
        }
    }

    private static readonly KeyTable<SpecReader> SchedulerKeys = new("scheduler")
    {
        ["policy"] = (r, v, p, _) => r._scheduler = r.Enum(v, p, SchedulerNames) ?? r._scheduler,
    };

    private void ReadPipelines(YamlNode v, string path)
    {
        // Left raw: Berth.Pipelines parses each definition from its own position (or its own file).
        var map = Mapping(v, path, "a mapping of pipeline names to pipelines (or to files holding them)");
        if (map is null)
        {
            return;
        }

        foreach (var (name, keyNode, value) in Entries(map, path))
        {
            if (value is YamlScalarNode && !IsNull(value))
            {
                var file = String(value, Join(path, name));
                if (file is not null)
                {
                    var full = System.IO.Path.GetFullPath(System.IO.Path.Combine(BaseDirectory, file));
                    if (!System.IO.File.Exists(full))
                    {
                        Error(value, Join(path, name), $"pipeline file '{file}' does not exist (looked for {full})");
                    }

                    _pipelines.Add(new PipelineRef(name, full, 1, 1) { Digest = System.IO.File.Exists(full) ? Digest(System.IO.File.ReadAllBytes(full)) : null });
                }
            }
            else
            {
                _pipelines.Add(new PipelineRef(name, SourcePath ?? File, (int)value.Start.Line, (int)value.Start.Column) { Digest = Digest(System.Text.Encoding.UTF8.GetBytes(value.ToString())) });
            }
        }
    }

    private static string Digest(byte[] content) => Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(content));

    private void ReadTopVolumes(YamlNode v, string path)
    {
        var map = Mapping(v, path, "a mapping of volume names");
        if (map is null)
        {
            return;
        }

        foreach (var (name, keyNode, value) in Entries(map, path))
        {
            _declaredVolumes[name] = keyNode;
            if (value is YamlMappingNode options)
            {
                ReadVolumeOptions(name, options, Join(path, name));
            }
            else if (!IsNull(value))
            {
                Error(value, Join(path, name), "must be empty or a mapping of volume options");
            }
        }
    }

    public ImmutableSortedDictionary<string, string> Labels(YamlNode v, string p)
    {
        var builder = ImmutableSortedDictionary.CreateBuilder<string, string>(StringComparer.Ordinal);
        foreach (var (key, value, _) in KeyValues(v, p))
        {
            builder[key] = value ?? "";
        }

        return builder.ToImmutable();
    }

    public string ResolvePath(string path)
    {
        if (path == "~" || path.StartsWith("~/", StringComparison.Ordinal))
        {
            path = System.IO.Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), path.Length > 2 ? path[2..] : "");
        }

        return System.IO.Path.GetFullPath(System.IO.Path.Combine(BaseDirectory, path));
    }
}
