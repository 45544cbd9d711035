using System.Collections.Immutable;
using Berth.Core.Model;
using YamlDotNet.RepresentationModel;

namespace Berth.Core.Loading;

internal sealed partial class SpecReader
{
    internal static readonly IReadOnlyDictionary<string, NetworkMode> NetworkNames = new Dictionary<string, NetworkMode>
    {
        ["auto"] = NetworkMode.Auto,
        ["host"] = NetworkMode.Host,
        ["isolated"] = NetworkMode.Isolated,
    };

    internal static readonly IReadOnlyDictionary<string, RuntimeKind> RuntimeNames = new Dictionary<string, RuntimeKind>
    {
        ["auto"] = RuntimeKind.Auto,
        ["process"] = RuntimeKind.Process,
        ["docker"] = RuntimeKind.Docker,
    };

    /// <summary>Berth's own service keys: valid in berth.yaml and under a Compose service's <c>x-berth:</c>.</summary>
    private static readonly KeyTable<ServiceDraft> BerthOnlyKeys = new("x-berth")
    {
        ["run"] = (r, v, p, d) =>
        {
            d.HasRun = true;
            d.RunText = v is YamlScalarNode ? r.String(v, p) : null;
            if (r.Argv(v, p) is { } argv)
            {
                if (argv.IsEmpty)
                {
                    r.Error(v, p, "is empty; give the program and its arguments, e.g. [dotnet, app.dll]");
                }

                d.S = d.S with { Command = argv };
            }
        },
        ["shell"] = (r, v, p, d) => d.S = d.S with { Shell = r.Bool(v, p) ?? false },
        ["inherit_env"] = (r, v, p, d) => d.S = d.S with { InheritEnv = r.Bool(v, p) ?? false },
        ["runtime"] = (r, v, p, d) => d.S = d.S with { Runtime = r.Enum(v, p, RuntimeNames) ?? RuntimeKind.Auto },
        ["network"] = (r, v, p, d) => d.S = d.S with { Network = r.Enum(v, p, NetworkNames) ?? NetworkMode.Auto },
        ["aliases"] = (r, v, p, d) => d.S = d.S with { Aliases = r.Strings(v, p) },
        ["egress"] = (r, v, p, d) => d.S = d.S with { Egress = r.Bool(v, p) ?? false },
        ["replicas"] = (r, v, p, d) => d.S = d.S with { Replicas = r.Int(v, p, min: 0) ?? d.S.Replicas },
        ["secret_env"] = (r, v, p, d) =>
        {
            var seq = r.Sequence(v, p, "a list of environment variable names");
            for (var i = 0; seq is not null && i < seq.Children.Count; i++)
            {
                if (r.String(seq.Children[i], Index(p, i)) is { } name)
                {
                    d.SecretNames.Add((name, seq.Children[i], Index(p, i)));
                }
            }
        },
        ["endpoints"] = (r, v, p, d) => r.ReadEndpoints(v, p, d),
        ["resources"] = (r, v, p, d) => r.ReadResources(v, p, d),
        ["probes"] = (r, v, p, d) => r.ReadProbes(v, p, d),
        ["restart"] = (r, v, p, d) => d.S = d.S with { Restart = r.ReadRestart(v, p) ?? d.S.Restart },
        ["update"] = (r, v, p, d) => d.S = d.S with { Update = r.ReadUpdate(v, p, UpdateStrategy.Default) ?? d.S.Update },
        ["rollback"] = (r, v, p, d) => d.S = d.S with { Rollback = r.ReadUpdate(v, p, UpdateStrategy.Default) },
        ["mesh"] = (r, v, p, d) => d.S = d.S with { Mesh = r.ReadMesh(v, p) ?? d.S.Mesh },
        ["autoscale"] = (r, v, p, d) => d.S = d.S with { Autoscale = r.ReadAutoscale(v, p) },
    };

    /// <summary>berth.yaml service keys: Compose's (same names, same forms) plus Berth's own.</summary>
    private static readonly KeyTable<ServiceDraft> BerthServiceKeys = CreateBerthServiceKeys();

    private static KeyTable<ServiceDraft> CreateBerthServiceKeys()
    {
        var keys = new KeyTable<ServiceDraft>("a service")
        {
            ["image"] = (r, v, p, d) =>
            {
                d.HasImage = true;
                d.S = d.S with { Image = r.String(v, p) };
            },
            ["build"] = (r, v, p, d) => d.S = d.S with { Build = r.ReadBuild(v, p) },
            ["develop"] = (r, v, p, d) => r.ReadDevelop(v, p, d),
            ["entrypoint"] = (r, v, p, d) => d.S = d.S with { Entrypoint = r.Argv(v, p) },
            ["working_dir"] = (r, v, p, d) => d.S = d.S with { WorkingDir = r.String(v, p) },
            ["user"] = (r, v, p, d) => d.S = d.S with { User = r.String(v, p) },
            ["environment"] = (r, v, p, d) => r.ReadEnvironment(v, p, d.Env),
            ["env_file"] = (r, v, p, d) => r.ReadEnvFiles(v, p, d),
            ["secrets"] = (r, v, p, d) => r.ReadEnvironment(v, p, d.Secrets),
            ["volumes"] = (r, v, p, d) => r.ReadVolumes(v, p, d),
            ["depends_on"] = (r, v, p, d) => r.ReadDependsOn(v, p, d),
            ["labels"] = (r, v, p, d) => d.S = d.S with { Labels = d.S.Labels.SetItems(r.Labels(v, p)) },
            ["profiles"] = (r, v, p, d) => d.S = d.S with { Profiles = r.Strings(v, p) },
            ["stop_grace_period"] = (r, v, p, d) => d.S = d.S with { StopGracePeriod = r.Duration(v, p) ?? d.S.StopGracePeriod },
        };
        foreach (var (key, handler) in BerthOnlyKeys)
        {
            keys[key] = handler;
        }

        // Compose's container options, pull_policy and file secrets, under the same names (secrets: stays berth.yaml's
        // secret environment; file secrets are secret_files:), so berth config's output of a Compose file loads back.
        foreach (var (key, handler) in ContainerOptionKeys)
        {
            keys[key] = handler;
        }

        keys["pull_policy"] = (r, v, p, d) => d.S = d.S with { PullPolicy = r.ReadPullPolicy(v, p) ?? d.S.PullPolicy };
        keys["secret_files"] = (r, v, p, d) => r.ReadServiceFiles(v, p, d, MountedFileKind.Secret);
        keys["configs"] = (r, v, p, d) => r.ReadServiceFiles(v, p, d, MountedFileKind.Config);
        keys["deploy_labels"] = (r, v, p, d) => d.S = d.S with { DeployLabels = r.Labels(v, p) };
        return keys;
    }

    private void ReadEnvironment(YamlNode v, string p, List<EnvEntry> into)
    {
        foreach (var (key, value, node) in KeyValues(v, p))
        {
            if (key.Any(char.IsWhiteSpace))
            {
                Error(node, Join(p, key.Trim()), $"'{key}' has a space in the variable's name; write {key.Trim()}={value?.Trim()} (no spaces around '=')");
                continue;
            }

            into.Add(new EnvEntry(key, value, node, Join(p, key)));
        }
    }

    private void ReadEnvFiles(YamlNode v, string p, ServiceDraft d)
    {
        // env_file: a path, a list of paths, or a list of {path, required} (Compose 2.24+).
        var items = v is YamlSequenceNode seq ? seq.Children.Select((n, i) => (n, Index(p, i))).ToList() : [(v, p)];
        var files = ImmutableArray.CreateBuilder<string>();
        foreach (var (node, path) in items)
        {
            string? file;
            var required = true;
            if (node is YamlMappingNode map)
            {
                var entry = new Box<(string? Path, bool Required)>((null, true));
                ReadKeys(map, path, EnvFileKeys, entry);
                (file, required) = entry.V;
                if (file is null)
                {
                    Error(map, path, "needs path: (the env file's path)");
                    continue;
                }
            }
            else
            {
                file = String(node, path);
            }

            if (file is null)
            {
                continue;
            }

            files.Add(file);
            var full = ResolvePath(file);
            if (!System.IO.File.Exists(full))
            {
                if (required)
                {
                    Error(node, path, $"env file '{file}' does not exist (looked for {full}); create it, or mark it required: false");
                }

                continue;
            }

            var problems = new List<DotEnv.Problem>();
            // As Compose: a value may use names from the env files read before it, then the project's variables.
            var scope = new Dictionary<string, string>(Interpolator.Variables, StringComparer.Ordinal);
            foreach (var entry in d.EnvFileEntries.Where(e => e.Value is not null))
            {
                scope[entry.Key] = entry.Value!;
            }

            foreach (var (key, value) in DotEnv.Parse(System.IO.File.ReadAllText(full), problems, scope))
            {
                d.EnvFileEntries.Add(new EnvEntry(key, value, node, path));
            }

            // Named as the spec is named (relative stays relative), so the position can be followed from where berth ran.
            var display = System.IO.Path.IsPathRooted(file) ? file : System.IO.Path.Combine(System.IO.Path.GetDirectoryName(File) ?? "", file);
            foreach (var problem in problems)
            {
                Diagnostics.Add(new Diagnostic(DiagnosticSeverity.Error, display, problem.Line, problem.Column, "", problem.Message));
            }
        }

        d.S = d.S with { EnvFiles = files.ToImmutable() };
    }

    private static readonly KeyTable<Box<(string? Path, bool Required)>> EnvFileKeys = new("an env_file entry")
    {
        ["path"] = (r, v, p, b) => b.V = (r.String(v, p), b.V.Required),
        ["required"] = (r, v, p, b) => b.V = (b.V.Path, r.Bool(v, p) ?? true),
        ["format"] = (r, v, p, b) => r.Warning(v, p, "'format' is not supported yet and is ignored; env files are read as .env files"),
    };

    private BuildSpec? ReadBuild(YamlNode v, string p)
    {
        if (v is YamlScalarNode)
        {
            var context = String(v, p);
            return context is null ? null : new BuildSpec { Context = ResolveContext(context) };
        }

        var map = Mapping(v, p, "a build context path, or a mapping with context: (Docker) or command: (process)");
        if (map is null)
        {
            return null;
        }

        var build = new Box<BuildSpec>(new BuildSpec());
        ReadKeys(map, p, BuildKeys, build, allowExtensions: true, other: (key, keyNode, _) =>
        {
            if (Format == SpecFormat.Compose && ComposeBuildUnsupported.Contains(key))
            {
                Warning(keyNode, Join(p, key), $"'{key}' is not supported yet and is ignored");
                return true;
            }

            return false;
        });
        // As Compose, build: {dockerfile: X} builds from the spec's folder.
        if (Format == SpecFormat.Compose && build.V.Context is null && build.V.Command.IsDefaultOrEmpty)
        {
            build.V = build.V with { Context = BaseDirectory };
        }

        // Both may be given: context: builds the image for Docker, command: builds the program for the process driver.
        if (build.V.Context is null && build.V.Command.IsDefaultOrEmpty)
        {
            Error(map, p, "needs context: (a Docker build context) or command: (a build command for a process service)");
        }

        return build.V;
    }

    private string ResolveContext(string context) =>
        context.Contains("://", StringComparison.Ordinal) || context.StartsWith("git@", StringComparison.Ordinal) ? context : ResolvePath(context);

    private static readonly KeyTable<Box<BuildSpec>> BuildKeys = new("build")
    {
        ["context"] = (r, v, p, b) => b.V = b.V with { Context = r.String(v, p) is { } c ? r.ResolveContext(c) : null },
        ["dockerfile"] = (r, v, p, b) => b.V = b.V with { Dockerfile = r.String(v, p) },
        ["args"] = (r, v, p, b) => b.V = b.V with { Args = r.Labels(v, p) },
        ["target"] = (r, v, p, b) => b.V = b.V with { Target = r.String(v, p) },
        ["command"] = (r, v, p, b) => b.V = b.V with { Command = r.Argv(v, p) ?? [] },
        ["working_dir"] = (r, v, p, b) => b.V = b.V with { WorkingDir = r.String(v, p) is { } w ? r.ResolvePath(w) : null },
    };

    private static readonly HashSet<string> ComposeBuildUnsupported =
    [
        "provenance", "sbom", "no_cache_filter",
        "dockerfile_inline", "ssh", "cache_from", "cache_to", "additional_contexts", "extra_hosts", "isolation", "labels",
        "network", "no_cache", "platforms", "privileged", "pull", "secrets", "shm_size", "tags", "ulimits", "entitlements",
    ];

    private void ReadEndpoints(YamlNode v, string p, ServiceDraft d)
    {
        // endpoints: {http: 8080} or {http: {port: 8080, protocol: http, target_port: 80, public: true}}
        var map = Mapping(v, p, "a mapping of endpoint names to ports");
        if (map is null)
        {
            return;
        }

        // x-berth endpoints replace those of the same name that Compose ports produced.
        foreach (var (name, keyNode, value) in Entries(map, p))
        {
            var ep = Join(p, name);
            if (!IsValidName(name, lowercase: true))
            {
                Error(keyNode, ep, $"'{name}' is not a valid endpoint name; use lowercase letters, digits and '-'");
                continue;
            }

            var endpoint = new Box<Endpoint>(new Endpoint { Name = name });
            if (value is YamlMappingNode body)
            {
                ReadKeys(body, ep, EndpointKeys, endpoint);
            }
            else if (!IsNull(value))
            {
                endpoint.V = endpoint.V with { Port = Int(value, ep, 1, 65535) };
            }

            var existing = d.Endpoints.FindIndex(e => e.Value.Name == name);
            var located = new Located<Endpoint>(endpoint.V, value, ep);
            if (existing >= 0 && Format == SpecFormat.Compose)
            {
                d.Endpoints[existing] = located;
            }
            else
            {
                d.Endpoints.Add(located);
            }
        }
    }

    internal static readonly IReadOnlyDictionary<string, EndpointProtocol> ProtocolNames = new Dictionary<string, EndpointProtocol>
    {
        ["http"] = EndpointProtocol.Http,
        ["tcp"] = EndpointProtocol.Tcp,
        ["h2c"] = EndpointProtocol.H2c,
        ["grpc"] = EndpointProtocol.Grpc,
    };

    private static readonly KeyTable<Box<Endpoint>> EndpointKeys = new("an endpoint")
    {
        ["port"] = (r, v, p, b) => b.V = b.V with { Port = IsNull(v) ? null : r.Int(v, p, 1, 65535) },
        ["target_port"] = (r, v, p, b) => b.V = b.V with { TargetPort = r.Int(v, p, 1, 65535) },
        ["protocol"] = (r, v, p, b) => b.V = b.V with { Protocol = r.Enum(v, p, ProtocolNames) ?? b.V.Protocol },
        ["public"] = (r, v, p, b) => b.V = b.V with { Public = r.Bool(v, p) ?? false },
        ["host_ip"] = (r, v, p, b) => b.V = b.V with { HostIp = r.String(v, p) ?? b.V.HostIp },
    };

    private void ReadResources(YamlNode v, string p, ServiceDraft d)
    {
        var map = Mapping(v, p, "a mapping with requests: and limits:");
        if (map is null)
        {
            return;
        }

        var resources = new Box<Resources>(Resources.None);
        ReadKeys(map, p, ResourceKeys, resources);
        CheckLimits(resources.V, map, p, "requests", "limits", "cpu", "memory");
        d.S = d.S with { Resources = resources.V };
    }

    /// <summary>Reports a CPU or memory limit below its request, at the limit.</summary>
    private void CheckLimits(Resources resources, YamlMappingNode map, string p, string requestsKey, string limitsKey, string cpuKey, string memoryKey)
    {
        YamlNode Find(string section, string key) =>
            map.Children.TryGetValue(new YamlScalarNode(section), out var m) && m is YamlMappingNode mm
            && mm.Children.TryGetValue(new YamlScalarNode(key), out var n) ? n : map;

        if (resources is { CpuLimit: { } cpuLimit, CpuRequest: { } cpuRequest } && cpuLimit < cpuRequest)
        {
            Error(Find(limitsKey, cpuKey), Join(p, $"{limitsKey}.{cpuKey}"),
                $"the CPU limit {cpuLimit} is below the {requestsKey[..^1]} {cpuRequest}; raise the limit or lower the {requestsKey[..^1]}");
        }

        if (resources is { MemoryLimit: { } memoryLimit, MemoryRequest: { } memoryRequest } && memoryLimit < memoryRequest)
        {
            Error(Find(limitsKey, memoryKey), Join(p, $"{limitsKey}.{memoryKey}"),
                $"the memory limit {memoryLimit} is below the {requestsKey[..^1]} {memoryRequest}; raise the limit or lower the {requestsKey[..^1]}");
        }
    }

    private static readonly KeyTable<Box<Resources>> RequestKeys = new("resources.requests")
    {
        ["cpu"] = (r, v, p, b) => b.V = b.V with { CpuRequest = r.Cpu(v, p) },
        ["memory"] = (r, v, p, b) => b.V = b.V with { MemoryRequest = r.Memory(v, p) },
    };

    private static readonly KeyTable<Box<Resources>> LimitKeys = new("resources.limits")
    {
        ["cpu"] = (r, v, p, b) => b.V = b.V with { CpuLimit = r.Cpu(v, p) },
        ["memory"] = (r, v, p, b) => b.V = b.V with { MemoryLimit = r.Memory(v, p) },
    };

    private static readonly KeyTable<Box<Resources>> ResourceKeys = new("resources")
    {
        ["requests"] = (r, v, p, b) =>
        {
            if (r.Mapping(v, p, "a mapping with cpu: and memory:") is { } m)
            {
                r.ReadKeys(m, p, RequestKeys, b);
            }
        },
        ["limits"] = (r, v, p, b) =>
        {
            if (r.Mapping(v, p, "a mapping with cpu: and memory:") is { } m)
            {
                r.ReadKeys(m, p, LimitKeys, b);
            }
        },
    };

    private void ReadProbes(YamlNode v, string p, ServiceDraft d)
    {
        var map = Mapping(v, p, "a mapping with liveness:, readiness: and/or startup:");
        if (map is null)
        {
            return;
        }

        ReadKeys(map, p, ProbesKeys, d);
    }

    private static readonly KeyTable<ServiceDraft> ProbesKeys = new("probes")
    {
        ["liveness"] = (r, v, p, d) => d.S = d.S with { Liveness = r.ReadProbe(v, p, "liveness") },
        ["readiness"] = (r, v, p, d) => d.S = d.S with { Readiness = r.ReadProbe(v, p, "readiness") },
        ["startup"] = (r, v, p, d) => d.S = d.S with { Startup = r.ReadProbe(v, p, "startup") },
    };

    private Probe? ReadProbe(YamlNode v, string p, string kind)
    {
        var map = Mapping(v, p, "a probe: http:, tcp: or exec: with its timing");
        if (map is null)
        {
            return null;
        }

        var probe = new Box<Probe>(new Probe());
        var kinds = new List<string>();
        ReadKeys(map, p, ProbeKeys, probe, other: (key, keyNode, value) =>
        {
            var kp = Join(p, key);
            switch (key)
            {
                case "http":
                    kinds.Add(key);
                    if (value is YamlMappingNode httpMap)
                    {
                        probe.V = probe.V with { Kind = ProbeKind.Http };
                        ReadKeys(httpMap, kp, HttpProbeKeys, probe);
                    }
                    else
                    {
                        var path = String(value, kp, "an HTTP path such as /healthz");
                        if (path is not null && !path.StartsWith('/'))
                        {
                            Error(value, kp, $"'{path}' is not an HTTP path; start it with /, e.g. /healthz");
                        }

                        probe.V = probe.V with { Kind = ProbeKind.Http, Path = path ?? "/" };
                    }

                    return true;
                case "tcp":
                    kinds.Add(key);
                    probe.V = probe.V with { Kind = ProbeKind.Tcp };
                    if (value is YamlMappingNode tcpMap)
                    {
                        ReadKeys(tcpMap, kp, TcpProbeKeys, probe);
                    }
                    else if (!IsNull(value) && String(value, kp) is { } target)
                    {
                        // tcp: 5432 (a port) or tcp: db (an endpoint name)
                        probe.V = int.TryParse(target, out var port)
                            ? probe.V with { Port = Int(value, kp, 1, 65535) }
                            : probe.V with { Endpoint = target };
                    }

                    return true;
                case "exec":
                    kinds.Add(key);
                    var argv = Argv(value, kp);
                    if (argv is { IsEmpty: true })
                    {
                        Error(value, kp, "is empty; give the command to run, e.g. [pg_isready, -U, postgres]");
                    }

                    probe.V = probe.V with { Kind = ProbeKind.Exec, Command = argv ?? [] };
                    return true;
                default:
                    return false;
            }
        });

        if (kinds.Count == 0)
        {
            Error(map, p, "needs one of http:, tcp: or exec:, e.g. http: /healthz");
            return null;
        }

        if (kinds.Count > 1)
        {
            Error(map, p, $"has {string.Join(" and ", kinds)}; a probe checks one way, keep one of them");
            return null;
        }

        CheckProbe(probe.V, map, p, kind);
        return probe.V;
    }

    private void CheckProbe(Probe probe, YamlMappingNode map, string p, string kind)
    {
        YamlNode At(string key) => map.Children.TryGetValue(new YamlScalarNode(key), out var n) ? n : map;

        if (kind is "liveness" or "startup" && probe.SuccessThreshold != 1)
        {
            Error(At("success_threshold"), Join(p, "success_threshold"),
                $"must be 1 for a {kind} probe, got {probe.SuccessThreshold}; one success is enough to count it alive (as Kubernetes requires)");
        }
    }

    private static readonly KeyTable<Box<Probe>> ProbeKeys = new("a probe")
    {
        ["endpoint"] = (r, v, p, b) => b.V = b.V with { Endpoint = r.String(v, p) },
        ["port"] = (r, v, p, b) => b.V = b.V with { Port = r.Int(v, p, 1, 65535) },
        ["initial_delay"] = (r, v, p, b) => b.V = b.V with { InitialDelay = r.Duration(v, p) ?? b.V.InitialDelay },
        ["period"] = (r, v, p, b) => b.V = b.V with { Period = r.Duration(v, p, allowZero: false) ?? b.V.Period },
        ["timeout"] = (r, v, p, b) => b.V = b.V with { Timeout = r.Duration(v, p, allowZero: false) ?? b.V.Timeout },
        ["success_threshold"] = (r, v, p, b) => b.V = b.V with { SuccessThreshold = r.Int(v, p, min: 1) ?? b.V.SuccessThreshold },
        ["failure_threshold"] = (r, v, p, b) => b.V = b.V with { FailureThreshold = r.Int(v, p, min: 1) ?? b.V.FailureThreshold },
        // http:, tcp: and exec: are read by ReadProbe.
    };

    private static readonly KeyTable<Box<Probe>> HttpProbeKeys = new("an http probe")
    {
        ["path"] = (r, v, p, b) => b.V = b.V with { Path = r.String(v, p) ?? "/" },
        ["endpoint"] = (r, v, p, b) => b.V = b.V with { Endpoint = r.String(v, p) },
        ["port"] = (r, v, p, b) => b.V = b.V with { Port = r.Int(v, p, 1, 65535) },
        ["headers"] = (r, v, p, b) => b.V = b.V with { Headers = r.Labels(v, p) },
    };

    private static readonly KeyTable<Box<Probe>> TcpProbeKeys = new("a tcp probe")
    {
        ["endpoint"] = (r, v, p, b) => b.V = b.V with { Endpoint = r.String(v, p) },
        ["port"] = (r, v, p, b) => b.V = b.V with { Port = r.Int(v, p, 1, 65535) },
    };

    internal static readonly IReadOnlyDictionary<string, RestartMode> RestartNames = new Dictionary<string, RestartMode>
    {
        ["always"] = RestartMode.Always,
        ["on-failure"] = RestartMode.OnFailure,
        ["never"] = RestartMode.Never,
    };

    private RestartPolicy? ReadRestart(YamlNode v, string p)
    {
        if (v is YamlScalarNode)
        {
            return Enum(v, p, RestartNames) is { } mode ? RestartPolicy.Default with { Mode = mode } : null;
        }

        var map = Mapping(v, p, "always, on-failure, never, or a mapping with mode:, max_attempts:, backoff:");
        if (map is null)
        {
            return null;
        }

        var policy = new Box<RestartPolicy>(RestartPolicy.Default);
        ReadKeys(map, p, RestartKeys, policy);
        if (policy.V.MaxBackoff < policy.V.InitialBackoff)
        {
            Error(map.Children.TryGetValue(new YamlScalarNode("max_backoff"), out var mb) ? mb : map, Join(p, "max_backoff"),
                $"{Durations.Format(policy.V.MaxBackoff)} is shorter than backoff {Durations.Format(policy.V.InitialBackoff)}; make max_backoff at least backoff");
        }

        return policy.V;
    }

    private static readonly KeyTable<Box<RestartPolicy>> RestartKeys = new("restart")
    {
        ["mode"] = (r, v, p, b) => b.V = b.V with { Mode = r.Enum(v, p, RestartNames) ?? b.V.Mode },
        ["max_attempts"] = (r, v, p, b) => b.V = b.V with { MaxAttempts = r.Int(v, p, min: 0) },
        ["backoff"] = (r, v, p, b) => b.V = b.V with { InitialBackoff = r.Duration(v, p) ?? b.V.InitialBackoff },
        ["max_backoff"] = (r, v, p, b) => b.V = b.V with { MaxBackoff = r.Duration(v, p) ?? b.V.MaxBackoff },
        ["reset_after"] = (r, v, p, b) => b.V = b.V with { ResetAfter = r.Duration(v, p) ?? b.V.ResetAfter },
    };

    internal static readonly IReadOnlyDictionary<string, UpdateOrder> OrderNames = new Dictionary<string, UpdateOrder>
    {
        ["start-first"] = UpdateOrder.StartFirst,
        ["stop-first"] = UpdateOrder.StopFirst,
    };

    internal static readonly IReadOnlyDictionary<string, FailureAction> FailureActionNames = new Dictionary<string, FailureAction>
    {
        ["rollback"] = FailureAction.Rollback,
        ["pause"] = FailureAction.Pause,
        ["continue"] = FailureAction.Continue,
    };

    private UpdateStrategy? ReadUpdate(YamlNode v, string p, UpdateStrategy start)
    {
        var map = Mapping(v, p, "a mapping with max_surge:, max_unavailable:, min_ready:, …");
        if (map is null)
        {
            return null;
        }

        var update = new Box<UpdateStrategy>(start);
        ReadKeys(map, p, UpdateKeys, update);
        if (update.V.MaxSurge.IsZero && update.V.MaxUnavailable.IsZero)
        {
            var at = map.Children.TryGetValue(new YamlScalarNode("max_unavailable"), out var mu) ? mu
                : map.Children.TryGetValue(new YamlScalarNode("max_surge"), out var ms) ? ms : map;
            Error(at, Join(p, map.Children.ContainsKey(new YamlScalarNode("max_unavailable")) ? "max_unavailable" : "max_surge"),
                "max_surge and max_unavailable are both 0, so a rolling update could never make progress; set max_surge: 1 (start a new replica first) or max_unavailable: 1");
        }

        return update.V;
    }

    private static readonly KeyTable<Box<UpdateStrategy>> UpdateKeys = new("update")
    {
        ["max_surge"] = (r, v, p, b) => b.V = b.V with { MaxSurge = r.IntOrPercent(v, p) ?? b.V.MaxSurge },
        ["max_unavailable"] = (r, v, p, b) => b.V = b.V with { MaxUnavailable = r.IntOrPercent(v, p) ?? b.V.MaxUnavailable },
        ["min_ready"] = (r, v, p, b) => b.V = b.V with { MinReady = r.Duration(v, p) ?? b.V.MinReady },
        ["progress_deadline"] = (r, v, p, b) => b.V = b.V with { ProgressDeadline = r.Duration(v, p, allowZero: false) ?? b.V.ProgressDeadline },
        ["auto_rollback"] = (r, v, p, b) => b.V = b.V with { AutoRollback = r.Bool(v, p) ?? b.V.AutoRollback },
        ["order"] = (r, v, p, b) => b.V = b.V with { Order = r.Enum(v, p, OrderNames) ?? b.V.Order },
        ["delay"] = (r, v, p, b) => b.V = b.V with { Delay = r.Duration(v, p) ?? b.V.Delay },
        ["failure_action"] = (r, v, p, b) => b.V = b.V with { FailureAction = r.Enum(v, p, FailureActionNames) ?? b.V.FailureAction },
        ["monitor"] = (r, v, p, b) => b.V = b.V with { Monitor = r.Duration(v, p) ?? b.V.Monitor },
        ["max_failure_ratio"] = (r, v, p, b) => b.V = b.V with { MaxFailureRatio = r.Double(v, p, 0, 1) ?? b.V.MaxFailureRatio },
        ["revision_history_limit"] = (r, v, p, b) => b.V = b.V with { RevisionHistoryLimit = r.Int(v, p, min: 0) ?? b.V.RevisionHistoryLimit },
    };

    internal static readonly IReadOnlyDictionary<string, DependencyCondition> ConditionNames = new Dictionary<string, DependencyCondition>
    {
        ["started"] = DependencyCondition.Started,
        ["healthy"] = DependencyCondition.Healthy,
        ["completed"] = DependencyCondition.Completed,
        ["service_started"] = DependencyCondition.Started,
        ["service_healthy"] = DependencyCondition.Healthy,
        ["service_completed_successfully"] = DependencyCondition.Completed,
    };

    private void ReadDependsOn(YamlNode v, string p, ServiceDraft d)
    {
        // depends_on: [db, cache]  or  {db: {condition: service_healthy}}  or (berth.yaml) {db: healthy}
        if (v is YamlSequenceNode seq)
        {
            for (var i = 0; i < seq.Children.Count; i++)
            {
                if (String(seq.Children[i], Index(p, i), "a service name") is { } name)
                {
                    d.DependsOn.Add(new Located<Dependency>(new Dependency(name), seq.Children[i], Index(p, i)));
                }
            }

            return;
        }

        var map = Mapping(v, p, "a list of service names, or a mapping of service names to conditions");
        if (map is null)
        {
            return;
        }

        foreach (var (name, keyNode, value) in Entries(map, p))
        {
            var dp = Join(p, name);
            var dependency = new Box<Dependency>(new Dependency(name));
            if (value is YamlMappingNode body)
            {
                ReadKeys(body, dp, DependencyKeys, dependency, allowExtensions: true);
            }
            else if (!IsNull(value))
            {
                dependency.V = dependency.V with { Condition = Enum(value, dp, ConditionNames) ?? DependencyCondition.Started };
            }

            d.DependsOn.Add(new Located<Dependency>(dependency.V, keyNode, dp));
        }
    }

    private static readonly KeyTable<Box<Dependency>> DependencyKeys = new("a dependency")
    {
        ["condition"] = (r, v, p, b) => b.V = b.V with { Condition = r.Enum(v, p, ConditionNames) ?? b.V.Condition },
        ["required"] = (r, v, p, b) => b.V = b.V with { Required = r.Bool(v, p) ?? true },
        ["restart"] = (r, v, p, b) => b.V = b.V with { Restart = r.Bool(v, p) ?? false },
    };
}
