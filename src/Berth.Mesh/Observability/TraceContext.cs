using System.Buffers.Binary;

namespace Berth.Mesh.Observability;

/// <summary>W3C Trace Context: continue the caller's trace with the mesh hop as a new span, or start one when absent or malformed.</summary>
internal static class TraceContext
{
    public const string Header = "traceparent";

    /// <summary>The traceparent to send upstream for an incoming one (null or invalid: a new sampled trace).</summary>
    public static TraceParent Next(string? incoming)
    {
        // Random.Shared, as ActivityTraceId/ActivitySpanId.CreateRandom: ids need to be unique, not reproducible, and those
        // two allocate their hex strings (~140 bytes per request, with the traceparent string ~280 of the ~320 left).
        var span = NonZero();
        if (!IsValid(incoming))
        {
            return new TraceParent(NonZero(), (ulong)Random.Shared.NextInt64(long.MinValue, long.MaxValue), span, 0x01);
        }

        Span<byte> parts = stackalloc byte[17];
        Convert.FromHexString(incoming.AsSpan(3, 32), parts[..16], out _, out _);
        Convert.FromHexString(incoming.AsSpan(53, 2), parts[16..], out _, out _);
        return new TraceParent(BinaryPrimitives.ReadUInt64BigEndian(parts), BinaryPrimitives.ReadUInt64BigEndian(parts[8..]), span, parts[16]);

        static ulong NonZero()
        {
            ulong v;
            do
            {
                v = (ulong)Random.Shared.NextInt64(long.MinValue, long.MaxValue);
            }
            while (v == 0);
            return v;
        }
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

/// <summary>
/// A traceparent the mesh sends upstream (version 00), kept as numbers: it is written into the request head as bytes and
/// made a string only when a request is logged or recorded. <c>default</c> is "none" (its span id is 0, which a made one
/// never is).
/// </summary>
internal readonly struct TraceParent(ulong traceHigh, ulong traceLow, ulong spanId, byte flags)
{
    /// <summary>The length of its text, <c>00-{32 hex}-{16 hex}-{2 hex}</c>.</summary>
    public const int Length = 55;

    public bool IsNone => spanId == 0;

    /// <summary>Writes the text as ASCII into the first <see cref="Length"/> bytes of <paramref name="destination"/>.</summary>
    public void WriteTo(Span<byte> destination)
    {
        destination = destination[..Length];
        destination[0] = destination[1] = (byte)'0';
        destination[2] = destination[35] = destination[52] = (byte)'-';
        Hex(traceHigh, destination.Slice(3, 16));
        Hex(traceLow, destination.Slice(19, 16));
        Hex(spanId, destination.Slice(36, 16));
        destination[53] = Digit(flags >> 4);
        destination[54] = Digit(flags & 0xF);
    }

    /// <summary>The text, or null for none.</summary>
    public string? Text() => IsNone ? null : ToString();

    public override string ToString() => string.Create(Length, this, static (chars, p) =>
    {
        Span<byte> ascii = stackalloc byte[Length];
        p.WriteTo(ascii);
        for (var i = 0; i < Length; i++)
        {
            chars[i] = (char)ascii[i];
        }
    });

    private static void Hex(ulong value, Span<byte> into)
    {
        for (var i = 15; i >= 0; i--)
        {
            into[i] = Digit((int)(value & 0xF));
            value >>= 4;
        }
    }

    private static byte Digit(int nibble) => (byte)(nibble < 10 ? '0' + nibble : 'a' + nibble - 10);
}
