using System.Text;

namespace Berth.Core.Loading;

/// <summary>Variable interpolation as Compose does it: <c>$VAR</c>, <c>${VAR}</c>, <c>${VAR:-default}</c>, <c>${VAR-default}</c>,
/// <c>${VAR:?message}</c>, <c>${VAR?message}</c>, <c>${VAR:+alt}</c>, <c>${VAR+alt}</c>, and <c>$$</c> for a literal <c>$</c>.
/// <c>$(VAR)</c> is left as written for the replica-start expansion (Kubernetes' syntax); <c>$$</c> is always a literal <c>$</c>.
/// Defaults and alternatives are themselves interpolated, so <c>${A:-${B}}</c> works.</summary>
internal sealed class Interpolator(IReadOnlyDictionary<string, string> variables)
{
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
        var ok = Expand(text, ref i, sb, inBraces: false, out error);
        result = sb.ToString();
        return ok;
    }

    private bool Expand(string s, ref int i, StringBuilder sb, bool inBraces, out string? error)
    {
        error = null;
        while (i < s.Length)
        {
            var c = s[i];
            if (inBraces && c == '}')
            {
                return true;
            }

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

        if (inBraces)
        {
            error = "has a '${' without its closing '}'";
            return false;
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
        var word = new StringBuilder();
        if (!Expand(s, ref i, word, inBraces: true, out error))
        {
            return false;
        }

        i++; // the closing brace
        var has = variables.TryGetValue(name, out var value);
        var usable = has && (!colon || value!.Length > 0);
        switch (op)
        {
            case '-':
                sb.Append(usable ? value : word.ToString());
                break;
            case '+':
                sb.Append(usable ? word.ToString() : "");
                break;
            default: // '?'
                if (!usable)
                {
                    var message = word.Length > 0 ? word.ToString() : $"{name} must be set";
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
