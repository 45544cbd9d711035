using System.Collections.Immutable;

namespace Berth.Pipelines.Execution;

/// <summary>A <c>::name key=value,…::message</c> line a step printed.</summary>
public sealed record WorkflowCommand(string Name, ImmutableDictionary<string, string> Properties, string Message)
{
    /// <summary>
    /// Reads a workflow command as GitHub documents them; null for ordinary output. Values are unescaped as GitHub
    /// escapes them: <c>%25</c> → %, <c>%0D</c> → CR, <c>%0A</c> → LF, and in properties <c>%3A</c> → : and <c>%2C</c> → ,.
    /// </summary>
    public static WorkflowCommand? Parse(string line)
    {
        if (!line.StartsWith("::", StringComparison.Ordinal))
        {
            return null;
        }

        var end = line.IndexOf("::", 2, StringComparison.Ordinal);
        if (end < 0)
        {
            return null;
        }

        var head = line[2..end];
        var message = Unescape(line[(end + 2)..], property: false);
        var space = head.IndexOf(' ');
        var name = space < 0 ? head : head[..space];
        if (name.Length == 0 || !name.All(c => char.IsAsciiLetterOrDigit(c) || c == '-'))
        {
            return null;
        }

        var properties = ImmutableDictionary.CreateBuilder<string, string>(StringComparer.OrdinalIgnoreCase);
        if (space >= 0)
        {
            foreach (var pair in head[(space + 1)..].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                var eq = pair.IndexOf('=');
                if (eq > 0)
                {
                    properties[pair[..eq]] = Unescape(pair[(eq + 1)..], property: true);
                }
            }
        }

        return new WorkflowCommand(name.ToLowerInvariant(), properties.ToImmutable(), message);
    }

    private static string Unescape(string text, bool property)
    {
        if (!text.Contains('%', StringComparison.Ordinal))
        {
            return text;
        }

        var result = text.Replace("%0D", "\r", StringComparison.OrdinalIgnoreCase).Replace("%0A", "\n", StringComparison.OrdinalIgnoreCase);
        if (property)
        {
            result = result.Replace("%3A", ":", StringComparison.OrdinalIgnoreCase).Replace("%2C", ",", StringComparison.OrdinalIgnoreCase);
        }

        return result.Replace("%25", "%", StringComparison.Ordinal);
    }

    public int? IntProperty(string name) =>
        Properties.TryGetValue(name, out var text) && int.TryParse(text, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var n) ? n : null;
}

/// <summary>
/// GITHUB_OUTPUT / GITHUB_ENV: <c>name=value</c> lines, or <c>name&lt;&lt;DELIMITER</c>, the value's lines, then the
/// delimiter alone on a line — as GitHub's environment files.
/// </summary>
public static class EnvironmentFile
{
    /// <summary>The entries in order (a later one with the same name wins when put in a dictionary); an error names the line.</summary>
    public static IReadOnlyList<KeyValuePair<string, string>> Parse(string text, string what)
    {
        var entries = new List<KeyValuePair<string, string>>();
        var lines = text.Replace("\r\n", "\n", StringComparison.Ordinal).Split('\n');
        for (var i = 0; i < lines.Length; i++)
        {
            var line = lines[i];
            if (line.Length == 0)
            {
                continue;
            }

            var heredoc = line.IndexOf("<<", StringComparison.Ordinal);
            var eq = line.IndexOf('=');
            if (heredoc > 0 && (eq < 0 || heredoc < eq))
            {
                var name = line[..heredoc];
                var delimiter = line[(heredoc + 2)..];
                if (delimiter.Length == 0)
                {
                    throw new StepFailedException($"{what} line {i + 1}: '{name}<<' needs a delimiter, e.g. {name}<<EOF");
                }

                var value = new List<string>();
                var closed = false;
                for (i++; i < lines.Length; i++)
                {
                    if (lines[i] == delimiter)
                    {
                        closed = true;
                        break;
                    }

                    value.Add(lines[i]);
                }

                if (!closed)
                {
                    throw new StepFailedException($"{what}: the value of '{name}' has no closing line '{delimiter}'");
                }

                entries.Add(KeyValuePair.Create(name, string.Join('\n', value)));
            }
            else if (eq > 0)
            {
                entries.Add(KeyValuePair.Create(line[..eq], line[(eq + 1)..]));
            }
            else
            {
                throw new StepFailedException($"{what} line {i + 1}: expected NAME=VALUE or NAME<<DELIMITER, got '{(line.Length > 60 ? line[..57] + "..." : line)}'");
            }
        }

        return entries;
    }
}
