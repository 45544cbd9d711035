using System.Collections.Immutable;
using Berth.Core.Loading;
using k8s;
using k8s.Models;

namespace Berth.Kubernetes;

/// <summary>One generated object and the file it is written to.</summary>
public sealed record ManifestObject(string FileName, IKubernetesObject<V1ObjectMeta> Object)
{
    public string Kind => Object.Kind;

    public string Name => Object.Metadata.Name;

    public string? Namespace => Object.Metadata.NamespaceProperty;

    public string ApiVersion => Object.ApiVersion;

    /// <summary><c>deployment/api</c>, as kubectl names objects.</summary>
    public string DisplayName => $"{Kind.ToLowerInvariant()}/{Name}";

    /// <summary>The object as JSON, the body of a server-side apply.</summary>
    public string ToJson() => KubernetesJson.Serialize(Object);

    /// <summary>The object as YAML, ending in a newline. A string that YAML would read as a number (a quantity such as <c>cpu: "1"</c>)
    /// is quoted, so the file says what the JSON that apply sends says.</summary>
    public string ToYaml()
    {
        var yaml = YamlText.QuoteAmbiguousStrings(KubernetesYaml.Serialize(Object), ToJson());
        return yaml.EndsWith('\n') ? yaml : yaml + "\n";
    }
}

/// <summary>A problem found while mapping a service to Kubernetes: where (<c>services.api.volumes[0]</c>), what, and what to do.</summary>
public sealed record GenerationDiagnostic(DiagnosticSeverity Severity, string Path, string Message)
{
    /// <summary>e.g. <c>error: services.worker: give service 'worker' an image: or build: to run it on Kubernetes</c>.</summary>
    public override string ToString() =>
        $"{(Severity == DiagnosticSeverity.Error ? "error" : "warning")}: {Path}: {Message}";
}

/// <summary>What generation produced: the objects in apply order, and every diagnostic.</summary>
public sealed record ManifestSet(ImmutableArray<ManifestObject> Objects, ImmutableArray<GenerationDiagnostic> Diagnostics)
{
    public bool Succeeded => !Diagnostics.Any(d => d.Severity == DiagnosticSeverity.Error);

    public IEnumerable<GenerationDiagnostic> Errors => Diagnostics.Where(d => d.Severity == DiagnosticSeverity.Error);

    public IEnumerable<GenerationDiagnostic> Warnings => Diagnostics.Where(d => d.Severity == DiagnosticSeverity.Warning);

    public ManifestObject? Find(string kind, string name) =>
        Objects.FirstOrDefault(o => o.Kind == kind && o.Name == name);

    /// <summary>The kustomization.yaml listing every file, in apply order.</summary>
    public string KustomizationYaml()
    {
        var text = new System.Text.StringBuilder();
        text.Append("apiVersion: kustomize.config.k8s.io/v1beta1\n");
        text.Append("kind: Kustomization\n");
        text.Append("resources:\n");
        foreach (var o in Objects)
        {
            text.Append("- ").Append(o.FileName).Append('\n');
        }

        return text.ToString();
    }

    /// <summary>Writes every object to its file and the kustomization.yaml into <paramref name="directory"/>;
    /// returns the files written. YAML files of earlier runs that are no longer generated are removed, other files are left alone.</summary>
    public IReadOnlyList<string> WriteTo(string directory)
    {
        Directory.CreateDirectory(directory);
        var written = new List<string>();
        var previous = ReadPreviousFiles(directory);
        foreach (var o in Objects)
        {
            var path = System.IO.Path.Combine(directory, o.FileName);
            File.WriteAllText(path, o.ToYaml());
            written.Add(path);
        }

        var kustomization = System.IO.Path.Combine(directory, "kustomization.yaml");
        File.WriteAllText(kustomization, KustomizationYaml());
        written.Add(kustomization);
        foreach (var stale in previous.Except(Objects.Select(o => o.FileName), StringComparer.Ordinal))
        {
            File.Delete(System.IO.Path.Combine(directory, stale));
        }

        return written;
    }

    // Only files the last kustomization.yaml listed are ours to remove.
    private static IEnumerable<string> ReadPreviousFiles(string directory)
    {
        var path = System.IO.Path.Combine(directory, "kustomization.yaml");
        if (!File.Exists(path))
        {
            return [];
        }

        return File.ReadAllLines(path)
            .Where(l => l.StartsWith("- ", StringComparison.Ordinal))
            .Select(l => l[2..].Trim())
            .Where(f => f.EndsWith(".yaml", StringComparison.Ordinal) && !f.Contains('/') && !f.Contains('\\'))
            .Where(f => File.Exists(System.IO.Path.Combine(directory, f)))
            .ToList();
    }
}
