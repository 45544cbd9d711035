using System.Collections.Immutable;
using System.Text;

namespace Berth.Orchestration.Controllers;

/// <summary>Kubernetes' <c>$(VAR)</c> expansion of command, args and entrypoint from the replica's own environment, done
/// when the replica starts (the loader's Compose interpolation of <c>$VAR</c>/<c>${VAR}</c> happens earlier, from the
/// user's environment). <c>$$(</c> escapes to a literal <c>$(</c>; a name the environment does not have is left as written.
/// Unlike Kubernetes, a <c>$$</c> not followed by <c>(</c> is kept, so a shell's <c>$$</c> (its pid) survives.</summary>
public static class ArgvExpansion
{
    public static ImmutableArray<string> Expand(ImmutableArray<string> argv, IReadOnlyDictionary<string, string> env) =>
        argv.IsDefault ? argv : [.. argv.Select(a => Expand(a, env))];

    public static string Expand(string text, IReadOnlyDictionary<string, string> env)
    {
        if (!text.Contains("$(", StringComparison.Ordinal))
        {
            return text;
        }

        var sb = new StringBuilder(text.Length);
        var i = 0;
        while (i < text.Length)
        {
            if (text[i] != '$')
            {
                sb.Append(text[i++]);
                continue;
            }

            if (i + 2 < text.Length && text[i + 1] == '$' && text[i + 2] == '(')
            {
                sb.Append("$(");
                i += 3;
                continue;
            }

            if (i + 1 < text.Length && text[i + 1] == '(')
            {
                var close = text.IndexOf(')', i + 2);
                if (close > i + 2 && env.TryGetValue(text[(i + 2)..close], out var value))
                {
                    sb.Append(value);
                    i = close + 1;
                    continue;
                }
            }

            sb.Append('$');
            i++;
        }

        return sb.ToString();
    }
}
