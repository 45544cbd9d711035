using System.Text;

namespace Berth.Pipelines.Execution;

/// <summary>
/// Replaces secret values with <c>***</c>. A secret matches even when line breaks sit inside it in the
/// output, so a value printed across lines is masked line by line. As a stream it holds back only a tail
/// that could still become a secret, so a value split across writes is masked too.
/// </summary>
public sealed class SecretMasker
{
    public const string Mask = "***";

    // Line breaks are not part of what is matched: "hun\nter2" matches "hunter2". Replaced whole by Add, never changed in place.
    private volatile string[] _secrets;
    private readonly Lock _lock = new();

    public SecretMasker(IEnumerable<string> secrets)
    {
        _secrets = Normalize(secrets);
    }

    private static string[] Normalize(IEnumerable<string> secrets) => secrets
        .Select(s => s.Replace("\r", "", StringComparison.Ordinal).Replace("\n", "", StringComparison.Ordinal))
        .Where(s => s.Length > 0)
        .Distinct(StringComparer.Ordinal)
        .OrderByDescending(s => s.Length)
        .ToArray();

    /// <summary>Masks <paramref name="value"/> from now on (<c>::add-mask::</c>), in every stream of this masker.</summary>
    public void Add(string value)
    {
        lock (_lock)
        {
            _secrets = Normalize(_secrets.Append(value).Concat(value.Split('\n').Select(l => l.TrimEnd('\r'))));
        }
    }

    public static SecretMasker Empty { get; } = new([]);

    public bool IsEmpty => _secrets.Length == 0;

    /// <summary>Masks a complete text (an event, an error message, an API field).</summary>
    public string MaskText(string? text)
    {
        if (text is null || _secrets.Length == 0)
        {
            return text ?? "";
        }

        var output = new StringBuilder(text.Length);
        Scan(text, output, final: true);
        return output.ToString();
    }

    /// <summary>A streaming masker for one output stream.</summary>
    public Stream Open() => new(this);

    /// <summary>
    /// Appends masked text to <paramref name="output"/> and returns how many characters of <paramref name="text"/>
    /// were consumed; the rest might still grow into a secret and waits for more input unless <paramref name="final"/>.
    /// </summary>
    private int Scan(string text, StringBuilder output, bool final)
    {
        var i = 0;
        while (i < text.Length)
        {
            var matched = false;
            foreach (var secret in _secrets)
            {
                var end = MatchAt(text, i, secret, out var partial);
                if (partial && !final)
                {
                    // A longer secret may still match here once more input comes: wait for it rather than mask a shorter
                    // one now and let the longer one's tail out in the next write.
                    return i;
                }

                if (end > 0)
                {
                    // Keep the line structure: each line the secret spans shows ***.
                    output.Append(Mask);
                    for (var j = i; j < end; j++)
                    {
                        if (text[j] == '\r')
                        {
                            output.Append('\r');
                        }
                        else if (text[j] == '\n')
                        {
                            output.Append('\n').Append(Mask);
                        }
                    }

                    i = end;
                    matched = true;
                    break;
                }
            }

            if (matched)
            {
                continue;
            }

            output.Append(text[i++]);
        }

        return i;
    }

    /// <summary>End of the match of <paramref name="secret"/> at <paramref name="start"/>, or 0; <paramref name="partial"/> when the text ran out mid-secret.</summary>
    private static int MatchAt(string text, int start, string secret, out bool partial)
    {
        partial = false;
        var j = start;
        var k = 0;
        while (k < secret.Length)
        {
            if (j >= text.Length)
            {
                partial = true;
                return 0;
            }

            var c = text[j];
            if (k > 0 && c is '\r' or '\n')
            {
                j++;
                continue;
            }

            if (c != secret[k])
            {
                return 0;
            }

            j++;
            k++;
        }

        return j;
    }

    /// <summary>One output stream: feed writes in, take masked text out.</summary>
    public sealed class Stream(SecretMasker masker)
    {
        private string _pending = "";

        public string Write(ReadOnlySpan<char> chunk)
        {
            var text = string.Concat(_pending, chunk);
            if (masker._secrets.Length == 0)
            {
                _pending = "";
                return text;
            }

            var output = new StringBuilder(text.Length);
            var consumed = masker.Scan(text, output, final: false);
            _pending = text[consumed..];
            return output.ToString();
        }

        /// <summary>The held-back tail, masked; call at the end of the stream.</summary>
        public string Flush()
        {
            var output = new StringBuilder();
            masker.Scan(_pending, output, final: true);
            _pending = "";
            return output.ToString();
        }
    }
}
