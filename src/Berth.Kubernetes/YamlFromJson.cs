using System.Text;
using System.Text.Json;
using Berth.Kubernetes.Apply;

namespace Berth.Kubernetes;

/// <summary>A JSON object as block YAML with sorted keys (values.yaml, kubectl-diff-style output).</summary>
internal static class YamlFromJson
{
    public static string Write(string json)
    {
        using var doc = JsonDocument.Parse(json);
        var text = new StringBuilder();
        UnifiedDiff.WriteMap(doc.RootElement, 0, text);
        return text.ToString();
    }
}
