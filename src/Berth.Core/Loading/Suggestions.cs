namespace Berth.Core.Loading;

/// <summary>"Did you mean …" for misspelled keys and names: the closest candidate within a small edit distance.</summary>
public static class Suggestions
{
    /// <summary>The closest of <paramref name="candidates"/> to <paramref name="input"/>, or null when none is close.</summary>
    public static string? Closest(string input, IEnumerable<string> candidates)
    {
        var normalized = Normalize(input);
        string? best = null;
        var bestDistance = int.MaxValue;
        foreach (var candidate in candidates)
        {
            var c = Normalize(candidate);
            if (c == normalized)
            {
                return candidate; // dependsOn, Depends-On → depends_on
            }

            var d = Distance(normalized, c);
            if (d < bestDistance)
            {
                bestDistance = d;
                best = candidate;
            }
        }

        // One edit for short words, about a third of the length for longer ones.
        var allowed = Math.Max(1, normalized.Length / 3);
        return bestDistance <= allowed ? best : null;
    }

    private static string Normalize(string s) => s.Replace("_", "", StringComparison.Ordinal).Replace("-", "", StringComparison.Ordinal).ToLowerInvariant();

    /// <summary>Optimal string alignment distance (Levenshtein plus adjacent transpositions, as typos often swap two letters).</summary>
    internal static int Distance(string a, string b)
    {
        var d = new int[a.Length + 1, b.Length + 1];
        for (var i = 0; i <= a.Length; i++)
        {
            d[i, 0] = i;
        }

        for (var j = 0; j <= b.Length; j++)
        {
            d[0, j] = j;
        }

        for (var i = 1; i <= a.Length; i++)
        {
            for (var j = 1; j <= b.Length; j++)
            {
                var cost = a[i - 1] == b[j - 1] ? 0 : 1;
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + cost);
                if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                {
                    d[i, j] = Math.Min(d[i, j], d[i - 2, j - 2] + 1);
                }
            }
        }

        return d[a.Length, b.Length];
    }
}
