using System.Text.Json;
using System.Text.RegularExpressions;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Berth.Kubernetes;

/// <summary>Fixes what the client's YAML writer leaves ambiguous.</summary>
internal static partial class YamlText
{
    // What a YAML 1.1/1.2 reader resolves to a number, a boolean or null when unquoted.
    [GeneratedRegex(@"^(?:[-+]?(?:\.[0-9]+|[0-9][0-9_]*(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|0x[0-9a-fA-F]+|0o[0-7]+|\.inf|\.nan|true|false|yes|no|on|off|null|~)$", RegexOptions.IgnoreCase)]
    private static partial Regex NonString();

    /// <summary>Whether YAML would read <paramref name="value"/>, unquoted, as something other than a string.</summary>
    public static bool LooksLikeNonString(string value) => NonString().IsMatch(value);

    /// <summary>Quotes each plain scalar of <paramref name="yaml"/> that is a string in <paramref name="json"/> (the same object)
    /// but would read back as a number or boolean. The client writes a ResourceQuantity of "1" as <c>cpu: 1</c>.</summary>
    public static string QuoteAmbiguousStrings(string yaml, string json)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(yaml));
        using var doc = JsonDocument.Parse(json);
        var fixes = new List<YamlScalarNode>();
        Walk(stream.Documents[0].RootNode, doc.RootElement, fixes);
        if (fixes.Count == 0)
        {
            return yaml;
        }

        var text = new System.Text.StringBuilder(yaml);
        foreach (var node in fixes.OrderByDescending(n => n.Start.Index))
        {
            var start = (int)node.Start.Index;
            var end = (int)node.End.Index;
            text.Remove(start, end - start).Insert(start, JsonSerializer.Serialize(node.Value));
        }

        return text.ToString();
    }

    private static void Walk(YamlNode node, JsonElement json, List<YamlScalarNode> fixes)
    {
        switch (node)
        {
            case YamlMappingNode map when json.ValueKind == JsonValueKind.Object:
                foreach (var (key, value) in map.Children)
                {
                    if (key is YamlScalarNode { Value: { } name } && json.TryGetProperty(name, out var child))
                    {
                        Walk(value, child, fixes);
                    }
                }

                break;
            case YamlSequenceNode seq when json.ValueKind == JsonValueKind.Array:
                foreach (var (item, child) in seq.Children.Zip(json.EnumerateArray()))
                {
                    Walk(item, child, fixes);
                }

                break;
            case YamlScalarNode { Style: ScalarStyle.Plain or ScalarStyle.Any, Value: { } value } scalar
                when json.ValueKind == JsonValueKind.String && NonString().IsMatch(value):
                fixes.Add(scalar);
                break;
        }
    }
}
