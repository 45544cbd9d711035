using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Berth.Core.Contracts;
using YamlDotNet.Serialization;

namespace Berth.Cli.Shell;

/// <summary>The one way commands print machine output: <c>-o table|wide|json|yaml</c> and <c>--format</c> (a Go-template-like
/// <c>{{.field}}</c> per item, as docker's, or <c>jsonpath=…</c>, as kubectl's), and one JSON style: camelCase, nulls left
/// out, indented, timestamps as written (<c>2026-01-02T15:04:05.123+00:00</c>, no <c>\u002B</c>).</summary>
internal static partial class Output
{
    /// <summary>The CLI's JSON: the API contracts' shape with readable characters.</summary>
    public static readonly JsonSerializerOptions JsonOptions = new(ApiJson.Default.Options)
    {
        WriteIndented = true,
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    /// <summary>The API contracts with <see cref="JsonOptions"/>.</summary>
    public static readonly ApiJson Json = new(JsonOptions);

    /// <summary>As <see cref="Json"/>, one document a line (event streams, as docker events --format json).</summary>
    public static readonly ApiJson JsonLines = new(new JsonSerializerOptions(JsonOptions) { WriteIndented = false });

    /// <summary>A fresh <c>-o/--output</c> option accepting <paramref name="formats"/>, the first the default.</summary>
    public static Option<string> CreateOption(params string[] formats) => new Option<string>("--output", "-o")
    {
        Description = $"Output format: {string.Join(", ", formats)} (default {formats[0]}).",
        DefaultValueFactory = _ => formats[0],
        HelpName = "FORMAT",
    }.AcceptOnlyFromAmong(formats);

    /// <summary>A fresh <c>--format</c> option: a template applied to each item.</summary>
    public static Option<string?> CreateTemplateOption() => new("--format")
    {
        Description = "Print each item through a template: Go-template-like '{{.id}}\\t{{.phase}}' (field names as in -o json, any case; "
            + "'table ' first adds a header; {{json .}} prints JSON), or kubectl's 'jsonpath={range [*]}{.id}{\"\\n\"}{end}'.",
        HelpName = "TEMPLATE",
    };

    /// <summary>Prints <paramref name="document"/> as json or yaml, or each of its items through <paramref name="template"/>;
    /// false when the format is a table one (the caller prints its table).</summary>
    public static bool TryWrite(JsonNode? document, string format, string? template, TextWriter to)
    {
        if (template is not null)
        {
            to.Write(Render(template, document));
            return true;
        }

        switch (format)
        {
            case "json":
                to.WriteLine(document?.ToJsonString(JsonOptions) ?? "null");
                return true;
            case "yaml":
                to.Write(Yaml(document));
                return true;
            default:
                return false;
        }
    }

    /// <summary>Left-aligned columns two spaces apart, trailing spaces trimmed (as kubectl's and docker's tables).</summary>
    public static void Table(IReadOnlyList<string> headers, IReadOnlyList<string[]> rows, TextWriter to)
    {
        var widths = headers.Select((h, i) => Math.Max(h.Length, rows.Count == 0 ? 0 : rows.Max(r => r[i].Length))).ToArray();
        to.WriteLine(string.Join("  ", headers.Select((h, i) => h.PadRight(widths[i]))).TrimEnd());
        foreach (var row in rows)
        {
            to.WriteLine(string.Join("  ", row.Select((c, i) => c.PadRight(widths[i]))).TrimEnd());
        }
    }

    // ---- yaml ---------------------------------------------------------------------------------------------------

    private static readonly ISerializer YamlSerializer = new SerializerBuilder().WithQuotingNecessaryStrings().Build();

    internal static string Yaml(JsonNode? node) => YamlSerializer.Serialize(Plain(node));

    private static object? Plain(JsonNode? node) => node switch
    {
        null => null,
        JsonObject o => o.ToDictionary(kv => kv.Key, kv => Plain(kv.Value)),
        JsonArray a => a.Select(Plain).ToList(),
        JsonValue v => v.GetValueKind() switch
        {
            JsonValueKind.String => v.GetValue<string>(),
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            JsonValueKind.Number => v.TryGetValue<long>(out var whole) ? whole : v.GetValue<double>(),
            JsonValueKind.Null or JsonValueKind.Undefined or JsonValueKind.Object or JsonValueKind.Array => null,
        },
        _ => node.ToJsonString(),
    };

    // ---- --format -----------------------------------------------------------------------------------------------

    internal static string Render(string template, JsonNode? document)
    {
        if (template.StartsWith("jsonpath=", StringComparison.Ordinal))
        {
            return JsonPath(template["jsonpath=".Length..].Trim('\''), document);
        }

        // As docker: \t and \n typed in the template are a tab and a newline.
        template = template.Replace("\\t", "\t", StringComparison.Ordinal).Replace("\\n", "\n", StringComparison.Ordinal);

        var items = document is JsonArray array ? array.ToList() : [document];
        var table = template.StartsWith("table ", StringComparison.Ordinal);
        var body = table ? template["table ".Length..] : template;
        var lines = items.Select(item => GoField().Replace(body, m => Text(Lookup(item, m.Groups["path"].Value), m.Groups["json"].Success))).ToList();
        if (!table)
        {
            return string.Concat(lines.Select(l => l.EndsWith('\n') ? l : l + "\n"));
        }

        // 'table': a header of the field names, and the tab-separated cells aligned as columns (docker's tabwriter).
        var header = GoField().Replace(body, m => m.Groups["path"].Value is { Length: > 0 } p ? p.Split('.')[^1].ToUpperInvariant() : "ITEM").Split('\t');
        var rows = lines.Select(l => l.TrimEnd('\n').Split('\t')).Select(r => r.Length == header.Length ? r : [.. r, .. Enumerable.Repeat("", Math.Max(0, header.Length - r.Length))]).ToList();
        using var to = new StringWriter(CultureInfo.InvariantCulture);
        Table(header, rows, to);
        return to.ToString();
    }

    [GeneratedRegex(@"\{\{\s*(?<json>json\s+)?\.(?<path>[\w.]*)\s*\}\}")]
    private static partial Regex GoField();

    private static JsonNode? Lookup(JsonNode? node, string path)
    {
        foreach (var part in path.Split('.', StringSplitOptions.RemoveEmptyEntries))
        {
            node = node is JsonObject o ? o.FirstOrDefault(kv => string.Equals(kv.Key, part, StringComparison.OrdinalIgnoreCase)).Value : null;
        }

        return node;
    }

    private static string Text(JsonNode? node, bool json) => node switch
    {
        _ when json => node?.ToJsonString(JsonLines.Options) ?? "null",
        null => "",
        JsonValue v when v.GetValueKind() == JsonValueKind.String => v.GetValue<string>(),
        _ => node.ToJsonString(JsonLines.Options),
    };

    /// <summary>kubectl's JSONPath template, the part people use: <c>{PATH}</c> (values joined by spaces), <c>{range PATH}…{end}</c>,
    /// <c>{"literal"}</c>; a PATH is <c>.field</c>, <c>[*]</c> and <c>[N]</c> steps from the current item (<c>$</c> or <c>@</c> first, optional).</summary>
    private static string JsonPath(string template, JsonNode? root)
    {
        var output = new StringBuilder();
        var tokens = JsonPathToken().Matches(template).Select(m => m.Value).ToList();
        var position = 0;
        Evaluate(root, tokens, ref position, output, untilEnd: false);
        return output.ToString();
    }

    [GeneratedRegex(@"\{[^}]*\}|[^{]+")]
    private static partial Regex JsonPathToken();

    private static void Evaluate(JsonNode? current, List<string> tokens, ref int position, StringBuilder output, bool untilEnd)
    {
        while (position < tokens.Count)
        {
            var token = tokens[position++];
            if (!token.StartsWith('{'))
            {
                output.Append(token);
                continue;
            }

            var expression = token[1..^1].Trim();
            if (expression == "end")
            {
                if (untilEnd)
                {
                    return;
                }

                continue;
            }

            if (expression.StartsWith("range ", StringComparison.Ordinal))
            {
                var start = position;
                var items = Select(current, expression["range ".Length..].Trim()).ToList();
                foreach (var item in items)
                {
                    position = start;
                    Evaluate(item, tokens, ref position, output, untilEnd: true);
                }

                if (items.Count == 0)
                {
                    SkipToEnd(tokens, ref position);
                }

                continue;
            }

            output.Append(expression.StartsWith('"') ? JsonSerializer.Deserialize<string>(expression) : string.Join(' ', Select(current, expression).Select(n => Text(n, json: false))));
        }
    }

    private static void SkipToEnd(List<string> tokens, ref int position)
    {
        for (var depth = 1; position < tokens.Count && depth > 0; position++)
        {
            var e = tokens[position].Trim('{', '}').Trim();
            depth += e.StartsWith("range ", StringComparison.Ordinal) ? 1 : e == "end" ? -1 : 0;
        }
    }

    private static IEnumerable<JsonNode?> Select(JsonNode? node, string path)
    {
        IEnumerable<JsonNode?> nodes = [node];
        foreach (Match step in JsonPathStep().Matches(path.TrimStart('$', '@')))
        {
            nodes = step.Groups["field"].Success ? nodes.Select(n => Lookup(n, step.Groups["field"].Value))
                : step.Groups["index"].Value == "*" ? nodes.SelectMany(n => n is JsonArray a ? a : (IEnumerable<JsonNode?>)[])
                : nodes.Select(n => n is JsonArray a && int.TryParse(step.Groups["index"].Value, CultureInfo.InvariantCulture, out var i) && i >= 0 && i < a.Count ? a[i] : null);
        }

        return nodes.Where(n => n is not null);
    }

    [GeneratedRegex(@"\.(?<field>\w+)|\[(?<index>\*|\d+)\]")]
    private static partial Regex JsonPathStep();
}
