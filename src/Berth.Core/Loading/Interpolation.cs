using System.Text;

namespace Berth.Core.Loading;

/// <summary>Variable interpolation as Compose does it: <c>$VAR</c>, <c>${VAR}</c>, <c>${VAR:-default}</c>, <c>${VAR-default}</c>,
/// <c>${VAR:?message}</c>, <c>${VAR?message}</c>, <c>${VAR:+alt}</c>, <c>${VAR+alt}</c>, and <c>$$</c> for a literal <c>$</c>.
/// <c>$(VAR)</c> is left as written for the replica-start expansion (Kubernetes' syntax); <c>$$</c> is always a literal <c>$</c>.
/// Defaults and alternatives are themselves interpolated, so <c>${A:-${B}}</c> works.</summary>
internal sealed class Interpolator(IReadOnlyDictionary<string, string> given)
{
    private readonly Dictionary<string, string> variables = new(given, StringComparer.Ordinal);

    /// <summary>Sets a variable the loader itself defines (Compose's <c>COMPOSE_PROJECT_NAME</c>).</summary>
    public void Define(string name, string value) => variables[name] = value;

    /// <summary>Names that were referenced but not set (and had no default); Compose warns about each once.</summary>
    public HashSet<string> Unset { get; } = new(StringComparer.Ordinal);

    public IReadOnlyDictionary<string, string> Variables => variables;

    /// <summary>Interpolates <paramref name="text"/>; on failure <paramref name="error"/> says what is wrong and how to fix it.</summary>
    public bool TryInterpolate(string text, out string result, out string? error)
    {
        if (!text.Contains('$', StringComparison.Ordinal))
        {
            result = text;
            error = null;
            return true;
        }

        var sb = new StringBuilder(text.Length);
        var i = 0;
        var ok = Expand(text, ref i, sb, out error);
        result = sb.ToString();
        return ok;
    }

    private bool Expand(string s, ref int i, StringBuilder sb, out string? error)
    {
        error = null;
        while (i < s.Length)
        {
            var c = s[i];
            if (c != '$')
            {
                sb.Append(c);
                i++;
                continue;
            }

            if (i + 1 >= s.Length)
            {
                error = "ends with a '$' that starts no variable; write $$ for a literal $";
                return false;
            }

            // "$(" is not Compose syntax: it is Kubernetes' $(VAR), expanded from the replica's environment when it starts,
            // so it passes through. "$$" stays Compose's escape for "$" (also before "("), as Compose files rely on it.
            if (s[i + 1] == '(')
            {
                sb.Append('$');
                i++;
                continue;
            }

            var next = s[i + 1];
            if (next == '$')
            {
                sb.Append('$');
                i += 2;
            }
            else if (next == '{')
            {
                i += 2;
                if (!Braced(s, ref i, sb, out error))
                {
                    return false;
                }
            }
            else if (IsNameStart(next))
            {
                var start = i + 1;
                i = start;
                while (i < s.Length && IsNameChar(s[i]))
                {
                    i++;
                }

                sb.Append(Lookup(s[start..i]) ?? "");
            }
            else
            {
                error = $"has a '$' that starts no variable at '${next}'; write $$ for a literal $, or ${{NAME}} for a variable";
                return false;
            }
        }

        return true;
    }

    // After "${": NAME, then optionally an operator and a word, then "}".
    private bool Braced(string s, ref int i, StringBuilder sb, out string? error)
    {
        error = null;
        var start = i;
        while (i < s.Length && IsNameChar(s[i]))
        {
            i++;
        }

        var name = s[start..i];
        if (name.Length == 0 || !IsNameStart(name[0]))
        {
            error = i < s.Length
                ? $"has '${{{s[start..Math.Min(s.Length, s.IndexOf('}', start) is var e && e >= 0 ? e : s.Length)]}}}', which is not a variable name (letters, digits and _, not starting with a digit)"
                : "has a '${' without its closing '}'";
            return false;
        }

        if (i >= s.Length)
        {
            error = "has a '${' without its closing '}'";
            return false;
        }

        if (s[i] == '}')
        {
            i++;
            sb.Append(Lookup(name) ?? "");
            return true;
        }

        var colon = s[i] == ':';
        if (colon)
        {
            i++;
        }

        if (i >= s.Length || s[i] is not ('-' or '?' or '+'))
        {
            error = $"has '${{{name}' followed by '{(i < s.Length ? s[i] : ' ')}'; write ${{{name}}}, ${{{name}:-default}}, ${{{name}:?message}} or ${{{name}:+alternative}}";
            return false;
        }

        var op = s[i++];

        // The word runs to the '}' that closes this "${": braces inside it pair up, so ${JSON:-{"json":1}} keeps its
        // object. It is expanded only when it is used, so an unused branch neither warns nor fails (as Compose).
        var wordStart = i;
        var depth = 0;
        while (i < s.Length && (s[i] != '}' || depth > 0))
        {
            if (s[i] == '$' && i + 1 < s.Length && s[i + 1] == '$')
            {
                i += 2;
                continue;
            }

            depth += s[i] switch { '{' => 1, '}' => -1, _ => 0 };
            i++;
        }

        if (i >= s.Length)
        {
            error = "has a '${' without its closing '}'";
            return false;
        }

        var raw = s[wordStart..i];
        i++; // the closing brace
        var has = variables.TryGetValue(name, out var value);
        var usable = has && (!colon || value!.Length > 0);
        string Word(out string? wordError)
        {
            var word = new StringBuilder();
            var at = 0;
            return Expand(raw, ref at, word, out wordError) ? word.ToString() : "";
        }

        switch (op)
        {
            case '-':
                if (usable)
                {
                    sb.Append(value);
                    break;
                }

                var fallback = Word(out error);
                if (error is not null)
                {
                    return false;
                }

                sb.Append(fallback);
                break;
            case '+':
                if (!usable)
                {
                    break;
                }

                var alternative = Word(out error);
                if (error is not null)
                {
                    return false;
                }

                sb.Append(alternative);
                break;
            default: // '?'
                if (!usable)
                {
                    var message = raw.Length > 0 ? Word(out _) : "";
                    message = message.Length > 0 ? message : $"{name} must be set";
                    error = $"required variable {name} is {(has ? "empty" : "not set")}: {message}";
                    return false;
                }

                sb.Append(value);
                break;
        }

        return true;
    }

    private string? Lookup(string name)
    {
        if (variables.TryGetValue(name, out var value))
        {
            return value;
        }

        Unset.Add(name);
        return null;
    }

    private static bool IsNameStart(char c) => c == '_' || char.IsAsciiLetter(c);

    private static bool IsNameChar(char c) => c == '_' || char.IsAsciiLetterOrDigit(c);
}
