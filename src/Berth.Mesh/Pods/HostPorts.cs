using System.Collections.Immutable;
using System.Globalization;

namespace Berth.Mesh.Pods;

/// <summary>
/// The TCP ports listening on the host's loopback (127.0.0.0/8, ::1, or any address), read from the kernel's socket tables
/// of the data plane's own namespace (<c>/proc/self/net/tcp</c> and <c>tcp6</c>), each with the address a forwarded
/// connection goes to. What a pod's host-gateway listeners mirror, as pasta's <c>-T auto</c> mirrors the bound ports.
/// </summary>
internal static class HostPorts
{
    /// <summary>Port → where to connect on the host (<c>127.0.0.1:port</c>, the exact 127.x address, or <c>[::1]:port</c>).</summary>
    public static ImmutableSortedDictionary<int, string> Listening(string procNet = "/proc/self/net")
    {
        var ports = ImmutableSortedDictionary.CreateBuilder<int, string>();
        foreach (var (table, v6) in (ReadOnlySpan<(string, bool)>)[("tcp", false), ("tcp6", true)])
        {
            IEnumerable<string> lines;
            try
            {
                lines = File.ReadLines(Path.Combine(procNet, table)).Skip(1).ToList();
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                continue;
            }

            // "  0: 0100007F:1F90 00000000:0000 0A …": local address (hex, in the kernel's byte order) and port, state 0A = LISTEN.
            foreach (var line in lines)
            {
                var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (fields.Length < 4 || fields[3] != "0A" || fields[1].IndexOf(':', StringComparison.Ordinal) is not (var colon and > 0)
                    || !int.TryParse(fields[1].AsSpan(colon + 1), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var port)
                    || Target(fields[1][..colon], v6) is not { } address)
                {
                    continue;
                }

                // A v4 listener wins over a v6 one on the same port (any v4 client reaches it).
                if (!v6 || !ports.ContainsKey(port))
                {
                    ports[port] = v6 ? $"[{address}]:{port}" : $"{address}:{port}";
                }
            }
        }

        return ports.ToImmutable();
    }

    /// <summary>The loopback address to forward to for a listener bound on <paramref name="hex"/>, or null when it is bound
    /// on some other address (not the host's loopback: not mirrored).</summary>
    private static string? Target(string hex, bool v6)
    {
        if (!v6)
        {
            // Little-endian: 127.0.0.1 is 0100007F; the first octet is the last byte.
            return hex == "00000000" ? "127.0.0.1"
                : hex.Length == 8 && hex.EndsWith("7F", StringComparison.Ordinal) ? string.Join('.', Enumerable.Range(0, 4).Select(i => Convert.ToByte(hex.Substring(6 - (2 * i), 2), 16)))
                : null;
        }

        return hex switch
        {
            "00000000000000000000000000000000" or "00000000000000000000000001000000" => "::1",
            _ when hex.StartsWith("0000000000000000FFFF0000", StringComparison.Ordinal) && hex.EndsWith("7F", StringComparison.Ordinal) => "127.0.0.1",
            _ => null,
        };
    }
}
