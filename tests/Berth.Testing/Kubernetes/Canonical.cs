using System.Text;
using System.Text.Json;
using YamlDotNet.RepresentationModel;

namespace Berth.Testing.Kubernetes;

/// <summary>A canonical text of a YAML or JSON document (keys sorted, scalars as text), to check that what apply sends is what generate writes.</summary>
public static class Canonical
{
    public static string FromYaml(string yaml)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(yaml));
        var text = new StringBuilder();
        Write(stream.Documents[0].RootNode, text);
        return text.ToString();
    }

    public static string FromJson(string json)
    {
        using var doc = JsonDocument.Parse(json);
        var text = new StringBuilder();
        Write(doc.RootElement, text);
        return text.ToString();
    }

    private static void Write(YamlNode node, StringBuilder text)
    {
        switch (node)
        {
            case YamlMappingNode map:
                text.Append('{');
                foreach (var (k, v) in map.Children.OrderBy(c => ((YamlScalarNode)c.Key).Value, StringComparer.Ordinal))
                {
                    text.Append(((YamlScalarNode)k).Value).Append(':');
                    Write(v, text);
                    text.Append(',');
                }

                text.Append('}');
                break;
            case YamlSequenceNode seq:
                text.Append('[');
                foreach (var item in seq.Children)
                {
                    Write(item, text);
                    text.Append(',');
                }

                text.Append(']');
                break;
            case YamlScalarNode scalar:
                text.Append(scalar.Value);
                break;
        }
    }

    private static void Write(JsonElement element, StringBuilder text)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                text.Append('{');
                foreach (var p in element.EnumerateObject().OrderBy(p => p.Name, StringComparer.Ordinal))
                {
                    text.Append(p.Name).Append(':');
                    Write(p.Value, text);
                    text.Append(',');
                }

                text.Append('}');
                break;
            case JsonValueKind.Array:
                text.Append('[');
                foreach (var item in element.EnumerateArray())
                {
                    Write(item, text);
                    text.Append(',');
                }

                text.Append(']');
                break;
            case JsonValueKind.String:
                text.Append(element.GetString());
                break;
            default:
                text.Append(element.GetRawText());
                break;
        }
    }
}
