using Berth.Core.Model;
using YamlDotNet.RepresentationModel;

namespace Berth.Core.Loading;

internal sealed partial class SpecReader
{
    internal static readonly IReadOnlyDictionary<string, VolumeType> VolumeTypeNames = new Dictionary<string, VolumeType>
    {
        ["bind"] = VolumeType.Bind,
        ["volume"] = VolumeType.Volume,
        ["tmpfs"] = VolumeType.Tmpfs,
    };

    private void ReadVolumes(YamlNode v, string p, ServiceDraft d)
    {
        var seq = Sequence(v, p, "a list of volumes (./src:/dst, name:/dst, or {type:, source:, target:})");
        for (var i = 0; seq is not null && i < seq.Children.Count; i++)
        {
            var node = seq.Children[i];
            var ip = Index(p, i);
            var mount = node is YamlMappingNode map ? ReadLongVolume(map, ip) : ReadShortVolume(node, ip);
            if (mount is not null)
            {
                d.Volumes.Add(new Located<VolumeMount>(mount, node, ip));
            }
        }
    }

    private static readonly KeyTable<Box<VolumeMount>> BindOptionKeys = new("bind options")
    {
        ["create_host_path"] = (r, v, p, b) => b.V = b.V with { CreateHostPath = r.Bool(v, p) ?? true },
        ["propagation"] = (r, v, p, _) => r.Warning(v, p, "'propagation' is not supported yet; the engine's default (rprivate) applies"),
        ["selinux"] = (r, v, p, _) => r.Warning(v, p, "'selinux' is not supported yet and is ignored"),
    };

    private static readonly KeyTable<Box<VolumeMount>> VolumeOptionKeys = new("volume options")
    {
        ["nocopy"] = (r, v, p, b) => b.V = b.V with { NoCopy = r.Bool(v, p) ?? false },
        ["subpath"] = (r, v, p, b) => b.V = b.V with { Subpath = r.String(v, p) },
        ["labels"] = (r, v, p, _) => r.Warning(v, p, "'labels' of a mount are not supported yet and are ignored"),
    };

    private static readonly KeyTable<Box<VolumeMount>> TmpfsOptionKeys = new("tmpfs options")
    {
        ["size"] = (r, v, p, b) => b.V = b.V with { TmpfsSize = r.Memory(v, p, dockerUnits: true) },
        ["mode"] = (r, v, p, b) => b.V = b.V with { TmpfsMode = r.FileMode(v, p) },
    };

    private VolumeMount? ReadShortVolume(YamlNode node, string p)
    {
        // [SOURCE:]TARGET[:MODE] — SOURCE is a path (bind) when it starts with . / or ~, else a named volume.
        var text = String(node, p, "a volume such as ./data:/data or db-data:/var/lib/db");
        if (text is null)
        {
            return null;
        }

        var parts = text.Split(':');
        if (parts.Length > 3 || parts.Any(s => s.Length == 0))
        {
            Error(node, p, $"'{text}' is not SOURCE:TARGET[:ro|rw] or TARGET");
            return null;
        }

        if (parts.Length == 1)
        {
            return CheckTarget(new VolumeMount { Type = VolumeType.Volume, Target = parts[0] }, node, p);
        }

        var readOnly = false;
        var noCopy = false;
        if (parts.Length == 3)
        {
            foreach (var option in parts[2].Split(','))
            {
                switch (option)
                {
                    case "ro":
                        readOnly = true;
                        break;
                    case "nocopy":
                        noCopy = true;
                        break;
                    case "rw" or "z" or "Z" or "cached" or "delegated" or "consistent" or "rprivate" or "private" or "rshared" or "shared" or "rslave" or "slave":
                        break;
                    default:
                        Error(node, p, $"'{option}' is not a volume mode; use ro or rw");
                        return null;
                }
            }
        }

        var source = parts[0];
        var isPath = source.StartsWith('.') || source.StartsWith('/') || source.StartsWith('~');
        return CheckTarget(new VolumeMount
        {
            Type = isPath ? VolumeType.Bind : VolumeType.Volume,
            Source = isPath ? ResolvePath(source) : source,
            Target = parts[1],
            ReadOnly = readOnly,
            NoCopy = noCopy,
        }, node, p);
    }

    private VolumeMount? CheckTarget(VolumeMount mount, YamlNode node, string p)
    {
        if (!mount.Target.StartsWith('/'))
        {
            Error(node, p, $"the target '{mount.Target}' must be an absolute path inside the replica, e.g. /data");
            return null;
        }

        return mount;
    }

    private VolumeMount? ReadLongVolume(YamlMappingNode map, string p)
    {
        var mount = new Box<VolumeMount>(new VolumeMount { Target = "" });
        if (map.Children.TryGetValue(new YamlScalarNode("type"), out var typeNode) && typeNode is YamlScalarNode { Value: "image" or "npipe" or "cluster" } other)
        {
            Warning(other, Join(p, "type"), $"volume type '{other.Value}' is not supported yet, so this mount is left out (an image mount needs Docker 28, a named pipe Windows)");
            return null;
        }

        ReadKeys(map, p, VolumeKeys, mount, allowExtensions: true);
        if (!map.Children.ContainsKey(new YamlScalarNode("type")))
        {
            Error(map, p, "needs type: bind, volume or tmpfs");
            return null;
        }

        if (mount.V.Target.Length == 0)
        {
            Error(map, p, "needs target: (the path inside the replica)");
            return null;
        }

        if (mount.V.Type == VolumeType.Bind)
        {
            if (mount.V.Source is null)
            {
                Error(map, p, "a bind mount needs source: (a path on this machine)");
                return null;
            }

            mount.V = mount.V with { Source = ResolvePath(mount.V.Source) };
        }

        return CheckTarget(mount.V, map, p);
    }

    private static readonly KeyTable<Box<VolumeMount>> VolumeKeys = new("a volume")
    {
        ["type"] = (r, v, p, b) => b.V = b.V with { Type = r.Enum(v, p, VolumeTypeNames) ?? b.V.Type },
        ["source"] = (r, v, p, b) => b.V = b.V with { Source = r.String(v, p) },
        ["target"] = (r, v, p, b) => b.V = b.V with { Target = r.String(v, p) ?? "" },
        ["read_only"] = (r, v, p, b) => b.V = b.V with { ReadOnly = r.Bool(v, p) ?? false },
        ["bind"] = (r, v, p, b) =>
        {
            if (r.Mapping(v, p, "a mapping with create_host_path:, propagation:, selinux:") is { } m)
            {
                r.ReadKeys(m, p, BindOptionKeys, b, allowExtensions: true);
            }
        },
        ["volume"] = (r, v, p, b) =>
        {
            if (r.Mapping(v, p, "a mapping with nocopy: and subpath:") is { } m)
            {
                r.ReadKeys(m, p, VolumeOptionKeys, b, allowExtensions: true);
            }
        },
        ["tmpfs"] = (r, v, p, b) =>
        {
            if (r.Mapping(v, p, "a mapping with size: and mode:") is { } m)
            {
                r.ReadKeys(m, p, TmpfsOptionKeys, b, allowExtensions: true);
            }
        },
        ["consistency"] = (r, v, p, _) => r.Warning(v, p, "'consistency' is not supported yet and is ignored"),
    };
}
