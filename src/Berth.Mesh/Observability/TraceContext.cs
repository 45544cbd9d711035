using System.Diagnostics;

namespace Berth.Mesh.Observability;

/// <summary>W3C Trace Context: continue the caller's trace with the mesh hop as a new span, or start one when absent or malformed.</summary>
internal static class TraceContext
{
    public const string Header = "traceparent";

    /// <summary>The traceparent to send upstream for an incoming one (null or invalid: a new sampled trace).</summary>
    public static string Next(string? incoming)
    {
        var spanId = ActivitySpanId.CreateRandom().ToHexString();
        if (TryParse(incoming, out var traceId, out var flags))
        {
            return $"00-{traceId}-{spanId}-{flags}";
        }

        return $"00-{ActivityTraceId.CreateRandom().ToHexString()}-{spanId}-01";
    }

    /// <summary>Version 00 layout: 00-{32 hex trace id, not all zero}-{16 hex parent id, not all zero}-{2 hex flags}.</summary>
    public static bool TryParse(string? value, out string traceId, out string flags)
    {
        traceId = flags = "";
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

        traceId = t.ToString();
        flags = f.ToString();
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
