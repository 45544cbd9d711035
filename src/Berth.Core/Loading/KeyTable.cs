using YamlDotNet.RepresentationModel;

namespace Berth.Core.Loading;

/// <summary>Handles one key of a mapping: reads <paramref name="value"/> (at <paramref name="path"/>) into <paramref name="target"/>.</summary>
public delegate void KeyHandler<in TReader, in T>(TReader reader, YamlNode value, string path, T target);

/// <summary>
/// The keys a mapping takes and how each is read, for any reader (the spec's, the pipelines'). Unknown keys are
/// reported at their position with the closest known key.
/// </summary>
public class KeyTable<TReader, T>(string where) : Dictionary<string, KeyHandler<TReader, T>>(StringComparer.Ordinal)
{
    /// <summary>How diagnostics name the mapping: "a service", "probes", "mesh.retries", "a job".</summary>
    public string Where { get; } = where;

    /// <summary>
    /// Calls the handler of every key of <paramref name="map"/>; <paramref name="other"/> may claim a key the table
    /// lacks; any other key is reported through <paramref name="error"/> with <see cref="UnknownKeyMessage"/>.
    /// </summary>
    public void Read(TReader reader, YamlMappingNode map, string path, T target, Action<YamlNode, string, string> error,
        Func<string, YamlScalarNode, YamlNode, bool>? other = null)
    {
        foreach (var (k, value) in map.Children)
        {
            if (k is not YamlScalarNode { Value: { } key } keyNode)
            {
                error(k, path, "keys must be plain names, not lists or mappings");
                continue;
            }

            var p = path.Length == 0 ? key : path + "." + key;
            if (TryGetValue(key, out var handler))
            {
                handler(reader, value, p, target);
            }
            else if (other is null || !other(key, keyNode, value))
            {
                error(keyNode, p, UnknownKeyMessage(key, Keys, Where));
            }
        }
    }

    /// <summary>"unknown key 'x' in a job; did you mean 'y'?" — or where to look when nothing is close.</summary>
    public static string UnknownKeyMessage(string key, IEnumerable<string> known, string where)
    {
        var suggestion = Suggestions.Closest(key, known);
        return suggestion is not null
            ? $"unknown key '{key}' in {where}; did you mean '{suggestion}'?"
            : $"unknown key '{key}' in {where}; see docs/spec.md for the keys {where} takes";
    }
}

/// <summary>The keys a spec mapping takes and how each is read. Unknown keys are reported with the closest known key.</summary>
internal sealed class KeyTable<T>(string where) : KeyTable<SpecReader, T>(where);

/// <summary>A mutable slot holding an immutable record while its keys are read.</summary>
public sealed class Box<T>(T value)
{
    public T V { get; set; } = value;
}
