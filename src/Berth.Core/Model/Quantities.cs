using System.Globalization;

namespace Berth.Core.Model;

/// <summary>A CPU amount in millicores, parsed as Kubernetes does: <c>500m</c>, <c>0.5</c>, <c>2</c>.</summary>
public readonly record struct CpuQuantity(long MilliCores) : IComparable<CpuQuantity>
{
    public double Cores => MilliCores / 1000.0;

    public int CompareTo(CpuQuantity other) => MilliCores.CompareTo(other.MilliCores);

    public static bool operator <(CpuQuantity a, CpuQuantity b) => a.MilliCores < b.MilliCores;
    public static bool operator >(CpuQuantity a, CpuQuantity b) => a.MilliCores > b.MilliCores;
    public static bool operator <=(CpuQuantity a, CpuQuantity b) => a.MilliCores <= b.MilliCores;
    public static bool operator >=(CpuQuantity a, CpuQuantity b) => a.MilliCores >= b.MilliCores;

    /// <summary>Parses <c>250m</c>, <c>0.25</c>, <c>1</c>, <c>1.5</c>. Returns false with a reason on anything else.</summary>
    public static bool TryParse(string? text, out CpuQuantity value, out string? error)
    {
        value = default;
        error = null;
        var s = text?.Trim();
        if (string.IsNullOrEmpty(s))
        {
            error = "is empty; write cores such as 0.5 or 2, or millicores such as 500m";
            return false;
        }

        if (s.EndsWith('m'))
        {
            if (long.TryParse(s.AsSpan(0, s.Length - 1), NumberStyles.None, CultureInfo.InvariantCulture, out var milli))
            {
                value = new CpuQuantity(milli);
                return true;
            }
        }
        else if (decimal.TryParse(s, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var cores))
        {
            var milli = cores * 1000m;
            if (milli != decimal.Truncate(milli))
            {
                error = $"'{s}' is finer than one millicore; the smallest step is 0.001 (1m)";
                return false;
            }

            value = new CpuQuantity((long)milli);
            return true;
        }

        error = $"'{s}' is not a CPU quantity; write cores such as 0.5 or 2, or millicores such as 500m";
        return false;
    }

    public static CpuQuantity Parse(string text) =>
        TryParse(text, out var v, out var e) ? v : throw new FormatException($"CPU quantity {e}");

    public static CpuQuantity FromCores(double cores) => new((long)Math.Round(cores * 1000));

    /// <summary>Canonical text: whole cores as <c>2</c>, otherwise millicores as <c>500m</c>.</summary>
    public override string ToString() =>
        MilliCores % 1000 == 0
            ? (MilliCores / 1000).ToString(CultureInfo.InvariantCulture)
            : MilliCores.ToString(CultureInfo.InvariantCulture) + "m";
}

/// <summary>A memory amount in bytes, parsed as Kubernetes does: <c>256Mi</c>, <c>1G</c>, <c>1.5Gi</c>, <c>1048576</c>;
/// Compose's <c>512m</c>/<c>1g</c>/<c>512mb</c> (binary units) are accepted too.</summary>
public readonly record struct ByteSize(long Bytes) : IComparable<ByteSize>
{
    private static readonly (string Suffix, long Factor)[] Units =
    [
        ("Ki", 1L << 10), ("Mi", 1L << 20), ("Gi", 1L << 30), ("Ti", 1L << 40), ("Pi", 1L << 50), ("Ei", 1L << 60),
        ("k", 1_000L), ("K", 1_000L), ("M", 1_000_000L), ("G", 1_000_000_000L), ("T", 1_000_000_000_000L),
        ("P", 1_000_000_000_000_000L), ("E", 1_000_000_000_000_000_000L),
        // Compose/Docker byte units are binary: 512m = 512 MiB. Lowercase m is not a Kubernetes memory suffix
        // (it would mean milli-bytes), so taking it as Compose does is unambiguous in practice.
        ("kb", 1L << 10), ("mb", 1L << 20), ("gb", 1L << 30), ("b", 1L), ("m", 1L << 20), ("g", 1L << 30),
    ];

    public int CompareTo(ByteSize other) => Bytes.CompareTo(other.Bytes);

    public static bool operator <(ByteSize a, ByteSize b) => a.Bytes < b.Bytes;
    public static bool operator >(ByteSize a, ByteSize b) => a.Bytes > b.Bytes;
    public static bool operator <=(ByteSize a, ByteSize b) => a.Bytes <= b.Bytes;
    public static bool operator >=(ByteSize a, ByteSize b) => a.Bytes >= b.Bytes;

    public static bool TryParse(string? text, out ByteSize value, out string? error)
    {
        value = default;
        error = null;
        var s = text?.Trim();
        if (string.IsNullOrEmpty(s))
        {
            error = "is empty; write a size such as 256Mi, 1Gi or 500M";
            return false;
        }

        long factor = 1;
        var number = s;
        foreach (var (suffix, f) in Units)
        {
            if (s.EndsWith(suffix, StringComparison.Ordinal) && s.Length > suffix.Length && char.IsDigit(s[^(suffix.Length + 1)]))
            {
                factor = f;
                number = s[..^suffix.Length];
                break;
            }
        }

        if (!decimal.TryParse(number, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var amount))
        {
            error = $"'{s}' is not a memory size; write a number with a unit such as 256Mi, 1Gi or 500M";
            return false;
        }

        var bytes = amount * factor;
        if (bytes > long.MaxValue)
        {
            error = $"'{s}' is too large";
            return false;
        }

        value = new ByteSize((long)decimal.Ceiling(bytes));
        return true;
    }

    public static ByteSize Parse(string text) =>
        TryParse(text, out var v, out var e) ? v : throw new FormatException($"memory size {e}");

    public static ByteSize FromMebibytes(long mi) => new(mi << 20);

    /// <summary>Canonical text: the largest binary unit that divides exactly (<c>256Mi</c>), else bytes.</summary>
    public override string ToString()
    {
        string[] names = ["Ei", "Pi", "Ti", "Gi", "Mi", "Ki"];
        for (var i = 0; i < names.Length; i++)
        {
            var factor = 1L << (10 * (6 - i));
            if (Bytes != 0 && Bytes % factor == 0)
            {
                return (Bytes / factor).ToString(CultureInfo.InvariantCulture) + names[i];
            }
        }

        return Bytes.ToString(CultureInfo.InvariantCulture);
    }
}

/// <summary>A count or a percentage of replicas, as Kubernetes' IntOrString for maxSurge/maxUnavailable.</summary>
public readonly record struct IntOrPercent(int Value, bool IsPercent)
{
    public static IntOrPercent Count(int n) => new(n, false);

    public static IntOrPercent Percent(int p) => new(p, true);

    public bool IsZero => Value == 0;

    /// <summary>Resolves against a replica count; <paramref name="roundUp"/> as Kubernetes: surge rounds up, unavailable down.</summary>
    public int Resolve(int replicas, bool roundUp)
    {
        if (!IsPercent)
        {
            return Value;
        }

        var exact = replicas * Value / 100.0;
        return roundUp ? (int)Math.Ceiling(exact) : (int)Math.Floor(exact);
    }

    public static bool TryParse(string? text, out IntOrPercent value, out string? error)
    {
        value = default;
        error = null;
        var s = text?.Trim() ?? "";
        if (s.EndsWith('%') && int.TryParse(s.AsSpan(0, s.Length - 1), NumberStyles.None, CultureInfo.InvariantCulture, out var p))
        {
            value = Percent(p);
            return true;
        }

        if (int.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out var n))
        {
            value = Count(n);
            return true;
        }

        error = $"'{s}' is neither a replica count (2) nor a percentage (25%)";
        return false;
    }

    public override string ToString() => IsPercent ? $"{Value}%" : Value.ToString(CultureInfo.InvariantCulture);
}

/// <summary>Durations as Compose and Go write them: <c>150ms</c>, <c>5s</c>, <c>1m30s</c>, <c>1h</c>, <c>2.5s</c>.</summary>
public static class Durations
{
    public static bool TryParse(string? text, out TimeSpan value, out string? error)
    {
        value = TimeSpan.Zero;
        error = null;
        var s = text?.Trim();
        if (string.IsNullOrEmpty(s))
        {
            error = "is empty; write a duration such as 500ms, 10s or 1m30s";
            return false;
        }

        if (s == "0")
        {
            return true;
        }

        double totalMs = 0;
        var i = 0;
        while (i < s.Length)
        {
            var start = i;
            while (i < s.Length && (char.IsDigit(s[i]) || s[i] == '.'))
            {
                i++;
            }

            if (start == i || !double.TryParse(s.AsSpan(start, i - start), NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var amount))
            {
                error = $"'{s}' is not a duration; write a number with a unit (ns, us, ms, s, m, h), such as 500ms, 10s or 1m30s";
                return false;
            }

            var unitStart = i;
            while (i < s.Length && char.IsLetter(s[i]))
            {
                i++;
            }

            double? factor = s[unitStart..i] switch
            {
                "ns" => 1e-6,
                "us" or "µs" => 1e-3,
                "ms" => 1,
                "s" => 1000,
                "m" => 60_000,
                "h" => 3_600_000,
                _ => null,
            };
            if (factor is null)
            {
                error = unitStart == i
                    ? $"'{s}' has no unit; write 10s rather than 10 (units: ns, us, ms, s, m, h)"
                    : $"'{s}' has an unknown unit '{s[unitStart..i]}'; use ns, us, ms, s, m or h";
                return false;
            }

            totalMs += amount * factor.Value;
        }

        value = TimeSpan.FromMilliseconds(totalMs);
        return true;
    }

    public static TimeSpan Parse(string text) =>
        TryParse(text, out var v, out var e) ? v : throw new FormatException($"duration {e}");

    /// <summary>Go-style canonical text: <c>1m30s</c>, <c>150ms</c>, <c>0s</c>.</summary>
    public static string Format(TimeSpan value)
    {
        if (value == TimeSpan.Zero)
        {
            return "0s";
        }

        if (value.Ticks % TimeSpan.TicksPerSecond != 0 && value < TimeSpan.FromSeconds(1))
        {
            return value.TotalMilliseconds.ToString(CultureInfo.InvariantCulture) + "ms";
        }

        var parts = new System.Text.StringBuilder();
        if (value.TotalHours >= 1)
        {
            parts.Append((long)value.TotalHours).Append('h');
        }

        if (value.Minutes > 0)
        {
            parts.Append(value.Minutes).Append('m');
        }

        var seconds = value.Seconds + (value.Ticks % TimeSpan.TicksPerSecond) / (double)TimeSpan.TicksPerSecond;
        if (seconds > 0)
        {
            parts.Append(seconds.ToString(CultureInfo.InvariantCulture)).Append('s');
        }

        return parts.ToString();
    }
}
