using YamlDotNet.RepresentationModel;

namespace Berth.Core.Loading;

/// <summary>Resolves YAML merge keys (<c>&lt;&lt;: *anchor</c>, <c>&lt;&lt;: [*a, *b]</c>) in place, as Compose files use them:
/// keys written in the mapping win over merged ones, and earlier sources win over later ones. Nodes keep their positions,
/// so a problem in a merged value is reported where the anchor's text is.</summary>
internal static class MergeKeys
{
    private static readonly YamlScalarNode MergeKey = new("<<");

    /// <summary>Resolves every merge key under <paramref name="root"/>; returns the <c>&lt;&lt;:</c> values that are not
    /// mappings (or lists of them), which YAML cannot merge.</summary>
    public static List<YamlNode> Resolve(YamlNode root)
    {
        var bad = new List<YamlNode>();
        Visit(root, new HashSet<YamlNode>(ReferenceEqualityComparer.Instance), bad);
        return bad;
    }

    private static void Visit(YamlNode node, HashSet<YamlNode> done, List<YamlNode> bad)
    {
        if (!done.Add(node))
        {
            return;
        }

        switch (node)
        {
            case YamlSequenceNode seq:
                foreach (var child in seq.Children)
                {
                    Visit(child, done, bad);
                }

                break;
            case YamlMappingNode map:
                foreach (var child in map.Children.Values)
                {
                    Visit(child, done, bad); // sources first, so merges of merges are already resolved
                }

                if (map.Children.ContainsKey(MergeKey))
                {
                    Merge(map, bad);
                }

                break;
        }
    }

    private static void Merge(YamlMappingNode map, List<YamlNode> bad)
    {
        var explicitKeys = map.Children.Keys.Where(k => !IsMergeKey(k)).ToHashSet();
        var entries = new List<KeyValuePair<YamlNode, YamlNode>>();
        var taken = new HashSet<YamlNode>(explicitKeys);
        foreach (var (key, value) in map.Children.ToList())
        {
            if (!IsMergeKey(key))
            {
                entries.Add(new(key, value));
                continue;
            }

            var sources = value switch
            {
                YamlMappingNode one => [one],
                YamlSequenceNode many => many.Children.OfType<YamlMappingNode>().ToList(),
                _ => [],
            };
            bad.AddRange(value is YamlSequenceNode items ? items.Children.Where(c => c is not YamlMappingNode) : value is YamlMappingNode ? [] : [value]);
            foreach (var source in sources)
            {
                foreach (var (k, v) in source.Children)
                {
                    if (taken.Add(k))
                    {
                        entries.Add(new(k, v));
                    }
                }
            }
        }

        map.Children.Clear();
        foreach (var (key, value) in entries)
        {
            map.Children.Add(key, value);
        }
    }

    private static bool IsMergeKey(YamlNode key) => key is YamlScalarNode { Value: "<<", Style: YamlDotNet.Core.ScalarStyle.Plain or YamlDotNet.Core.ScalarStyle.Any };
}
