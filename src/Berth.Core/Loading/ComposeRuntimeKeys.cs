using System.Collections.Immutable;
using System.Globalization;
using Berth.Core.Model;
using YamlDotNet.RepresentationModel;

namespace Berth.Core.Loading;

/// <summary>Compose keys that shape what runs: secrets and configs mounted as files, container options passed to Docker,
/// pull_policy, and the top-level secrets:, configs: and volumes: they refer to.</summary>
internal sealed partial class SpecReader
{
    /// <summary>A top-level secret or config: where its content comes from.</summary>
    private sealed record FileSource(MountedFileKind Kind, string? File, string? Content, YamlNode Node);

    private readonly Dictionary<string, FileSource> _secrets = new(StringComparer.Ordinal);
    private readonly Dictionary<string, FileSource> _configs = new(StringComparer.Ordinal);

    /// <summary>A top-level volume's engine name and whether it is external.</summary>
    private readonly Dictionary<string, (string? Name, bool External)> _volumeOptions = new(StringComparer.Ordinal);

    private void ReadTopFiles(YamlNode v, string path, MountedFileKind kind)
    {
        var into = kind == MountedFileKind.Secret ? _secrets : _configs;
        if (Mapping(v, path, $"a mapping of {(kind == MountedFileKind.Secret ? "secret" : "config")} names to file:, environment: or content:") is not { } map)
        {
            return;
        }

        foreach (var (name, keyNode, value) in Entries(map, path))
        {
            var p = Join(path, name);
            if (Mapping(value, p, "a mapping with file:, environment: or content:") is not { } body)
            {
                continue;
            }

            var source = new Box<(string? File, string? Env, string? Content, bool External)>((null, null, null, false));
            ReadKeys(body, p, TopFileKeys, source, allowExtensions: true);
            var (file, env, content, external) = source.V;
            var given = new[] { file, env, content }.Count(x => x is not null);
            if (external)
            {
                Error(keyNode, Join(p, "external"), $"external {kind.ToString().ToLowerInvariant()}s need a secret store, which Berth does not have; give it file:, environment: or content: instead");
                continue;
            }

            if (given != 1)
            {
                Error(keyNode, p, given == 0 ? "needs one of file:, environment: or content:" : "has more than one of file:, environment: and content:; keep one");
                continue;
            }

            string? text = content;
            if (env is not null)
            {
                if (!Interpolator.Variables.TryGetValue(env, out text))
                {
                    Error(body.Children[new YamlScalarNode("environment")], Join(p, "environment"), $"variable {env} is not set, so {kind.ToString().ToLowerInvariant()} {name} has no value; set it (or use file:)");
                    continue;
                }
            }

            if (file is not null && !System.IO.File.Exists(file))
            {
                Error(body.Children[new YamlScalarNode("file")], Join(p, "file"), $"'{file}' does not exist; create it, or point file: at the {kind.ToString().ToLowerInvariant()}'s file");
                continue;
            }

            into[name] = new FileSource(kind, file, text, keyNode);
        }
    }

    private static readonly KeyTable<Box<(string? File, string? Env, string? Content, bool External)>> TopFileKeys = new("a secret or config")
    {
        ["file"] = (r, v, p, b) => b.V = b.V with { File = r.String(v, p) is { } f ? r.ResolvePath(f) : null },
        ["environment"] = (r, v, p, b) => b.V = b.V with { Env = r.String(v, p) },
        ["content"] = (r, v, p, b) => b.V = b.V with { Content = r.String(v, p) },
        ["external"] = (r, v, p, b) => b.V = b.V with { External = r.Bool(v, p) ?? false },
        ["name"] = (r, v, p, _) => r.Warning(v, p, "'name' is not needed here: Berth mounts the file itself and no store names it; ignored"),
        ["labels"] = (r, v, p, _) => r.Warning(v, p, "'labels' of a secret or config are not supported yet and are ignored"),
        ["driver"] = (r, v, p, _) => r.Warning(v, p, "'driver' is not supported: Berth mounts the file itself; ignored"),
        ["driver_opts"] = (r, v, p, _) => r.Warning(v, p, "'driver_opts' is not supported: Berth mounts the file itself; ignored"),
        ["template_driver"] = (r, v, p, _) => r.Warning(v, p, "'template_driver' is not supported yet; the content is used as is"),
    };

    /// <summary>A service's secrets: or configs: entry, resolved against the top-level definitions once all are read.</summary>
    internal sealed record FileRef(MountedFileKind Kind, string Source, string? Target, string? Uid, string? Gid, int? Mode, YamlNode Node, string Path);

    private void ReadServiceFiles(YamlNode v, string p, ServiceDraft d, MountedFileKind kind)
    {
        var seq = Sequence(v, p, $"a list of {(kind == MountedFileKind.Secret ? "secret" : "config")} names, or of {{source:, target:, uid:, gid:, mode:}}");
        for (var i = 0; seq is not null && i < seq.Children.Count; i++)
        {
            var node = seq.Children[i];
            var ip = Index(p, i);
            if (node is YamlMappingNode map)
            {
                var entry = new Box<FileRef>(new FileRef(kind, "", null, null, null, null, node, ip));
                ReadKeys(map, ip, FileRefKeys, entry, allowExtensions: true);
                if (entry.V.Source.Length == 0)
                {
                    Error(map, ip, "needs source: (the name of a top-level secret or config)");
                    continue;
                }

                d.Files.Add(entry.V);
            }
            else if (String(node, ip, "a name") is { } name)
            {
                d.Files.Add(new FileRef(kind, name, null, null, null, null, node, ip));
            }
        }
    }

    private static readonly KeyTable<Box<FileRef>> FileRefKeys = new("a secret or config of a service")
    {
        ["source"] = (r, v, p, b) => b.V = b.V with { Source = r.String(v, p) ?? "" },
        ["target"] = (r, v, p, b) => b.V = b.V with { Target = r.String(v, p) },
        ["uid"] = (r, v, p, b) => b.V = b.V with { Uid = r.String(v, p) },
        ["gid"] = (r, v, p, b) => b.V = b.V with { Gid = r.String(v, p) },
        ["mode"] = (r, v, p, b) => b.V = b.V with { Mode = r.FileMode(v, p) },
    };

    /// <summary>A file mode in octal (<c>0440</c>, <c>0o440</c>, <c>"440"</c> as Compose writes it).</summary>
    public int? FileMode(YamlNode node, string path)
    {
        var text = String(node, path, "an octal file mode such as 0440");
        if (text is null)
        {
            return null;
        }

        var digits = text.Trim();
        digits = digits.StartsWith("0o", StringComparison.OrdinalIgnoreCase) ? digits[2..] : digits;
        if (digits.Length == 0 || digits.Length > 4 || !digits.All(c => c is >= '0' and <= '7'))
        {
            Error(node, path, $"'{text}' is not an octal file mode; write e.g. 0440 or 0o440");
            return null;
        }

        return Convert.ToInt32(digits, 8);
    }

    /// <summary>Turns the service's secrets:/configs: entries into files to mount, once every top-level definition is known.</summary>
    private void ResolveFiles(ServiceDraft d)
    {
        var files = ImmutableArray.CreateBuilder<MountedFile>();
        foreach (var f in d.Files)
        {
            var defined = f.Kind == MountedFileKind.Secret ? _secrets : _configs;
            var word = f.Kind == MountedFileKind.Secret ? "secret" : "config";
            if (!defined.TryGetValue(f.Source, out var source))
            {
                var suggestion = Suggestions.Closest(f.Source, defined.Keys);
                Error(f.Node, f.Path, $"refers to {word} '{f.Source}', which is not declared; add it under the top-level {word}s:{(suggestion is null ? "" : $" (or did you mean '{suggestion}'?)")}");
                continue;
            }

            // Secrets go to /run/secrets/NAME (a relative target is a name there), configs to /NAME, as Compose.
            var target = f.Target ?? f.Source;
            if (!target.StartsWith('/'))
            {
                target = f.Kind == MountedFileKind.Secret ? $"/run/secrets/{target}" : $"/{target}";
            }

            files.Add(new MountedFile
            {
                Name = f.Source,
                Kind = f.Kind,
                Target = target,
                SourceFile = source.File,
                Content = source.Content,
                Uid = f.Uid,
                Gid = f.Gid,
                Mode = f.Mode,
            });
        }

        d.S = d.S with { Files = files.ToImmutable() };
    }

    /// <summary>Named volumes get their engine name: <c>{app}_{name}</c> as Compose, the top-level <c>name:</c>, or the name
    /// itself when external.</summary>
    private ImmutableArray<VolumeMount> ResolveVolumeNames(IEnumerable<VolumeMount> mounts) =>
        [.. mounts.Select(m => m.Type != VolumeType.Volume || m.Source is null ? m
            : _volumeOptions.TryGetValue(m.Source, out var o) && (o.External || o.Name is not null)
                ? m with { VolumeName = o.Name ?? m.Source, External = o.External }
                : m with { VolumeName = $"{_projectName}_{m.Source}" })];

    // ---- container options ----------------------------------------------------------------------------------------

    // A property, not a field: BerthServiceKeys (another file of this partial class) uses it while static fields initialize.
    private static Dictionary<string, KeyHandler<SpecReader, ServiceDraft>> ContainerOptionKeys => new(StringComparer.Ordinal)
    {
        ["init"] = (r, v, p, d) => d.S = d.S with { Container = d.S.Container with { Init = r.Bool(v, p) } },
        ["read_only"] = (r, v, p, d) => d.S = d.S with { Container = d.S.Container with { ReadOnly = r.Bool(v, p) ?? false } },
        ["privileged"] = (r, v, p, d) => d.S = d.S with { Container = d.S.Container with { Privileged = r.Bool(v, p) ?? false } },
        ["tmpfs"] = (r, v, p, d) => d.S = d.S with { Container = d.S.Container with { Tmpfs = r.Strings(v, p) } },
        ["cap_add"] = (r, v, p, d) => d.S = d.S with { Container = d.S.Container with { CapAdd = r.Strings(v, p) } },
        ["cap_drop"] = (r, v, p, d) => d.S = d.S with { Container = d.S.Container with { CapDrop = r.Strings(v, p) } },
        ["security_opt"] = (r, v, p, d) => d.S = d.S with { Container = d.S.Container with { SecurityOpt = r.Strings(v, p) } },
        ["group_add"] = (r, v, p, d) => d.S = d.S with { Container = d.S.Container with { GroupAdd = r.Strings(v, p) } },
        ["devices"] = (r, v, p, d) => d.S = d.S with { Container = d.S.Container with { Devices = r.Devices(v, p) } },
        ["extra_hosts"] = (r, v, p, d) => d.S = d.S with { Container = d.S.Container with { ExtraHosts = r.ExtraHosts(v, p) } },
        ["hostname"] = (r, v, p, d) => d.S = d.S with { Container = d.S.Container with { Hostname = r.String(v, p) } },
        ["stop_signal"] = (r, v, p, d) => d.S = d.S with { Container = d.S.Container with { StopSignal = r.String(v, p) } },
        ["shm_size"] = (r, v, p, d) => d.S = d.S with { Container = d.S.Container with { ShmSize = r.Memory(v, p, dockerUnits: true) } },
        ["pids_limit"] = (r, v, p, d) => d.S = d.S with { Container = d.S.Container with { PidsLimit = Alias(d, "pids_limit", (long?)r.Int(v, p, min: -1), v) } },
        ["ulimits"] = (r, v, p, d) => d.S = d.S with { Container = d.S.Container with { Ulimits = r.Ulimits(v, p) } },
        ["sysctls"] = (r, v, p, d) => d.S = d.S with { Container = d.S.Container with { Sysctls = r.Sysctls(v, p) } },
        ["logging"] = (r, v, p, d) => r.ReadLogging(v, p, d),
    };

    private ImmutableArray<string> Devices(YamlNode v, string p)
    {
        if (v is not YamlSequenceNode seq)
        {
            return Strings(v, p);
        }

        var items = ImmutableArray.CreateBuilder<string>();
        for (var i = 0; i < seq.Children.Count; i++)
        {
            if (seq.Children[i] is YamlMappingNode map)
            {
                var device = new Box<(string? Source, string? Target, string? Permissions)>((null, null, null));
                ReadKeys(map, Index(p, i), DeviceKeys, device, allowExtensions: true);
                if (device.V.Source is { } source)
                {
                    items.Add(string.Join(':', new[] { source, device.V.Target ?? source, device.V.Permissions ?? "rwm" }));
                }
                else
                {
                    Error(map, Index(p, i), "needs source: (the device on this machine, e.g. /dev/fuse)");
                }
            }
            else if (String(seq.Children[i], Index(p, i)) is { } text)
            {
                items.Add(text);
            }
        }

        return items.ToImmutable();
    }

    private static readonly KeyTable<Box<(string? Source, string? Target, string? Permissions)>> DeviceKeys = new("a device")
    {
        ["source"] = (r, v, p, b) => b.V = b.V with { Source = r.String(v, p) },
        ["target"] = (r, v, p, b) => b.V = b.V with { Target = r.String(v, p) },
        ["permissions"] = (r, v, p, b) => b.V = b.V with { Permissions = r.String(v, p) },
    };

    /// <summary><c>["db:127.0.0.1", "cache=127.0.0.2"]</c> or <c>{db: 127.0.0.1}</c>, as <c>host:ip</c> for the engine.</summary>
    private ImmutableArray<string> ExtraHosts(YamlNode v, string p)
    {
        var items = ImmutableArray.CreateBuilder<string>();
        if (v is YamlMappingNode)
        {
            foreach (var (host, ip, node) in KeyValues(v, p))
            {
                items.Add($"{host}:{ip}");
            }

            return items.ToImmutable();
        }

        foreach (var entry in Strings(v, p))
        {
            var eq = entry.IndexOf('=', StringComparison.Ordinal);
            items.Add(eq > 0 ? $"{entry[..eq]}:{entry[(eq + 1)..]}" : entry);
        }

        return items.ToImmutable();
    }

    private ImmutableSortedDictionary<string, Ulimit> Ulimits(YamlNode v, string p)
    {
        var builder = ImmutableSortedDictionary.CreateBuilder<string, Ulimit>(StringComparer.Ordinal);
        if (Mapping(v, p, "a mapping of limit names to a number or {soft:, hard:}") is not { } map)
        {
            return builder.ToImmutable();
        }

        foreach (var (name, _, value) in Entries(map, p))
        {
            var lp = Join(p, name);
            if (value is YamlMappingNode pair)
            {
                var limit = new Box<Ulimit>(new Ulimit(-2, -2));
                ReadKeys(pair, lp, UlimitKeys, limit, allowExtensions: true);
                if (limit.V.Soft == -2 || limit.V.Hard == -2)
                {
                    Error(pair, lp, "needs both soft: and hard:");
                    continue;
                }

                builder[name] = limit.V;
            }
            else if (Int(value, lp, min: -1) is { } n)
            {
                builder[name] = new Ulimit(n, n);
            }
        }

        return builder.ToImmutable();
    }

    private static readonly KeyTable<Box<Ulimit>> UlimitKeys = new("a ulimit")
    {
        ["soft"] = (r, v, p, b) => b.V = b.V with { Soft = r.Int(v, p, min: -1) ?? -2 },
        ["hard"] = (r, v, p, b) => b.V = b.V with { Hard = r.Int(v, p, min: -1) ?? -2 },
    };

    /// <summary>Namespaced sysctls only, as Docker allows; net.* is refused by the engine on the host network Berth uses.</summary>
    private ImmutableSortedDictionary<string, string> Sysctls(YamlNode v, string p)
    {
        var builder = ImmutableSortedDictionary.CreateBuilder<string, string>(StringComparer.Ordinal);
        foreach (var (key, value, node) in KeyValues(v, p))
        {
            if (key.StartsWith("net.", StringComparison.Ordinal))
            {
                Warning(node, Join(p, key), "net.* sysctls apply to a container's own network namespace, and Berth runs containers on the host network, where Docker refuses them; ignored");
                continue;
            }

            if (!(key.StartsWith("kernel.msg", StringComparison.Ordinal) || key.StartsWith("kernel.shm", StringComparison.Ordinal)
                || key == "kernel.sem" || key.StartsWith("fs.mqueue.", StringComparison.Ordinal)))
            {
                Error(node, Join(p, key), $"'{key}' is not a namespaced sysctl, so Docker refuses to set it per container; only kernel.msg*, kernel.sem, kernel.shm* and fs.mqueue.* are");
                continue;
            }

            builder[key] = value ?? "";
        }

        return builder.ToImmutable();
    }

    private void ReadLogging(YamlNode v, string p, ServiceDraft d)
    {
        if (Mapping(v, p, "a mapping with driver: and options:") is not { } map)
        {
            return;
        }

        var logging = new Box<LoggingDraft>(new LoggingDraft(null, ImmutableSortedDictionary<string, string>.Empty, d.S.Logging));
        ReadKeys(map, p, LoggingKeys, logging, allowExtensions: true);

        // Docker's max-size/max-file are the rotation of both runtimes (issue #14 §5): read into Service.Logging and
        // handed back to the engine by the Docker driver, so they are not container options a process would ignore.
        var options = logging.V.Options;
        var rotation = logging.V.Rotation;
        var optionsNode = map.Children.TryGetValue(new YamlScalarNode("options"), out var o) ? o : map;
        if (options.TryGetValue("max-size", out var size))
        {
            if (!DockerUnits.TryParseBytes(size, out var bytes, out var error))
            {
                Error(optionsNode, Join(p, "options.max-size"), error!.Replace("memory size", "size", StringComparison.Ordinal));
            }
            else if (bytes < LogRotation.MinSize)
            {
                Error(optionsNode, Join(p, "options.max-size"), $"is {size}; give at least 4k, so a log file holds a few lines");
            }
            else
            {
                rotation = rotation with { MaxSize = bytes };
            }
        }

        if (options.TryGetValue("max-file", out var files))
        {
            if (!int.TryParse(files, NumberStyles.None, CultureInfo.InvariantCulture, out var count) || count < 1)
            {
                Error(optionsNode, Join(p, "options.max-file"), $"is '{files}'; give the number of log files to keep, 1 or more (e.g. \"5\")");
            }
            else
            {
                rotation = rotation with { MaxFiles = count };
            }
        }

        options = options.Remove("max-size").Remove("max-file");
        d.S = d.S with { Logging = rotation };
        if (logging.V.Driver is { } driver and not ("local" or "json-file"))
        {
            Warning(map.Children[new YamlScalarNode("driver")], Join(p, "driver"),
                $"log driver '{driver}' is not supported: Berth reads replica logs back from the engine, which only the local and json-file drivers keep; the engine's default is used");
            return;
        }

        d.S = d.S with { Container = d.S.Container with { LogDriver = logging.V.Driver, LogOptions = options } };
    }

    private sealed record LoggingDraft(string? Driver, ImmutableSortedDictionary<string, string> Options, LogRotation Rotation);

    private static readonly KeyTable<Box<LoggingDraft>> LoggingKeys = new("logging")
    {
        ["driver"] = (r, v, p, b) => b.V = b.V with { Driver = r.String(v, p) },
        ["options"] = (r, v, p, b) => b.V = b.V with { Options = r.Labels(v, p) },
        // Berth's own spelling, in Kubernetes' quantities (the kubelet's containerLogMaxSize is "10Mi").
        ["max_size"] = (r, v, p, b) =>
        {
            if (r.Memory(v, p) is { } size)
            {
                if (size < LogRotation.MinSize)
                {
                    r.Error(v, p, "is smaller than 4Ki; give a size a log file can hold a few lines in, e.g. 10Mi");
                }
                else
                {
                    b.V = b.V with { Rotation = b.V.Rotation with { MaxSize = size } };
                }
            }
        },
        ["max_file"] = (r, v, p, b) =>
        {
            if (r.Int(v, p, min: 1, hint: "the number of log files to keep, the live one included") is { } n)
            {
                b.V = b.V with { Rotation = b.V.Rotation with { MaxFiles = n } };
            }
        },
    };

    internal static readonly IReadOnlyDictionary<string, PullPolicy> PullPolicyNames = new Dictionary<string, PullPolicy>
    {
        ["missing"] = PullPolicy.Missing,
        ["always"] = PullPolicy.Always,
        ["never"] = PullPolicy.Never,
        ["build"] = PullPolicy.Build,
    };

    private PullPolicy? ReadPullPolicy(YamlNode v, string p)
    {
        var text = String(v, p, "always, never, missing or build")?.Trim();
        switch (text)
        {
            case null:
                return null;
            case "if_not_present":
                return PullPolicy.Missing;
            case "daily" or "weekly":
            case not null when text.StartsWith("every_", StringComparison.Ordinal):
                Warning(v, p, $"'{text}' refreshes the image on a schedule, which Berth does not do yet; it pulls only when the image is missing");
                return PullPolicy.Missing;
        }

        return Enum(v, p, PullPolicyNames);
    }

    /// <summary>Compose's secrets:, configs:, pull_policy and container options, added to the service key table.</summary>
    private static void AddRuntimeKeys(KeyTable<ServiceDraft> keys)
    {
        keys["secrets"] = (r, v, p, d) => r.ReadServiceFiles(v, p, d, MountedFileKind.Secret);
        keys["configs"] = (r, v, p, d) => r.ReadServiceFiles(v, p, d, MountedFileKind.Config);
        keys["pull_policy"] = (r, v, p, d) => d.S = d.S with { PullPolicy = r.ReadPullPolicy(v, p) ?? d.S.PullPolicy };
        keys["pull_refresh_after"] = (r, v, p, _) => r.Warning(v, p, "'pull_refresh_after' is not supported yet; the image is pulled only when missing");
        keys["pre_start"] = (r, v, p, _) => r.Warning(v, p, "'pre_start' hooks are not supported yet and do not run");
        foreach (var (key, handler) in ContainerOptionKeys)
        {
            keys[key] = handler;
        }
    }

    /// <summary>Top-level volumes: <c>name:</c> and <c>external:</c> decide the engine's name; the local driver only.</summary>
    private void ReadVolumeOptions(string name, YamlMappingNode options, string path)
    {
        var o = new Box<(string? Name, bool External)>((null, false));
        ReadKeys(options, path, TopVolumeKeys, o, allowExtensions: true);
        _volumeOptions[name] = o.V;
    }

    private static readonly KeyTable<Box<(string? Name, bool External)>> TopVolumeKeys = new("a volume")
    {
        ["name"] = (r, v, p, b) => b.V = b.V with { Name = r.String(v, p) },
        ["external"] = (r, v, p, b) => b.V = b.V with { External = r.Bool(v, p) ?? false },
        ["driver"] = (r, v, p, _) =>
        {
            if (r.String(v, p) is { } driver and not "local")
            {
                r.Warning(v, p, $"volume driver '{driver}' is not supported; the local driver is used");
            }
        },
        ["driver_opts"] = (r, v, p, _) => r.Warning(v, p, "'driver_opts' is not supported yet and is ignored; the volume is a plain local volume"),
        ["labels"] = (r, v, p, _) => r.Warning(v, p, "'labels' of a volume are not supported yet; Berth labels its volumes berth.app and berth.volume"),
    };
}
