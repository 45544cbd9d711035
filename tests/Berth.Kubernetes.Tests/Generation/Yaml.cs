
namespace Berth.Kubernetes.Tests.Generation;

/// <summary>Reads a value out of generated YAML text by a path like <c>spec.template.spec.containers[0].image</c>,
/// parsing with YamlDotNet's representation model rather than the serializer that wrote it.</summary>
internal static class Yaml
{
    public static string? Get(string yaml, string path)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(yaml));
        YamlNode? node = stream.Documents[0].RootNode;
        foreach (var part in Split(path))
        {
            node = (node, part) switch
            {
                (YamlSequenceNode seq, int i) => i < seq.Children.Count ? seq.Children[i] : null,
                (YamlMappingNode map, string key) => map.Children.TryGetValue(new YamlScalarNode(key), out var child) ? child : null,
                _ => null,
            };
            if (node is null)
            {
                return null;
            }
        }

        return node switch
        {
            YamlScalarNode scalar => scalar.Value,
            YamlSequenceNode seq => $"[{seq.Children.Count} items]",
            _ => "{mapping}",
        };
    }

    private static IEnumerable<object> Split(string path)
    {
        foreach (var segment in path.Split('.'))
        {
            var bracket = segment.IndexOf('[', StringComparison.Ordinal);
            if (bracket < 0)
            {
                yield return segment.Replace('~', '.');
                continue;
            }

            if (bracket > 0)
            {
                yield return segment[..bracket].Replace('~', '.');
            }

            foreach (var index in segment[bracket..].Split('[', StringSplitOptions.RemoveEmptyEntries))
            {
                yield return int.Parse(index.TrimEnd(']'), CultureInfo.InvariantCulture);
            }
        }
    }
}
