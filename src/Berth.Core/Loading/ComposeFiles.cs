using YamlDotNet.RepresentationModel;

namespace Berth.Core.Loading;

/// <summary>Compose's ways of reading other files: a service's <c>extends</c> (a service of this file or another) and the
/// top-level <c>include</c>. Both read the other file's nodes where they are, so diagnostics name that file and line,
/// and resolve its relative paths against its own folder, as Compose does.</summary>
internal sealed partial class SpecReader
{
    private readonly Dictionary<string, YamlMappingNode?> _otherFiles = new(StringComparer.Ordinal);

    /// <summary>Reads the service that <paramref name="body"/> extends (and what that one extends) into the draft first, so
    /// the service's own keys then override and add to it exactly as an override file's would.</summary>
    private void ApplyExtends(YamlMappingNode body, string p, ServiceDraft draft, YamlMappingNode services, List<string> chain)
    {
        if (!body.Children.TryGetValue(new YamlScalarNode("extends"), out var extends))
        {
            return;
        }

        var ep = Join(p, "extends");
        string? service = null;
        string? file = null;
        if (extends is YamlMappingNode map)
        {
            var target = new Box<(string? Service, string? File)>((null, null));
            ReadKeys(map, ep, ExtendsKeys, target, allowExtensions: true);
            (service, file) = target.V;
        }
        else
        {
            service = String(extends, ep, "a service name, or {service:, file:}");
        }

        if (service is null)
        {
            if (extends is YamlMappingNode)
            {
                Error(extends, ep, "needs service: (the service to extend)");
            }

            return;
        }

        var baseServices = services;
        var directory = BaseDirectory;
        if (file is not null)
        {
            var full = ResolvePath(file);
            if (OtherFile(full, file, extends, ep) is not { } root)
            {
                return;
            }

            if (!root.Children.TryGetValue(new YamlScalarNode("services"), out var s) || s is not YamlMappingNode other)
            {
                Error(extends, ep, $"'{file}' has no services: to extend");
                return;
            }

            baseServices = other;
            directory = Path.GetDirectoryName(full)!;
        }

        var key = $"{file ?? FileOf(services)}#{service}";
        if (chain.Contains(key))
        {
            Error(extends, ep, $"extends forms a cycle: {string.Join(" → ", chain.Append(key))}; a service cannot extend itself");
            return;
        }

        if (!baseServices.Children.TryGetValue(new YamlScalarNode(service), out var baseNode) || baseNode is not YamlMappingNode baseBody)
        {
            var names = baseServices.Children.Keys.OfType<YamlScalarNode>().Select(k => k.Value!).ToList();
            var suggestion = Suggestions.Closest(service, names);
            Error(extends, ep, $"extends service '{service}', which is not in {file ?? "this file"}{(suggestion is null ? "" : $"; did you mean '{suggestion}'?")}");
            return;
        }

        var outer = BaseDirectory;
        BaseDirectory = directory;
        try
        {
            ApplyExtends(baseBody, p, draft, baseServices, [.. chain, key]);
            ReadComposeService(baseBody, p, draft);
        }
        finally
        {
            BaseDirectory = outer;
        }
    }

    private static readonly KeyTable<Box<(string? Service, string? File)>> ExtendsKeys = new("extends")
    {
        ["service"] = (r, v, p, b) => b.V = b.V with { Service = r.String(v, p) },
        ["file"] = (r, v, p, b) => b.V = b.V with { File = r.String(v, p) },
    };

    /// <summary>Top-level <c>include:</c>: each entry is a path (or <c>{path, project_directory, env_file}</c>, where a list
    /// of paths is merged in order); the included file's services, volumes, secrets and configs join the app.</summary>
    private void ReadInclude(YamlNode v, string path)
    {
        if (Sequence(v, path, "a list of Compose files to include (paths, or {path:, project_directory:})") is not { } seq)
        {
            return;
        }

        for (var i = 0; i < seq.Children.Count; i++)
        {
            var node = seq.Children[i];
            var ip = Index(path, i);
            var entry = new Box<(List<string> Paths, string? Directory)>(([], null));
            if (node is YamlMappingNode map)
            {
                ReadKeys(map, ip, IncludeKeys, entry, allowExtensions: true);
            }
            else if (String(node, ip, "a path") is { } one)
            {
                entry.V.Paths.Add(one);
            }

            if (entry.V.Paths.Count == 0)
            {
                Error(node, ip, "needs path: (the Compose file to include)");
                continue;
            }

            var files = entry.V.Paths.Select(ResolvePath).ToList();
            var outer = BaseDirectory;
            BaseDirectory = entry.V.Directory is { } dir ? ResolvePath(dir) : Path.GetDirectoryName(files[0])!;
            try
            {
                for (var f = 0; f < files.Count; f++)
                {
                    if (OtherFile(files[f], entry.V.Paths[f], node, ip) is not { } root)
                    {
                        continue;
                    }

                    ReadKeys(root, "", IncludedTopKeys, this, allowExtensions: true);
                }
            }
            finally
            {
                BaseDirectory = outer;
            }
        }
    }

    private static readonly KeyTable<Box<(List<string> Paths, string? Directory)>> IncludeKeys = new("an include")
    {
        ["path"] = (r, v, p, b) => b.V.Paths.AddRange(r.Strings(v, p)),
        ["project_directory"] = (r, v, p, b) => b.V = b.V with { Directory = r.String(v, p) },
        ["env_file"] = (r, v, p, _) => r.Warning(v, p, "'env_file' of an include is not supported yet; the included file is interpolated with the app's variables"),
    };

    // What an included file contributes; its name: and version: are its own and ignored, as Compose.
    private static readonly KeyTable<SpecReader> IncludedTopKeys = new("an included Compose file")
    {
        ["name"] = (_, _, _, _) => { },
        ["version"] = (_, _, _, _) => { },
        ["services"] = (r, v, p, _) => r.ReadServices(v, p, included: true),
        ["volumes"] = (r, v, p, _) => r.ReadTopVolumes(v, p),
        ["secrets"] = (r, v, p, _) => r.ReadTopFiles(v, p, Model.MountedFileKind.Secret),
        ["configs"] = (r, v, p, _) => r.ReadTopFiles(v, p, Model.MountedFileKind.Config),
        ["include"] = (r, v, p, _) => r.ReadInclude(v, p),
        ["networks"] = Unsupported<SpecReader>("every service of the app is on one network in Berth: replicas reach each other by service name through the mesh"),
    };

    /// <summary>Another Compose file's top mapping, parsed once and claimed for its own name; null (reported) when it cannot be read.</summary>
    private YamlMappingNode? OtherFile(string full, string written, YamlNode at, string path)
    {
        if (_otherFiles.TryGetValue(full, out var cached))
        {
            return cached;
        }

        YamlMappingNode? root = null;
        if (!System.IO.File.Exists(full))
        {
            Error(at, path, $"'{written}' does not exist (looked for {full})");
        }
        else
        {
            var display = Path.IsPathRooted(written) ? written : Path.Combine(Path.GetDirectoryName(File) ?? "", Path.GetRelativePath(Path.GetDirectoryName(SourcePath ?? full)!, full));
            var diagnostics = new List<Diagnostic>();
            var node = SpecLoader.Parse(System.IO.File.ReadAllText(full), display, diagnostics);
            Diagnostics.AddRange(diagnostics);
            if (node is not null)
            {
                Claim(node, display);
                root = Mapping(node, "", "a mapping with services: at the top");
            }
        }

        _otherFiles[full] = root;
        return root;
    }
}
