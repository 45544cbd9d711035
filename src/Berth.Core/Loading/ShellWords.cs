using System.Text;

namespace Berth.Core.Loading;

/// <summary>Splits a command string into argv the way Compose does for <c>command: "a b 'c d'"</c> (POSIX shell quoting,
/// no expansion). The result is executed directly, not through a shell.</summary>
internal static class ShellWords
{
    public static bool TrySplit(string text, out List<string> words, out string? error)
    {
        words = [];
        error = null;
        var current = new StringBuilder();
        var inWord = false;
        var i = 0;
        while (i < text.Length)
        {
            var c = text[i];
            if (char.IsWhiteSpace(c))
            {
                if (inWord)
                {
                    words.Add(current.ToString());
                    current.Clear();
                    inWord = false;
                }

                i++;
                continue;
            }

            inWord = true;
            if (c == '\'')
            {
                var end = text.IndexOf('\'', i + 1);
                if (end < 0)
                {
                    error = "has an unterminated single quote";
                    return false;
                }

                current.Append(text, i + 1, end - i - 1);
                i = end + 1;
            }
            else if (c == '"')
            {
                i++;
                while (true)
                {
                    if (i >= text.Length)
                    {
                        error = "has an unterminated double quote";
                        return false;
                    }

                    if (text[i] == '"')
                    {
                        i++;
                        break;
                    }

                    if (text[i] == '\\' && i + 1 < text.Length && text[i + 1] is '"' or '\\' or '$' or '`')
                    {
                        current.Append(text[i + 1]);
                        i += 2;
                        continue;
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

        if (inWord)
        {
            words.Add(current.ToString());
        }

        return true;
    }
}
