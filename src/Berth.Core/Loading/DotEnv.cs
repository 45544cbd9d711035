using System.Text;

namespace Berth.Core.Loading;

/// <summary>Reads <c>.env</c> and <c>env_file</c> files as Compose does: <c>KEY=value</c>, <c>export KEY=value</c>, comments,
/// single quotes (literal, <c>\'</c> for a quote), double quotes (with \n, \t, \\ and \" escapes), and <c># comments</c> after
/// unquoted values. Unquoted and double-quoted values are interpolated as Compose does: <c>B=${A}_x</c> after <c>A=1</c> is
/// <c>1_x</c>, names taken from the file's earlier lines first, then from the environment given.</summary>
internal static class DotEnv
{
    /// <summary>One line's problem: its 1-based line number and what is wrong.</summary>
    public sealed record Problem(int Line, int Column, string Message);

    public static List<KeyValuePair<string, string?>> Parse(string text, List<Problem> problems, IReadOnlyDictionary<string, string>? environment = null)
    {
        var result = new List<KeyValuePair<string, string?>>();
        var scope = new Interpolator(environment ?? new Dictionary<string, string>());
        var lines = text.Replace("\r\n", "\n", StringComparison.Ordinal).Split('\n');
        for (var n = 0; n < lines.Length; n++)
        {
            var line = lines[n];
            var trimmed = line.TrimStart();
            if (trimmed.Length == 0 || trimmed[0] == '#')
            {
                continue;
            }

            var indent = line.Length - trimmed.Length;
            if (trimmed.StartsWith("export ", StringComparison.Ordinal))
            {
                trimmed = trimmed["export ".Length..].TrimStart();
            }

            var eq = trimmed.IndexOf('=', StringComparison.Ordinal);
            var key = (eq < 0 ? trimmed : trimmed[..eq]).Trim();
            if (key.Length == 0 || key.Any(char.IsWhiteSpace))
            {
                problems.Add(new Problem(n + 1, indent + 1, $"'{trimmed.TrimEnd()}' is not KEY=value"));
                continue;
            }

            if (eq < 0)
            {
                result.Add(new(key, null)); // a bare KEY: taken from the environment, as Compose does
                if (environment?.TryGetValue(key, out var inherited) == true)
                {
                    scope.Define(key, inherited);
                }

                continue;
            }

            var raw = trimmed[(eq + 1)..].TrimStart();
            var lineNumber = n + 1;
            string value;
            var expand = true;
            if (raw.StartsWith('\'') || raw.StartsWith('"'))
            {
                var quote = raw[0];
                var sb = new StringBuilder();
                var i = 1;
                var closed = false;
                var rest = raw;
                while (true)
                {
                    for (; i < rest.Length; i++)
                    {
                        if (rest[i] == quote)
                        {
                            closed = true;
                            break;
                        }

                        if (quote == '\'' && rest[i] == '\\' && i + 1 < rest.Length && rest[i + 1] == '\'')
                        {
                            i++;
                            sb.Append('\'');
                            continue;
                        }

                        if (quote == '"' && rest[i] == '\\' && i + 1 < rest.Length)
                        {
                            i++;
                            // \$ stays a literal $ through the interpolation below.
                            sb.Append(rest[i] switch { 'n' => "\n", 't' => "\t", 'r' => "\r", '$' => "$$", var c => c.ToString() });
                            continue;
                        }

                        sb.Append(rest[i]);
                    }

                    // Quoted values may span lines.
                    if (closed || n + 1 >= lines.Length)
                    {
                        break;
                    }

                    sb.Append('\n');
                    rest = lines[++n];
                    i = 0;
                }

                if (!closed)
                {
                    problems.Add(new Problem(n + 1, 1, $"the value of {key} has an unterminated {(quote == '"' ? "double" : "single")} quote"));
                    continue;
                }

                value = sb.ToString();
                expand = quote == '"';
            }
            else
            {
                var hash = raw.IndexOf(" #", StringComparison.Ordinal);
                value = (hash >= 0 ? raw[..hash] : raw).TrimEnd();
            }

            if (expand && value.Contains('$', StringComparison.Ordinal))
            {
                if (!scope.TryInterpolate(value, out var expanded, out var error))
                {
                    problems.Add(new Problem(lineNumber, indent + 1, $"the value of {key} {error}"));
                    continue;
                }

                value = expanded;
            }

            scope.Define(key, value);
            result.Add(new(key, value));
        }

        return result;
    }
}
