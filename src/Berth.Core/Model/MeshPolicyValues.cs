using System.Collections.Immutable;
using System.Globalization;

namespace Berth.Core.Model;

/// <summary>
/// <see cref="RetryPolicy.On"/> parsed: which failures a retry is allowed for. One parser for the loader (which reports
/// bad items with their position) and the mesh (which uses the typed value), so both accept the same words.
/// </summary>
public sealed record RetryConditions(bool ConnectFailure, bool Reset, ImmutableHashSet<int> Statuses, ImmutableHashSet<int> GrpcStatuses)
{
    /// <summary>What an item may be, for error messages.</summary>
    public const string Expected = "use connect-failure, reset, gateway-error, 5xx, a status code such as 503, or a gRPC status such as unavailable";

    /// <summary>gRPC status names as Envoy's retry_on spells them, with their codes.</summary>
    public static readonly IReadOnlyDictionary<string, int> GrpcNames = new Dictionary<string, int>(StringComparer.Ordinal)
    {
        ["cancelled"] = 1,
        ["deadline-exceeded"] = 4,
        ["resource-exhausted"] = 8,
        ["internal"] = 13,
        ["unavailable"] = 14,
    };

    /// <summary>True when <paramref name="item"/> is a retry condition.</summary>
    public static bool IsValid(string item) => TryAdd(item, new Builder());

    /// <summary>Parses every item; the first one that is not a condition is returned in <paramref name="bad"/>.</summary>
    public static RetryConditions? TryParse(IEnumerable<string> on, out string? bad)
    {
        var b = new Builder();
        bad = null;
        foreach (var item in on)
        {
            if (!TryAdd(item, b))
            {
                bad = item;
                return null;
            }
        }

        return new RetryConditions(b.Connect, b.Reset, b.Statuses.ToImmutable(), b.Grpc.ToImmutable());
    }

    private static bool TryAdd(string raw, Builder b)
    {
        var on = raw.Trim().ToLowerInvariant();
        switch (on)
        {
            case "connect-failure":
                b.Connect = true;
                return true;
            case "reset":
                b.Reset = true;
                return true;
            case "gateway-error":
                b.Statuses.UnionWith([502, 503, 504]);
                return true;
            case "5xx":
                // As Envoy's 5xx: any 5xx answer, and resets and connect failures too.
                for (var s = 500; s < 600; s++)
                {
                    b.Statuses.Add(s);
                }

                b.Connect = b.Reset = true;
                return true;
        }

        if (GrpcNames.TryGetValue(on, out var grpc))
        {
            b.Grpc.Add(grpc);
            return true;
        }

        // Statuses an upstream answers with that are worth a retry: 4xx (e.g. 429, 409) and 5xx.
        if (on.Length == 3 && int.TryParse(on, NumberStyles.None, CultureInfo.InvariantCulture, out var code) && code is >= 400 and <= 599)
        {
            b.Statuses.Add(code);
            return true;
        }

        return false;
    }

    private sealed class Builder
    {
        public bool Connect;
        public bool Reset;
        public readonly ImmutableHashSet<int>.Builder Statuses = ImmutableHashSet.CreateBuilder<int>();
        public readonly ImmutableHashSet<int>.Builder Grpc = ImmutableHashSet.CreateBuilder<int>();
    }
}

/// <summary>Where a consistent-hash key comes from.</summary>
public enum HashSource
{
    Header,
    Cookie,
}

/// <summary><see cref="MeshPolicy.HashOn"/> parsed: <c>header:X-User</c> or <c>cookie:session</c>.</summary>
public sealed record HashKey(HashSource Source, string Name)
{
    /// <summary>What the text may be, for error messages.</summary>
    public const string Expected = "header:NAME or cookie:NAME";

    /// <summary>Parses <c>header:NAME</c> / <c>cookie:NAME</c> (prefix case-insensitive, name trimmed); null when it is neither.</summary>
    public static HashKey? TryParse(string? text)
    {
        var t = text?.Trim();
        var colon = t?.IndexOf(':', StringComparison.Ordinal) ?? -1;
        if (t is null || colon <= 0 || colon == t.Length - 1)
        {
            return null;
        }

        var name = t[(colon + 1)..].Trim();
        if (name.Length == 0)
        {
            return null;
        }

        return t[..colon].Trim().ToLowerInvariant() switch
        {
            "header" => new HashKey(HashSource.Header, name),
            "cookie" => new HashKey(HashSource.Cookie, name),
            _ => null,
        };
    }

    public override string ToString() => (Source == HashSource.Header ? "header:" : "cookie:") + Name;
}
