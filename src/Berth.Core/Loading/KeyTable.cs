using YamlDotNet.RepresentationModel;

namespace Berth.Core.Loading;

/// <summary>Handles one key of a mapping: reads <paramref name="value"/> (at <paramref name="path"/>) into <paramref name="target"/>.</summary>
internal delegate void KeyHandler<in T>(SpecReader reader, YamlNode value, string path, T target);

/// <summary>The keys a mapping takes and how each is read. Unknown keys are reported with the closest known key.</summary>
internal sealed class KeyTable<T>(string where) : Dictionary<string, KeyHandler<T>>(StringComparer.Ordinal)
{
    /// <summary>How diagnostics name the mapping: "a service", "probes", "mesh.retries".</summary>
    public string Where { get; } = where;
}

/// <summary>A mutable slot holding an immutable record while its keys are read.</summary>
internal sealed class Box<T>(T value)
{
    public T V { get; set; } = value;
}
