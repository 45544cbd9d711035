using System.Collections.Immutable;
using System.Globalization;
using Berth.Core.Model;
using YamlDotNet.RepresentationModel;

namespace Berth.Core.Loading;

internal sealed partial class SpecReader
{
    private static readonly KeyTable<SpecReader> ComposeTopKeys = new("a Compose file")
    {
        ["name"] = (r, v, p, _) => r.ProjectName(v, p),
        ["services"] = (r, v, p, _) => r.ReadServices(v, p),
        ["volumes"] = (r, v, p, _) => r.ReadTopVolumes(v, p),
        ["version"] = (r, v, p, _) => r.Warning((YamlNode?)r.CurrentKey ?? v, p, "'version' is obsolete and is ignored (as Compose does); you can remove it"),
        ["networks"] = Unsupported<SpecReader>("every service of the app is on one network in Berth: replicas reach each other by service name through the mesh"),
        ["secrets"] = (r, v, p, _) => r.ReadTopFiles(v, p, MountedFileKind.Secret),
        ["configs"] = (r, v, p, _) => r.ReadTopFiles(v, p, MountedFileKind.Config),
        ["include"] = (r, v, p, _) => r.ReadInclude(v, p),
        ["models"] = Unsupported<SpecReader>(null),
    };

    private static KeyHandler<SpecReader, T> Unsupported<T>(string? hint) => (r, v, p, _) =>
        r.Warning((YamlNode?)r.CurrentKey ?? v, p, $"'{p[(p.LastIndexOf('.') + 1)..]}' is not supported yet and is ignored{(hint is null ? "" : "; " + hint)}");

    /// <summary>Top-level <c>x-berth:</c> in a Compose file carries nodes:, scheduler: and pipelines:.</summary>
    private void ComposeTopExtension(string key, YamlScalarNode keyNode, YamlNode value)
    {
        if (key != "x-berth")
        {
            return;
        }

        if (Mapping(value, key, "a mapping of Berth settings (nodes:, scheduler:, pipelines:)") is { } map)
        {
            ReadKeys(map, key, ComposeTopBerthKeys, this);
        }
    }

    private static readonly KeyTable<SpecReader> ComposeTopBerthKeys = new("x-berth")
    {
        ["nodes"] = (r, v, p, _) => r.ReadNodes(v, p),
        ["scheduler"] = (r, v, p, _) => r.ReadScheduler(v, p),
        ["pipelines"] = (r, v, p, _) => r.ReadPipelines(v, p),
        ["telemetry"] = (r, v, p, _) => r.ReadTelemetry(v, p),
    };

    private void ReadComposeService(YamlMappingNode body, string p, ServiceDraft d)
    {
        YamlNode? berth = null;
        string berthPath = "";
        ReadKeys(body, p, ComposeServiceKeys, d, allowExtensions: true, extension: (key, keyNode, value) =>
        {
            if (key == "x-berth")
            {
                berth = value;
                berthPath = Join(p, key);
            }
        });

        // x-berth is applied last so that it overrides what the Compose keys said.
        if (berth is not null && Mapping(berth, berthPath, "a mapping of Berth service settings") is { } map)
        {
            ReadKeys(map, berthPath, BerthOnlyKeys, d);
        }
    }

    private static readonly HashSet<string> ComposeUnsupportedServiceKeys =
    [
        "annotations", "attach", "blkio_config", "cgroup", "cgroup_parent",
        "cpu_count", "cpu_percent", "cpu_period", "cpu_quota", "cpu_rt_period", "cpu_rt_runtime", "cpu_shares", "cpuset",
        "credential_spec", "device_cgroup_rules", "dns", "dns_opt", "dns_search", "domainname",
        "driver_opts", "external_links", "gpus", "ipc", "isolation",
        "label_file", "mac_address", "mem_swappiness", "memswap_limit", "models",
        "oom_kill_disable", "oom_score_adj", "pid", "platform", "post_start", "pre_stop",
        "provider", "runtime", "stdin_open", "storage_opt", "tty", "use_api_socket", "userns_mode", "uts", "volumes_from",
    ];

    // Built on first use: it borrows handlers from BerthServiceKeys, which lives in another file of this partial class.
    private static KeyTable<ServiceDraft>? _composeServiceKeys;

    private static KeyTable<ServiceDraft> ComposeServiceKeys => _composeServiceKeys ??= CreateComposeServiceKeys();

    private static KeyTable<ServiceDraft> CreateComposeServiceKeys()
    {
        var keys = new KeyTable<ServiceDraft>("a Compose service")
        {
            ["image"] = BerthServiceKeys["image"],
            ["build"] = BerthServiceKeys["build"],
            ["entrypoint"] = BerthServiceKeys["entrypoint"],
            ["working_dir"] = BerthServiceKeys["working_dir"],
            ["user"] = BerthServiceKeys["user"],
            ["environment"] = BerthServiceKeys["environment"],
            ["env_file"] = BerthServiceKeys["env_file"],
            ["volumes"] = BerthServiceKeys["volumes"],
            ["depends_on"] = BerthServiceKeys["depends_on"],
            ["labels"] = BerthServiceKeys["labels"],
            ["profiles"] = BerthServiceKeys["profiles"],
            ["stop_grace_period"] = BerthServiceKeys["stop_grace_period"],
            ["develop"] = BerthServiceKeys["develop"],
            ["extends"] = (_, _, _, _) => { }, // applied before the service's own keys (ApplyExtends)
            ["command"] = (r, v, p, d) => d.S = d.S with { Command = IsNull(v) ? [] : r.Argv(v, p) ?? [] },
            ["ports"] = (r, v, p, d) => r.ReadPorts(v, p, d),
            ["expose"] = (r, v, p, d) => r.ReadExpose(v, p, d),
            ["healthcheck"] = (r, v, p, d) => r.ReadHealthcheck(v, p, d),
            ["restart"] = (r, v, p, d) =>
            {
                var restart = r.ReadComposeRestart(v, p);
                if (!d.HasRestartPolicy && restart is not null)
                {
                    d.S = d.S with { Restart = restart };
                }
            },
            ["deploy"] = (r, v, p, d) => r.ReadDeploy(v, p, d),
            ["scale"] = (r, v, p, d) => d.S = d.S with { Replicas = Alias(d, "scale", r.Int(v, p, min: 0), v) ?? d.S.Replicas },
            ["cpus"] = (r, v, p, d) => d.S = d.S with { Resources = d.S.Resources with { CpuLimit = Alias(d, "cpus", r.ComposeCpu(v, p), v) } },
            ["mem_limit"] = (r, v, p, d) => d.S = d.S with { Resources = d.S.Resources with { MemoryLimit = Alias(d, "mem_limit", r.Memory(v, p, dockerUnits: true), v) } },
            ["mem_reservation"] = (r, v, p, d) => d.S = d.S with { Resources = d.S.Resources with { MemoryRequest = Alias(d, "mem_reservation", r.Memory(v, p, dockerUnits: true), v) } },
        };
        foreach (var key in ComposeUnsupportedServiceKeys)
        {
            keys[key] = Unsupported<ServiceDraft>(key switch
            {
                "dns" or "dns_opt" or "dns_search" or "domainname" or "mac_address" => "containers use the host's network and its resolver",
                "ipc" or "pid" or "uts" or "userns_mode" or "cgroup" or "cgroup_parent" or "isolation" => "Berth puts each replica in its own cgroup and namespaces",
                "blkio_config" or "cpu_count" or "cpu_percent" or "cpu_period" or "cpu_quota" or "cpu_rt_period" or "cpu_rt_runtime" or "cpu_shares" or "cpuset"
                    or "mem_swappiness" or "memswap_limit" or "oom_kill_disable" or "oom_score_adj" or "device_cgroup_rules" =>
                    "Berth sets CPU and memory limits itself from cpus, mem_limit and deploy.resources",
                "tty" or "stdin_open" or "attach" => "replicas run detached; read their output with berth logs",
                "platform" => "images run on this machine's platform",
                "post_start" or "pre_stop" => "lifecycle hooks do not run yet",
                "gpus" => "GPUs are not passed to containers yet",
                "volumes_from" => "share a named volume between the services instead",
                "runtime" => "containers run with the engine's default OCI runtime",
                _ => null,
            });
        }

        AddRuntimeKeys(keys);

        return keys;
    }

    /// <summary>Records a value of a key that has a twin (see <see cref="ServiceDraft.Aliases"/>) and passes it on.</summary>
    private static T? Alias<T>(ServiceDraft d, string key, T? value, YamlNode node) where T : struct
    {
        if (value is { } v)
        {
            d.Aliases[key] = (node is YamlScalarNode s ? s.Value ?? "" : "", v, node);
        }

        return value;
    }

    /// <summary>Compose's pairs of keys that must agree: a distinct value on both is an error naming both, as Compose.</summary>
    private static readonly (string First, string Second)[] AliasPairs =
    [
        ("scale", "deploy.replicas"),
        ("cpus", "deploy.resources.limits.cpus"),
        ("mem_limit", "deploy.resources.limits.memory"),
        ("mem_reservation", "deploy.resources.reservations.memory"),
        ("pids_limit", "deploy.resources.limits.pids"),
    ];

    private void CheckAliases(ServiceDraft d)
    {
        foreach (var (first, second) in AliasPairs)
        {
            if (d.Aliases.TryGetValue(first, out var a) && d.Aliases.TryGetValue(second, out var b) && !Equals(a.Value, b.Value))
            {
                var (later, laterKey, earlier, earlierKey) = (a.Node.Start.Line, a.Node.Start.Column).CompareTo((b.Node.Start.Line, b.Node.Start.Column)) > 0 && FileOf(a.Node) == FileOf(b.Node)
                    ? (a, first, b, second) : (b, second, a, first);
                Error(later.Node, Join(d.Path, laterKey),
                    $"can't set distinct values on '{first}' ({a.Text}) and '{second}' ({b.Text}); {earlierKey} is at {FileOf(earlier.Node)}:{earlier.Node.Start.Line}:{earlier.Node.Start.Column}; keep one of them (Compose rejects both with different values)");
            }
        }
    }

    private void ReadPorts(YamlNode v, string p, ServiceDraft d)
    {
        var seq = Sequence(v, p, "a list of ports (\"8080:80\", 3000, or {target:, published:})");
        for (var i = 0; seq is not null && i < seq.Children.Count; i++)
        {
            var node = seq.Children[i];
            var ip = Index(p, i);
            if (node is YamlMappingNode map)
            {
                ReadLongPort(map, ip, d);
            }
            else if (String(node, ip, "a port") is { } text)
            {
                ReadShortPort(text, node, ip, d);
            }
        }
    }

    /// <summary>Compose's short port syntax: <c>[HOST_IP:][PUBLISHED[-RANGE]:]TARGET[-RANGE][/PROTOCOL]</c>.</summary>
    private void ReadShortPort(string text, YamlNode node, string p, ServiceDraft d)
    {
        var spec = text.Trim();
        var protocol = "tcp";
        var slash = spec.LastIndexOf('/');
        if (slash >= 0)
        {
            protocol = spec[(slash + 1)..];
            spec = spec[..slash];
        }

        string? hostIp = null;
        if (spec.StartsWith('['))
        {
            var close = spec.IndexOf(']', StringComparison.Ordinal);
            if (close < 0 || close + 1 >= spec.Length || spec[close + 1] != ':')
            {
                Error(node, p, $"'{text}' has an IPv6 address without its closing ']:'; write [::1]:8080:80");
                return;
            }

            hostIp = spec[1..close];
            spec = spec[(close + 2)..];
        }

        var parts = spec.Split(':');
        string? publishedText;
        string targetText;
        switch (parts.Length)
        {
            case 1:
                (publishedText, targetText) = (null, parts[0]);
                break;
            case 2:
                (publishedText, targetText) = (parts[0], parts[1]);
                break;
            case 3 when hostIp is null:
                (hostIp, publishedText, targetText) = (parts[0], parts[1], parts[2]);
                break;
            default:
                Error(node, p, $"'{text}' is not a port; write TARGET, PUBLISHED:TARGET or HOST_IP:PUBLISHED:TARGET, e.g. 8080:80");
                return;
        }

        if (publishedText is { Length: 0 })
        {
            publishedText = null; // 127.0.0.1::80
        }

        if (!TryRange(targetText, out var targetFrom, out var targetTo)
            || (publishedText is not null && !TryRange(publishedText, out _, out _)))
        {
            Error(node, p, $"'{text}' is not a port; ports are numbers from 1 to 65535, e.g. 8080:80 or 9000-9001:9000-9001");
            return;
        }

        var publishedFrom = 0;
        var publishedTo = 0;
        if (publishedText is not null)
        {
            TryRange(publishedText, out publishedFrom, out publishedTo);
            if (targetFrom == targetTo)
            {
                // "8000-8010:80": Docker publishes the first free port of the range; Berth takes the first.
                publishedTo = publishedFrom;
            }
            else if (publishedTo - publishedFrom != targetTo - targetFrom && publishedFrom != publishedTo)
            {
                Error(node, p, $"'{text}' maps {publishedTo - publishedFrom + 1} published ports to {targetTo - targetFrom + 1} target ports; make the ranges the same size");
                return;
            }
        }

        for (var port = targetFrom; port <= targetTo; port++)
        {
            int? published = publishedText is null ? null : publishedFrom == publishedTo ? publishedFrom : publishedFrom + (port - targetFrom);
            AddComposePort(d, node, p, name: null, port, published, hostIp, protocol, appProtocol: null);
        }
    }

    private static bool TryRange(string text, out int from, out int to)
    {
        from = to = 0;
        var dash = text.IndexOf('-', StringComparison.Ordinal);
        var ok = dash < 0
            ? int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out from) && (to = from) > 0
            : int.TryParse(text.AsSpan(0, dash), NumberStyles.None, CultureInfo.InvariantCulture, out from)
              && int.TryParse(text.AsSpan(dash + 1), NumberStyles.None, CultureInfo.InvariantCulture, out to);
        return ok && from is >= 1 and <= 65535 && to is >= 1 and <= 65535 && to >= from && to - from < 1000;
    }

    private void ReadLongPort(YamlMappingNode map, string p, ServiceDraft d)
    {
        var port = new Box<(int? Target, string? Published, string? HostIp, string Protocol, string? AppProtocol, string? Name)>((null, null, null, "tcp", null, null));
        ReadKeys(map, p, LongPortKeys, port, allowExtensions: true);
        if (port.V.Target is not { } target)
        {
            if (!map.Children.ContainsKey(new YamlScalarNode("target")))
            {
                Error(map, p, "needs target: (the port the program listens on)");
            }

            return;
        }

        int? published = null;
        if (port.V.Published is { } text)
        {
            if (!TryRange(text, out var from, out var to))
            {
                Error(map.Children[new YamlScalarNode("published")], Join(p, "published"), $"'{text}' is not a port or port range from 1 to 65535");
                return;
            }

            // A published range for one target: Docker picks a free one; Berth takes the first.
            published = from;
            _ = to;
        }

        AddComposePort(d, map, p, port.V.Name, target, published, port.V.HostIp, port.V.Protocol, port.V.AppProtocol);
    }

    private static readonly KeyTable<Box<(int? Target, string? Published, string? HostIp, string Protocol, string? AppProtocol, string? Name)>> LongPortKeys = new("a port")
    {
        ["target"] = (r, v, p, b) => b.V = b.V with { Target = r.Int(v, p, 1, 65535) },
        ["published"] = (r, v, p, b) => b.V = b.V with { Published = r.String(v, p) },
        ["host_ip"] = (r, v, p, b) => b.V = b.V with { HostIp = r.String(v, p) },
        ["protocol"] = (r, v, p, b) => b.V = b.V with { Protocol = r.String(v, p) ?? "tcp" },
        ["app_protocol"] = (r, v, p, b) => b.V = b.V with { AppProtocol = r.String(v, p) },
        ["name"] = (r, v, p, b) => b.V = b.V with { Name = r.String(v, p) },
        ["mode"] = (r, v, p, b) =>
        {
            if (r.String(v, p) is { } mode and not ("host" or "ingress"))
            {
                r.Error(v, p, $"'{mode}' is not a port mode; use host or ingress");
            }
        },
    };

    /// <summary>A Compose port becomes an endpoint: the published port is its stable port; TCP unless
    /// <c>app_protocol</c> says HTTP (an HTTP listener would break a database's protocol).</summary>
    private void AddComposePort(ServiceDraft d, YamlNode node, string p, string? name, int target, int? published, string? hostIp, string protocol, string? appProtocol)
    {
        if (protocol is "udp" or "sctp")
        {
            Warning(node, p, $"{protocol} ports are not supported yet; port {target}/{protocol} is ignored");
            return;
        }

        if (protocol != "tcp")
        {
            Error(node, p, $"'{protocol}' is not a port protocol; use tcp");
            return;
        }

        if (hostIp is not null && !IsIpAddress(hostIp))
        {
            Error(node, p, $"'{hostIp}' is not an IP address; write four numbers such as 127.0.0.1, or an IPv6 address in brackets such as [::1]");
            return;
        }

        // expose: and ports: naming the same port are one port: the published one wins, in either order.
        if (published is not null && d.Endpoints.FindIndex(e => e.Value.TargetPort == target && e.Value.Port is null && e.Value.Name.StartsWith("tcp", StringComparison.Ordinal)) is var exposed and >= 0)
        {
            d.Endpoints.RemoveAt(exposed);
        }

        if (d.Endpoints.Any(e => e.Value.TargetPort == target && e.Value.Port == published && e.Value.HostIp == (hostIp ?? "127.0.0.1")))
        {
            return; // the same port again (an override file repeating it): Compose keeps one
        }

        var http = appProtocol?.ToLowerInvariant() is "http" or "https" or "http2" or "h2c" or "grpc";
        var kind = http ? "http" : "tcp";
        if (name is null)
        {
            name = d.Endpoints.Any(e => e.Value.Name == kind) ? $"{kind}-{target}" : kind;
        }

        d.Endpoints.Add(new Located<Endpoint>(new Endpoint
        {
            Name = name,
            Port = published,
            TargetPort = target,
            Protocol = http ? EndpointProtocol.Http : EndpointProtocol.Tcp,
            HostIp = hostIp ?? "127.0.0.1",

            // A published port is reachable from outside: on Kubernetes an Ingress (http) or a LoadBalancer Service (tcp).
            Public = published is not null,
        }, node, p));
    }

    /// <summary>An IPv4 address in four dotted numbers (<c>127.0.1</c>, which the OS would take, is not), or an IPv6 address.</summary>
    private static bool IsIpAddress(string text) =>
        text.Contains(':', StringComparison.Ordinal)
            ? System.Net.IPAddress.TryParse(text, out var v6) && v6.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6
            : text.Split('.') is { Length: 4 } parts && parts.All(part => part.Length is > 0 and <= 3 && part.All(char.IsAsciiDigit) && int.Parse(part, CultureInfo.InvariantCulture) <= 255);

    private void ReadExpose(YamlNode v, string p, ServiceDraft d)
    {
        var seq = Sequence(v, p, "a list of ports");
        for (var i = 0; seq is not null && i < seq.Children.Count; i++)
        {
            var ip = Index(p, i);
            var text = String(seq.Children[i], ip, "a port");
            if (text is null)
            {
                continue;
            }

            var spec = text.Trim();
            var protocol = "tcp";
            if (spec.IndexOf('/') is var slash and >= 0)
            {
                protocol = spec[(slash + 1)..];
                spec = spec[..slash];
            }

            if (!TryRange(spec, out var from, out var to))
            {
                Error(seq.Children[i], ip, $"'{text}' is not a port; ports are numbers from 1 to 65535");
                continue;
            }

            for (var port = from; port <= to; port++)
            {
                if (d.Endpoints.Any(e => e.Value.TargetPort == port))
                {
                    continue; // already an endpoint through ports:
                }

                AddComposePort(d, seq.Children[i], ip, null, port, null, null, protocol, null);
            }
        }
    }

    private void ReadHealthcheck(YamlNode v, string p, ServiceDraft d)
    {
        var map = Mapping(v, p, "a mapping with test:, interval:, timeout:, retries:");
        if (map is null)
        {
            return;
        }

        // Docker's defaults, not Kubernetes': the file means what it means under Compose.
        var probe = new Box<Probe>(new Probe
        {
            Kind = ProbeKind.Exec,
            Period = ComposeDefaults.HealthcheckInterval,
            Timeout = ComposeDefaults.HealthcheckTimeout,
            FailureThreshold = ComposeDefaults.HealthcheckRetries,
        });
        var disabled = new Box<bool>(false);
        var hasTest = false;
        ReadKeys(map, p, HealthcheckKeys, probe, allowExtensions: true, other: (key, keyNode, value) =>
        {
            var kp = Join(p, key);
            switch (key)
            {
                case "test":
                    hasTest = true;
                    var command = ReadHealthTest(value, kp);
                    if (command is null)
                    {
                        return true;
                    }

                    if (command.Value.IsEmpty)
                    {
                        disabled.V = true;
                    }

                    probe.V = probe.V with { Command = command.Value };
                    return true;
                case "disable":
                    disabled.V |= Bool(value, kp) ?? false;
                    return true;
                default:
                    return false;
            }
        });

        if (disabled.V)
        {
            d.Healthcheck = null; // also undoes a healthcheck the overridden file gave
            return;
        }

        if (probe.V.Command.IsEmpty)
        {
            if (!hasTest)
            {
                // As Compose: the container keeps the image's HEALTHCHECK, with these timings.
                Warning(map, p, "has no test:, so Docker runs the image's own HEALTHCHECK; Berth does not read its result, so the service gets no readiness probe from it (give test: to have one)");
            }

            return;
        }

        d.Healthcheck = probe.V;
    }

    private ImmutableArray<string>? ReadHealthTest(YamlNode value, string p)
    {
        if (value is YamlScalarNode)
        {
            // A string is run by the container's shell, as CMD-SHELL.
            var text = String(value, p);
            return text is null ? null : ["/bin/sh", "-c", text];
        }

        var argv = Argv(value, p);
        if (argv is not { } items)
        {
            return null;
        }

        switch (items.FirstOrDefault())
        {
            case "NONE":
                return [];
            case "CMD" when items.Length > 1:
                return items[1..];
            case "CMD-SHELL" when items.Length == 2:
                return ["/bin/sh", "-c", items[1]];
            default:
                Error(value, p, $"must start with \"CMD\" (then the command and its arguments), \"CMD-SHELL\" (then one shell command) or be [\"NONE\"], got [{string.Join(", ", items.Select(i => $"\"{i}\""))}]");
                return null;
        }
    }

    private static readonly KeyTable<Box<Probe>> HealthcheckKeys = new("healthcheck")
    {
        ["interval"] = (r, v, p, b) => b.V = b.V with { Period = r.Duration(v, p, allowZero: false) ?? b.V.Period },
        ["timeout"] = (r, v, p, b) => b.V = b.V with { Timeout = r.Duration(v, p, allowZero: false) ?? b.V.Timeout },
        // 0 is Docker's "the default" (3).
        ["retries"] = (r, v, p, b) => b.V = b.V with { FailureThreshold = r.Int(v, p, min: 0) is { } n and > 0 ? n : b.V.FailureThreshold },
        ["start_period"] = (r, v, p, b) => b.V = b.V with { InitialDelay = r.Duration(v, p) ?? b.V.InitialDelay },
        ["start_interval"] = (r, v, p, _) => r.Warning(v, p, "'start_interval' is not supported yet and is ignored; probes run every interval from the start"),
        // test: and disable: are read by ReadHealthcheck.
    };

    private RestartPolicy? ReadComposeRestart(YamlNode v, string p)
    {
        var text = String(v, p, "no, always, on-failure[:N] or unless-stopped");
        switch (text)
        {
            case null:
                return null;
            case "no" or "\"no\"":
                return RestartPolicy.Default with { Mode = RestartMode.Never };
            case "always" or "unless-stopped":
                return RestartPolicy.Default with { Mode = RestartMode.Always };
            case "on-failure":
                return RestartPolicy.Default with { Mode = RestartMode.OnFailure };
        }

        if (text.StartsWith("on-failure:", StringComparison.Ordinal)
            && int.TryParse(text.AsSpan("on-failure:".Length), NumberStyles.None, CultureInfo.InvariantCulture, out var max))
        {
            return RestartPolicy.Default with { Mode = RestartMode.OnFailure, MaxAttempts = max };
        }

        var suggestion = Suggestions.Closest(text, ["no", "always", "on-failure", "unless-stopped"]);
        Error(v, p, $"'{text}' is not a restart policy; use no, always, on-failure, on-failure:N or unless-stopped{(suggestion is null ? "" : $" (did you mean '{suggestion}'?)")}");
        return null;
    }

    private void ReadDeploy(YamlNode v, string p, ServiceDraft d)
    {
        if (Mapping(v, p, "a mapping (replicas:, resources:, restart_policy:, update_config:, …)") is not { } map)
        {
            return;
        }

        ReadKeys(map, p, DeployKeys, d, allowExtensions: true);
    }

    private static readonly KeyTable<ServiceDraft> DeployKeys = new("deploy")
    {
        ["replicas"] = (r, v, p, d) => d.S = d.S with { Replicas = Alias(d, "deploy.replicas", r.Int(v, p, min: 0), v) ?? d.S.Replicas },
        // Swarm's service labels, not the container's: kept apart from labels:, as Compose does.
        ["labels"] = (r, v, p, d) => d.S = d.S with { DeployLabels = d.S.DeployLabels.SetItems(r.Labels(v, p)) },
        ["resources"] = (r, v, p, d) => r.ReadComposeResources(v, p, d),
        ["restart_policy"] = (r, v, p, d) => r.ReadRestartPolicy(v, p, d),
        ["update_config"] = (r, v, p, d) => d.S = d.S with { Update = r.ReadUpdateConfig(v, p, d.S.Update) ?? d.S.Update },
        ["rollback_config"] = (r, v, p, d) => d.S = d.S with { Rollback = r.ReadUpdateConfig(v, p, UpdateStrategy.Default) },
        ["mode"] = (r, v, p, d) =>
        {
            if (r.String(v, p) is { } mode and not "replicated")
            {
                r.Warning(v, p, $"mode '{mode}' is not supported yet; the service runs as replicated");
            }
        },
        ["placement"] = Unsupported<ServiceDraft>("use x-berth nodes: and scheduler: to place replicas"),
        ["endpoint_mode"] = Unsupported<ServiceDraft>(null),
    };

    private void ReadComposeResources(YamlNode v, string p, ServiceDraft d)
    {
        if (Mapping(v, p, "a mapping with limits: and reservations:") is not { } map)
        {
            return;
        }

        var resources = new Box<Resources>(d.S.Resources);
        ReadKeys(map, p, ComposeResourceKeys, resources, allowExtensions: true);
        CheckLimits(resources.V, map, p, "reservations", "limits", "cpus", "memory");
        d.S = d.S with { Resources = resources.V };

        YamlNode? Node(string section, string key) =>
            map.Children.TryGetValue(new YamlScalarNode(section), out var m) && m is YamlMappingNode mm && mm.Children.TryGetValue(new YamlScalarNode(key), out var n) ? n : null;

        if (Node("limits", "cpus") is { } cpus)
        {
            Alias(d, "deploy.resources.limits.cpus", resources.V.CpuLimit, cpus);
        }

        if (Node("limits", "memory") is { } memory)
        {
            Alias(d, "deploy.resources.limits.memory", resources.V.MemoryLimit, memory);
        }

        if (Node("reservations", "memory") is { } reservation)
        {
            Alias(d, "deploy.resources.reservations.memory", resources.V.MemoryRequest, reservation);
        }

        if (Node("limits", "pids") is { } pids && Alias(d, "deploy.resources.limits.pids", (long?)Int(pids, Join(p, "limits.pids"), min: -1), pids) is { } pidsLimit)
        {
            d.S = d.S with { Container = d.S.Container with { PidsLimit = pidsLimit } };
        }
    }

    private static readonly KeyTable<Box<Resources>> ComposeLimitKeys = new("deploy.resources.limits")
    {
        ["cpus"] = (r, v, p, b) => b.V = b.V with { CpuLimit = r.ComposeCpu(v, p) },
        ["memory"] = (r, v, p, b) => b.V = b.V with { MemoryLimit = r.Memory(v, p, dockerUnits: true) },
        ["pids"] = (r, v, p, _) => { }, // read by ReadComposeResources, which has the service
    };

    private static readonly KeyTable<Box<Resources>> ComposeReservationKeys = new("deploy.resources.reservations")
    {
        ["cpus"] = (r, v, p, b) => b.V = b.V with { CpuRequest = r.ComposeCpu(v, p) },
        ["memory"] = (r, v, p, b) => b.V = b.V with { MemoryRequest = r.Memory(v, p, dockerUnits: true) },
        ["devices"] = (r, v, p, _) => r.Warning(v, p, "'devices' is not supported yet and is ignored"),
        ["generic_resources"] = (r, v, p, _) => r.Warning(v, p, "'generic_resources' is not supported yet and is ignored"),
    };

    private static readonly KeyTable<Box<Resources>> ComposeResourceKeys = new("deploy.resources")
    {
        ["limits"] = (r, v, p, b) =>
        {
            if (r.Mapping(v, p, "a mapping with cpus: and memory:") is { } m)
            {
                r.ReadKeys(m, p, ComposeLimitKeys, b, allowExtensions: true);
            }
        },
        ["reservations"] = (r, v, p, b) =>
        {
            if (r.Mapping(v, p, "a mapping with cpus: and memory:") is { } m)
            {
                r.ReadKeys(m, p, ComposeReservationKeys, b, allowExtensions: true);
            }
        },
    };

    private void ReadRestartPolicy(YamlNode v, string p, ServiceDraft d)
    {
        if (Mapping(v, p, "a mapping with condition:, delay:, max_attempts:, window:") is not { } map)
        {
            return;
        }

        // Swarm's restart_policy defaults to condition any.
        var policy = new Box<RestartPolicy>(RestartPolicy.Default with { Mode = RestartMode.Always });
        ReadKeys(map, p, RestartPolicyKeys, policy, allowExtensions: true);
        d.S = d.S with { Restart = policy.V };
        d.HasRestartPolicy = true;
    }

    private static readonly IReadOnlyDictionary<string, RestartMode> ConditionRestartNames = new Dictionary<string, RestartMode>
    {
        ["none"] = RestartMode.Never,
        ["on-failure"] = RestartMode.OnFailure,
        ["any"] = RestartMode.Always,
    };

    private static readonly KeyTable<Box<RestartPolicy>> RestartPolicyKeys = new("deploy.restart_policy")
    {
        ["condition"] = (r, v, p, b) => b.V = b.V with { Mode = r.Enum(v, p, ConditionRestartNames) ?? b.V.Mode },
        ["delay"] = (r, v, p, b) => b.V = b.V with { InitialBackoff = r.Duration(v, p) ?? b.V.InitialBackoff },
        ["max_attempts"] = (r, v, p, b) => b.V = b.V with { MaxAttempts = r.Int(v, p, min: 0) is { } n && n > 0 ? n : null },
        ["window"] = (r, v, p, b) => b.V = b.V with { ResetAfter = r.Duration(v, p) ?? b.V.ResetAfter },
    };

    /// <summary>Swarm's update_config onto a rolling update: parallelism replicas at a time, surging (start-first) or
    /// taking down (stop-first, Swarm's default order) that many.</summary>
    private UpdateStrategy? ReadUpdateConfig(YamlNode v, string p, UpdateStrategy start)
    {
        if (Mapping(v, p, "a mapping with parallelism:, delay:, order:, failure_action:, monitor:, max_failure_ratio:") is not { } map)
        {
            return null;
        }

        var parallelism = new Box<int?>(null);
        var update = new Box<UpdateStrategy>(start with { Order = UpdateOrder.StopFirst });
        ReadKeys(map, p, UpdateConfigKeys, update, allowExtensions: true, other: (key, _, value) =>
        {
            if (key != "parallelism")
            {
                return false;
            }

            parallelism.V = Int(value, Join(p, key), min: 0);
            return true;
        });

        // 0 means all at once; unset means Swarm's 1.
        var step = parallelism.V is 0 ? Model.IntOrPercent.Percent(100) : Model.IntOrPercent.Count(parallelism.V ?? 1);
        return update.V.Order == UpdateOrder.StartFirst
            ? update.V with { MaxSurge = step, MaxUnavailable = Model.IntOrPercent.Count(0) }
            : update.V with { MaxSurge = Model.IntOrPercent.Count(0), MaxUnavailable = step };
    }

    private static readonly KeyTable<Box<UpdateStrategy>> UpdateConfigKeys = new("update_config")
    {
        ["delay"] = (r, v, p, b) => b.V = b.V with { Delay = r.Duration(v, p) ?? b.V.Delay },
        ["order"] = (r, v, p, b) => b.V = b.V with { Order = r.Enum(v, p, OrderNames) ?? b.V.Order },
        ["failure_action"] = (r, v, p, b) => b.V = b.V with { FailureAction = r.Enum(v, p, FailureActionNames) ?? b.V.FailureAction },
        ["monitor"] = (r, v, p, b) => b.V = b.V with { Monitor = r.Duration(v, p) ?? b.V.Monitor },
        ["max_failure_ratio"] = (r, v, p, b) => b.V = b.V with { MaxFailureRatio = r.Double(v, p) ?? b.V.MaxFailureRatio }, // a number, as Compose's schema
        // parallelism is read by ReadUpdateConfig.
    };
}

/// <summary>Docker's healthcheck defaults, used for Compose healthchecks.</summary>
public static class ComposeDefaults
{
    /// <summary>30s, as Docker's HEALTHCHECK --interval.</summary>
    public static readonly TimeSpan HealthcheckInterval = TimeSpan.FromSeconds(30);

    /// <summary>30s, as Docker's HEALTHCHECK --timeout.</summary>
    public static readonly TimeSpan HealthcheckTimeout = TimeSpan.FromSeconds(30);

    /// <summary>3, as Docker's HEALTHCHECK --retries.</summary>
    public const int HealthcheckRetries = 3;
}
