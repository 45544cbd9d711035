using System.Text;

namespace Berth.Pipelines.Definition;

/// <summary>
/// Splits a one-line command into argv the way a POSIX shell splits words — quotes and backslashes only,
/// no expansion, no pipes — so <c>run: dotnet test -c Release</c> runs without a shell.
/// </summary>
public static class ArgvSplitter
{
    public static List<(string Word, int Offset)> Split(string text)
    {
        var words = new List<(string, int)>();
        var current = new StringBuilder();
        var start = -1;
        var i = 0;
        while (i < text.Length)
        {
            var c = text[i];
            if (char.IsWhiteSpace(c))
            {
                if (start >= 0)
                {
                    words.Add((current.ToString(), start));
                    current.Clear();
                    start = -1;
                }

                i++;
                continue;
            }

            if (start < 0)
            {
                start = i;
            }

            if (c == '$' && string.CompareOrdinal(text, i, "${{", 0, 3) == 0)
            {
                // An expression is one piece of a word: its spaces and quotes belong to it.
                var close = text.IndexOf("}}", i + 3, StringComparison.Ordinal);
                var end = close < 0 ? text.Length : close + 2;
                current.Append(text, i, end - i);
                i = end;
                continue;
            }

            if (c is '|' or ';' or '>' or '<' or '`' or '&')
            {
                throw new FormatException($"'{c}' at column {i + 1} is shell syntax but run: has no shell; add shell: bash, or quote it");
            }

            if (c == '\'')
            {
                var close = text.IndexOf('\'', i + 1);
                if (close < 0)
                {
                    throw new FormatException($"the ' at column {i + 1} is not closed");
                }

                current.Append(text, i + 1, close - i - 1);
                i = close + 1;
            }
            else if (c == '"')
            {
                i++;
                while (true)
                {
                    if (i >= text.Length)
                    {
                        throw new FormatException($"the \" at column {start + 1} is not closed");
                    }

                    if (text[i] == '"')
                    {
                        i++;
                        break;
                    }

                    if (text[i] == '\\' && i + 1 < text.Length && text[i + 1] is '"' or '\\' or '$')
                    {
                        i++;
                    }

                    current.Append(text[i++]);
                }
            }
            else if (c == '\\' && i + 1 < text.Length)
            {
                current.Append(text[i + 1]);
                i += 2;
            }
            else
            {
                current.Append(c);
                i++;
            }
        }

        if (start >= 0)
        {
            words.Add((current.ToString(), start));
        }

        return words;
    }
}
