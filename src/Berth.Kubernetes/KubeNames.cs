using System.Text;

namespace Berth.Kubernetes;

/// <summary>Turns spec names into the names Kubernetes accepts.</summary>
internal static class KubeNames
{
    /// <summary>Longest DNS label (RFC 1123/1035), and so the longest Service or namespace name.</summary>
    public const int MaxLabelLength = 63;

    /// <summary>A DNS-1035 label (Service names): lowercase letters, digits and '-', starting with a letter, at most 63 characters.</summary>
    public static string Label(string name, int max = MaxLabelLength)
    {
        var text = new StringBuilder(name.Length);
        foreach (var c in name.ToLowerInvariant())
        {
            var ok = c is >= 'a' and <= 'z' or >= '0' and <= '9';
            if (ok)
            {
                text.Append(c);
            }
            else if (text.Length > 0 && text[^1] != '-')
            {
                text.Append('-');
            }
        }

        var s = text.ToString().Trim('-');
        if (s.Length == 0 || !char.IsAsciiLetter(s[0]))
        {
            s = "s-" + s;
        }

        if (s.Length > max)
        {
            s = s[..max].TrimEnd('-');
        }

        return s;
    }

    /// <summary>A port name (IANA service name): at most 15 characters, with at least one letter.</summary>
    public static string Port(string name) => Label(name, 15);

    /// <summary>A label value: at most 63 of [A-Za-z0-9-_.], starting and ending alphanumeric.</summary>
    public static string LabelValue(string value)
    {
        var text = new StringBuilder(value.Length);
        foreach (var c in value)
        {
            text.Append(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' ? c : '-');
        }

        var s = text.ToString();
        if (s.Length > 63)
        {
            s = s[..63];
        }

        return s.Trim('-', '_', '.');
    }

    /// <summary>Whether <paramref name="key"/> can be an annotation or label key: <c>[dns.prefix/]name</c>, the name at most 63 characters.</summary>
    public static bool IsAnnotationKey(string key)
    {
        var slash = key.IndexOf('/', StringComparison.Ordinal);
        var prefix = slash >= 0 ? key[..slash] : null;
        var name = slash >= 0 ? key[(slash + 1)..] : key;
        if (prefix is not null && (prefix.Length is 0 or > 253 || !prefix.Split('.').All(IsDnsLabel)))
        {
            return false;
        }

        return name.Length is > 0 and <= 63
            && char.IsAsciiLetterOrDigit(name[0])
            && char.IsAsciiLetterOrDigit(name[^1])
            && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.');
    }

    private static bool IsDnsLabel(string part) =>
        part.Length is > 0 and <= 63
        && char.IsAsciiLetterLower(part[0]) | char.IsAsciiDigit(part[0])
        && char.IsAsciiLetterLower(part[^1]) | char.IsAsciiDigit(part[^1])
        && part.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c == '-');

    /// <summary>Whether <paramref name="key"/> can be a ConfigMap or Secret key.</summary>
    public static bool IsDataKey(string key) =>
        key.Length is > 0 and <= 253 && key.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.');
}
