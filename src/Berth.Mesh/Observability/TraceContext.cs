using System.Diagnostics;

namespace Berth.Mesh.Observability;

/// <summary>W3C Trace Context: continue the caller's trace with the mesh hop as a new span, or start one when absent or malformed.</summary>
internal static class TraceContext
{
    public const string Header = "traceparent";

    /// <summary>The traceparent to send upstream for an incoming one (null or invalid: a new sampled trace).</summary>
    public static string Next(string? incoming)
    {
        var continued = IsValid(incoming);
        // One string, written in place (this runs once per request).
        return string.Create(55, (continued ? incoming : null), static (span, caller) =>
        {
            Span<byte> id = stackalloc byte[16];
            "00-".CopyTo(span);
            if (caller is not null)
            {
                caller.AsSpan(3, 32).CopyTo(span[3..]);
            }
            else
            {
                ActivityTraceId.CreateRandom().CopyTo(id);
                Convert.TryToHexStringLower(id, span.Slice(3, 32), out _);
            }

            span[35] = '-';
            ActivitySpanId.CreateRandom().CopyTo(id[..8]);
            Convert.TryToHexStringLower(id[..8], span.Slice(36, 16), out _);
            span[52] = '-';
            if (caller is not null)
            {
                caller.AsSpan(53, 2).CopyTo(span[53..]);
            }
            else
            {
                "01".CopyTo(span[53..]);
            }
        });
    }

    /// <summary>Version 00 layout: 00-{32 hex trace id, not all zero}-{16 hex parent id, not all zero}-{2 hex flags}.</summary>
    public static bool TryParse(string? value, out string traceId, out string flags)
    {
        traceId = flags = "";
        if (!IsValid(value))
        {
            return false;
        }

        traceId = value.Substring(3, 32);
        flags = value.Substring(53, 2);
        return true;
    }

    private static bool IsValid([System.Diagnostics.CodeAnalysis.NotNullWhen(true)] string? value)
    {
        if (value is null || value.Length < 55 || value[2] != '-' || value[35] != '-' || value[52] != '-' || value[0] == 'f')
        {
            return false;
        }

        var t = value.AsSpan(3, 32);
        var p = value.AsSpan(36, 16);
        var f = value.AsSpan(53, 2);
        if (!IsLowerHex(value.AsSpan(0, 2)) || !IsLowerHex(t) || !IsLowerHex(p) || !IsLowerHex(f)
            || !t.ContainsAnyExcept('0') || !p.ContainsAnyExcept('0') || (value.Length > 55 && value[55] != '-'))
        {
            return false;
        }

        return true;
    }

    private static bool IsLowerHex(ReadOnlySpan<char> s)
    {
        foreach (var c in s)
        {
            if (c is not ((>= '0' and <= '9') or (>= 'a' and <= 'f')))
            {
                return false;
            }
        }

        return true;
    }
}
