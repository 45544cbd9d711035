using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Berth.Kubernetes.Apply;

/// <summary>Line diffs in the unified format of <c>diff -u -N</c>, which <c>kubectl diff</c> runs, and the YAML it diffs.</summary>
public static class UnifiedDiff
{
    /// <summary>3 lines of context, as <c>diff -u</c>.</summary>
    public const int Context = 3;

    /// <summary>The unified diff of <paramref name="before"/> and <paramref name="after"/> (an empty text is an absent file, as <c>-N</c>);
    /// empty when they are equal.</summary>
    public static string Create(string before, string after, string beforeName, string afterName)
    {
        var a = Lines(before);
        var b = Lines(after);
        var edits = Edits(a, b);
        if (edits.All(e => e.Op == ' '))
        {
            return "";
        }

        var text = new StringBuilder();
        text.Append("--- ").Append(beforeName).Append('\n');
        text.Append("+++ ").Append(afterName).Append('\n');
        var i = 0;
        while (i < edits.Count)
        {
            if (edits[i].Op == ' ')
            {
                i++;
                continue;
            }

            // A hunk: from Context lines before this change to Context lines after the last change closer than 2*Context to the next.
            var start = Math.Max(0, i - Context);
            var end = i;
            while (true)
            {
                while (end < edits.Count && edits[end].Op != ' ')
                {
                    end++;
                }

                var next = end;
                while (next < edits.Count && edits[next].Op == ' ')
                {
                    next++;
                }

                if (next < edits.Count && next - end <= 2 * Context)
                {
                    end = next;
                    continue;
                }

                end = Math.Min(edits.Count, end + Context);
                break;
            }

            var hunk = edits.GetRange(start, end - start);
            var aStart = hunk[0].A;
            var bStart = hunk[0].B;
            var aCount = hunk.Count(e => e.Op != '+');
            var bCount = hunk.Count(e => e.Op != '-');
            text.Append(CultureInfo.InvariantCulture, $"@@ -{Range(aStart, aCount)} +{Range(bStart, bCount)} @@\n");
            foreach (var e in hunk)
            {
                text.Append(e.Op).Append(e.Text).Append('\n');
            }

            i = end;
        }

        return text.ToString();
    }

    private static string Range(int start, int count) => count == 0 ? $"{start},0" : count == 1 ? $"{start + 1}" : $"{start + 1},{count}";

    private static string[] Lines(string text) => text.Length == 0 ? [] : text.TrimEnd('\n').Split('\n');

    private readonly record struct Edit(char Op, string Text, int A, int B);

    // Longest common subsequence over lines; objects are a few hundred lines at most.
    private static List<Edit> Edits(string[] a, string[] b)
    {
        var lcs = new int[a.Length + 1, b.Length + 1];
        for (var i = a.Length - 1; i >= 0; i--)
        {
            for (var j = b.Length - 1; j >= 0; j--)
            {
                lcs[i, j] = a[i] == b[j] ? lcs[i + 1, j + 1] + 1 : Math.Max(lcs[i + 1, j], lcs[i, j + 1]);
            }
        }

        var edits = new List<Edit>();
        int x = 0, y = 0;
        while (x < a.Length || y < b.Length)
        {
            if (x < a.Length && y < b.Length && a[x] == b[y])
            {
                edits.Add(new Edit(' ', a[x], x, y));
                x++;
                y++;
            }
            else if (y < b.Length && (x == a.Length || lcs[x, y + 1] >= lcs[x + 1, y]))
            {
                edits.Add(new Edit('+', b[y], x, y));
                y++;
            }
            else
            {
                edits.Add(new Edit('-', a[x], x, y));
                x++;
            }
        }

        // diff -u lists a change's removals before its additions.
        for (var k = 0; k < edits.Count; k++)
        {
            var end = k;
            while (end < edits.Count && edits[end].Op != ' ')
            {
                end++;
            }

            if (end > k + 1)
            {
                var run = edits.GetRange(k, end - k);
                var ordered = run.Where(e => e.Op == '-').Concat(run.Where(e => e.Op == '+')).ToList();
                var a0 = run.Min(e => e.A);
                var b0 = run.Min(e => e.B);
                for (var n = 0; n < ordered.Count; n++)
                {
                    edits[k + n] = ordered[n] with { A = a0, B = b0 };
                }
            }

            k = end;
        }

        return edits;
    }

    /// <summary>A Secret's values replaced, as <c>kubectl diff</c> masks them: <c>***</c>, or <c>*** (before)</c> and <c>*** (after)</c> for a key
    /// whose value changed, so that a diff shows which keys change but never a value (they are only base64-encoded). Applied to
    /// <c>data</c> and <c>stringData</c>; any other object is returned as it is.</summary>
    public static (string? Live, string? Merged) MaskSecretData(string? live, string? merged)
    {
        var from = live is null ? null : System.Text.Json.Nodes.JsonNode.Parse(live) as System.Text.Json.Nodes.JsonObject;
        var to = merged is null ? null : System.Text.Json.Nodes.JsonNode.Parse(merged) as System.Text.Json.Nodes.JsonObject;
        if ((from ?? to)?["kind"]?.GetValue<string>() != "Secret")
        {
            return (live, merged);
        }

        foreach (var field in new[] { "data", "stringData" })
        {
            var a = from?[field] as System.Text.Json.Nodes.JsonObject;
            var b = to?[field] as System.Text.Json.Nodes.JsonObject;
            foreach (var key in (a?.Select(p => p.Key) ?? []).Concat(b?.Select(p => p.Key) ?? []).Distinct(StringComparer.Ordinal).ToList())
            {
                var changed = a is not null && b is not null && a.ContainsKey(key) && b.ContainsKey(key) && a[key]?.ToJsonString() != b[key]?.ToJsonString();
                if (a?.ContainsKey(key) == true)
                {
                    a[key] = changed ? "*** (before)" : "***";
                }

                if (b?.ContainsKey(key) == true)
                {
                    b[key] = changed ? "*** (after)" : "***";
                }
            }
        }

        return (from?.ToJsonString() ?? live, to?.ToJsonString() ?? merged);
    }

    /// <summary>An object as YAML with sorted keys, as kubectl diff prints it, leaving out <c>metadata.managedFields</c> (as kubectl diff does by default).</summary>
    public static string ObjectYaml(string? json)
    {
        if (json is null)
        {
            return "";
        }

        using var doc = JsonDocument.Parse(json);
        var text = new StringBuilder();
        WriteMap(doc.RootElement, 0, text, hideManagedFields: true);
        return text.ToString();
    }

    internal static void WriteMap(JsonElement map, int indent, StringBuilder text, bool hideManagedFields = false)
    {
        foreach (var p in map.EnumerateObject().OrderBy(p => p.Name, StringComparer.Ordinal))
        {
            if (p.Value.ValueKind == JsonValueKind.Null)
            {
                continue;
            }

            var value = p.Value;
            if (hideManagedFields && p.Name == "metadata" && value.ValueKind == JsonValueKind.Object)
            {
                text.Append(' ', indent).Append("metadata:\n");
                foreach (var m in value.EnumerateObject().Where(m => m.Name != "managedFields").OrderBy(m => m.Name, StringComparer.Ordinal))
                {
                    WriteEntry(m.Name, m.Value, indent + 2, text);
                }

                continue;
            }

            WriteEntry(p.Name, value, indent, text);
        }
    }

    private static void WriteEntry(string key, JsonElement value, int indent, StringBuilder text)
    {
        if (value.ValueKind == JsonValueKind.Null)
        {
            return;
        }

        text.Append(' ', indent).Append(Scalar(key)).Append(':');
        switch (value.ValueKind)
        {
            case JsonValueKind.Object when value.EnumerateObject().Any():
                text.Append('\n');
                WriteMap(value, indent + 2, text);
                break;
            case JsonValueKind.Array when value.GetArrayLength() > 0:
                text.Append('\n');
                WriteList(value, indent, text);
                break;
            default:
                text.Append(' ').Append(Scalar(value)).Append('\n');
                break;
        }
    }

    private static void WriteList(JsonElement list, int indent, StringBuilder text)
    {
        foreach (var item in list.EnumerateArray())
        {
            if (item.ValueKind == JsonValueKind.Object && item.EnumerateObject().Any())
            {
                // "- first: …" then the other keys under it
                var inner = new StringBuilder();
                WriteMap(item, indent + 2, inner);
                var lines = inner.ToString();
                text.Append(' ', indent).Append("- ").Append(lines.AsSpan(indent + 2));
            }
            else if (item.ValueKind == JsonValueKind.Array && item.GetArrayLength() > 0)
            {
                text.Append(' ', indent).Append("-\n");
                WriteList(item, indent + 2, text);
            }
            else
            {
                text.Append(' ', indent).Append("- ").Append(Scalar(item)).Append('\n');
            }
        }
    }

    private static string Scalar(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.String => Scalar(value.GetString()!),
        JsonValueKind.Object => "{}",
        JsonValueKind.Array => "[]",
        _ => value.GetRawText(),
    };

    private static string Scalar(string s)
    {
        var plain = s.Length > 0
            && !YamlText.LooksLikeNonString(s)
            && s.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' or '/' or ':' or '=' or '+' or '@' or ',' or ' ' or '(' or ')' or ';' or '%' or '~' or '?' or '&')
            && (char.IsAsciiLetterOrDigit(s[0]) || s[0] is '/' or '.' or '_')
            && !s.Contains(": ", StringComparison.Ordinal) && !s.EndsWith(':') && !s.EndsWith(' ') && !s.Contains(" #", StringComparison.Ordinal);
        return plain ? s : JsonSerializer.Serialize(s);
    }
}
