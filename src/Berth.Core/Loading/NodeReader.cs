using System.Collections.Immutable;
using System.Globalization;
using Berth.Core.Model;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Berth.Core.Loading;

/// <summary>Reads YAML nodes into typed values, interpolating scalars and recording every problem with its position.
/// It never throws for bad input: each helper reports a diagnostic and returns null, so reading goes on and every
/// error is reported at once.</summary>
internal partial class NodeReader(string file, Interpolator interpolator)
{
    private readonly HashSet<string> _warnedUnset = new(StringComparer.Ordinal);

    public string File { get; } = file;

    public List<Diagnostic> Diagnostics { get; } = [];

    public Interpolator Interpolator { get; } = interpolator;

    public bool HasErrors => Diagnostics.Any(d => d.Severity == DiagnosticSeverity.Error);

    public void Error(Mark at, string path, string message) =>
        Diagnostics.Add(new Diagnostic(DiagnosticSeverity.Error, File, (int)at.Line, (int)at.Column, path, message));

    public void Warning(Mark at, string path, string message) =>
        Diagnostics.Add(new Diagnostic(DiagnosticSeverity.Warning, File, (int)at.Line, (int)at.Column, path, message));

    public void Error(YamlNode node, string path, string message) =>
        Diagnostics.Add(new Diagnostic(DiagnosticSeverity.Error, FileOf(node), (int)node.Start.Line, (int)node.Start.Column, path, message));

    public void Warning(YamlNode node, string path, string message) =>
        Diagnostics.Add(new Diagnostic(DiagnosticSeverity.Warning, FileOf(node), (int)node.Start.Line, (int)node.Start.Column, path, message));

    // Nodes of override files (compose.override.yaml) name their own file; everything else is in File.
    private readonly Dictionary<YamlNode, string> _nodeFiles = new(ReferenceEqualityComparer.Instance);

    /// <summary>The file a node was read from.</summary>
    public string FileOf(YamlNode node) => _nodeFiles.GetValueOrDefault(node, File);

    /// <summary>Records that every node under <paramref name="root"/> comes from <paramref name="file"/>.</summary>
    public void Claim(YamlNode root, string file)
    {
        if (!_nodeFiles.TryAdd(root, file))
        {
            return;
        }

        switch (root)
        {
            case YamlMappingNode map:
                foreach (var (k, v) in map.Children)
                {
                    Claim(k, file);
                    Claim(v, file);
                }

                break;
            case YamlSequenceNode seq:
                foreach (var item in seq.Children)
                {
                    Claim(item, file);
                }

                break;
        }
    }

    public static string Join(string path, string key) => path.Length == 0 ? key : path + "." + key;

    public static string Index(string path, int i) => $"{path}[{i}]";

    public static bool IsNull(YamlNode node) =>
        node is YamlScalarNode { Style: ScalarStyle.Plain or ScalarStyle.Any, Value: null or "" or "~" or "null" or "Null" or "NULL" };

    private static string Describe(YamlNode node) => node switch
    {
        YamlMappingNode => "a mapping",
        YamlSequenceNode => "a list",
        _ when IsNull(node) => "nothing",
        YamlScalarNode s => $"'{s.Value}'",
        _ => "something else",
    };

    /// <summary>Keys must be strings in YAML's sense, as Compose requires: an unquoted <c>123:</c> or <c>true:</c> is a
    /// number or a boolean, not a name.</summary>
    public bool StringKeysOnly { get; init; }

    /// <summary>The entries of a mapping with their keys as text; reports and skips non-scalar keys.</summary>
    public IEnumerable<(string Key, YamlScalarNode KeyNode, YamlNode Value)> Entries(YamlMappingNode map, string path)
    {
        foreach (var (k, v) in map.Children)
        {
            if (k is YamlScalarNode { Value: { } key } scalar)
            {
                if (StringKeysOnly && scalar.Style is ScalarStyle.Plain or ScalarStyle.Any && NonStringScalar(key) is { } kind)
                {
                    Error(scalar, Join(path, key), $"the key {key} is {kind} in YAML, but keys here must be strings (as Compose requires); quote it (\"{key}\") or rename it");
                    continue;
                }

                yield return (key, scalar, v);
            }
            else
            {
                Error(k, path, "keys must be plain names, not lists or mappings");
            }
        }
    }

    /// <summary>What YAML 1.2's core schema makes of a plain scalar that is not a string ("a number", …), or null.</summary>
    public static string? NonStringScalar(string text) => text switch
    {
        "true" or "True" or "TRUE" or "false" or "False" or "FALSE" => "a boolean",
        "null" or "Null" or "NULL" or "~" or "" => "null",
        ".inf" or "-.inf" or "+.inf" or ".Inf" or ".INF" or ".nan" or ".NaN" or ".NAN" => "a number",
        _ when YamlNumber().IsMatch(text) => "a number",
        _ => null,
    };

    [System.Text.RegularExpressions.GeneratedRegex(@"^([-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+|[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?)$")]
    private static partial System.Text.RegularExpressions.Regex YamlNumber();

    public YamlMappingNode? Mapping(YamlNode node, string path, string what = "a mapping (key: value)")
    {
        if (node is YamlMappingNode map)
        {
            return map;
        }

        Error(node, path, $"must be {what}, got {Describe(node)}");
        return null;
    }

    public YamlSequenceNode? Sequence(YamlNode node, string path, string what = "a list")
    {
        if (node is YamlSequenceNode seq)
        {
            return seq;
        }

        Error(node, path, $"must be {what}, got {Describe(node)}");
        return null;
    }

    /// <summary>The interpolated text of a scalar; null (with an error) for lists and mappings.</summary>
    public string? String(YamlNode node, string path, string what = "a string")
    {
        if (node is not YamlScalarNode scalar)
        {
            Error(node, path, $"must be {what}, got {Describe(node)}");
            return null;
        }

        return Interpolate(scalar, path);
    }

    /// <summary>Interpolates a scalar's text; null (with an error) when interpolation fails.</summary>
    public string? Interpolate(YamlScalarNode scalar, string path)
    {
        var text = scalar.Value ?? "";
        var unsetBefore = Interpolator.Unset.Count;
        if (!Interpolator.TryInterpolate(text, out var result, out var error))
        {
            Error(scalar, path, error!);
            return null;
        }

        if (Interpolator.Unset.Count > unsetBefore)
        {
            // As Compose: warn once per variable, where it is first used.
            foreach (var name in Interpolator.Unset.Except(_warnedUnset).ToList())
            {
                _warnedUnset.Add(name);
                Warning(scalar, path, $"variable {name} is not set, so it is replaced by an empty string; set it, or write ${{{name}:-default}}");
            }
        }

        return result;
    }

    public string? OptionalString(YamlNode node, string path) => IsNull(node) ? null : String(node, path);

    public int? Int(YamlNode node, string path, int min = int.MinValue, int max = int.MaxValue, string? hint = null)
    {
        var text = String(node, path, "a whole number");
        if (text is null)
        {
            return null;
        }

        if (!int.TryParse(text.Trim(), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var value))
        {
            Error(node, path, $"must be a whole number, got '{text}'");
            return null;
        }

        if (value < min || value > max)
        {
            Error(node, path, RangeMessage(value.ToString(CultureInfo.InvariantCulture), min, max, hint));
            return null;
        }

        return value;
    }

    public double? Double(YamlNode node, string path, double min = double.MinValue, double max = double.MaxValue)
    {
        var text = String(node, path, "a number");
        if (text is null)
        {
            return null;
        }

        if (!double.TryParse(text.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out var value) || !double.IsFinite(value))
        {
            Error(node, path, $"must be a number, got '{text}'");
            return null;
        }

        if (value < min || value > max)
        {
            Error(node, path, RangeMessage(text.Trim(), min, max, null));
            return null;
        }

        return value;
    }

    private static string RangeMessage(string got, double min, double max, string? hint)
    {
        var range = (min, max) switch
        {
            (double.MinValue or int.MinValue, _) => $"must be at most {max.ToString(CultureInfo.InvariantCulture)}",
            (_, double.MaxValue or int.MaxValue) => $"must be {min.ToString(CultureInfo.InvariantCulture)} or more",
            _ => $"must be between {min.ToString(CultureInfo.InvariantCulture)} and {max.ToString(CultureInfo.InvariantCulture)}",
        };
        return $"{range}, got {got}{(hint is null ? "" : "; " + hint)}";
    }

    public bool? Bool(YamlNode node, string path)
    {
        var text = String(node, path, "true or false");
        switch (text?.Trim())
        {
            case null:
                return null;
            case "true" or "True" or "TRUE":
                return true;
            case "false" or "False" or "FALSE":
                return false;
            default:
                Error(node, path, $"must be true or false, got '{text}'");
                return null;
        }
    }

    public TimeSpan? Duration(YamlNode node, string path, bool allowZero = true)
    {
        var text = String(node, path, "a duration such as 10s");
        if (text is null)
        {
            return null;
        }

        if (!Durations.TryParse(text, out var value, out var error))
        {
            Error(node, path, error!.StartsWith("is ", StringComparison.Ordinal) ? "duration " + error : error);
            return null;
        }

        if (!allowZero && value <= TimeSpan.Zero)
        {
            Error(node, path, $"must be longer than 0s, got '{text}'");
            return null;
        }

        return value;
    }

    public CpuQuantity? Cpu(YamlNode node, string path)
    {
        var text = String(node, path, "a CPU quantity such as 500m or 2");
        if (text is null)
        {
            return null;
        }

        if (!CpuQuantity.TryParse(text, out var value, out var error))
        {
            Error(node, path, error!.StartsWith("is ", StringComparison.Ordinal) ? "CPU quantity " + error : error);
            return null;
        }

        return value;
    }

    /// <summary>Compose's <c>cpus</c>: a number of CPUs as Docker reads it (<c>0.5</c>, <c>2</c>, <c>500m</c> too); a value
    /// finer than Berth's 1m step is rounded to the nearest millicore (at least 1m), as Docker rounds it to its CFS quota,
    /// rather than rejected. 0 means no limit, as Docker.</summary>
    public CpuQuantity? ComposeCpu(YamlNode node, string path)
    {
        var text = String(node, path, "a number of CPUs such as 0.5 or 2");
        if (text is null)
        {
            return null;
        }

        if (!text.Trim().EndsWith('m') && decimal.TryParse(text.Trim(), NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var cores))
        {
            var milli = (long)decimal.Round(cores * 1000m, MidpointRounding.AwayFromZero);
            return cores == 0 ? null : new CpuQuantity(Math.Max(1, milli));
        }

        return Cpu(node, path);
    }

    public ByteSize? Memory(YamlNode node, string path, bool dockerUnits = false)
    {
        var text = String(node, path, "a memory size such as 256Mi");
        if (text is null)
        {
            return null;
        }

        if (dockerUnits && text.Trim() == "-1")
        {
            return null; // Docker's "unlimited"
        }

        if (dockerUnits ? !DockerUnits.TryParseBytes(text, out var value, out var error) : !ByteSize.TryParse(text, out value, out error))
        {
            Error(node, path, error!.StartsWith("is ", StringComparison.Ordinal) ? "memory size " + error : error);
            return null;
        }

        return value;
    }

    public IntOrPercent? IntOrPercent(YamlNode node, string path)
    {
        var text = String(node, path, "a count or a percentage");
        if (text is null)
        {
            return null;
        }

        if (!Model.IntOrPercent.TryParse(text, out var value, out var error))
        {
            Error(node, path, error!);
            return null;
        }

        if (value.IsPercent && value.Value > 100)
        {
            Error(node, path, $"must be at most 100%, got {value}");
            return null;
        }

        return value;
    }

    /// <summary>A name from a fixed set (e.g. <c>always</c>, <c>on-failure</c>, <c>never</c>), suggesting the closest on a typo.</summary>
    public T? Enum<T>(YamlNode node, string path, IReadOnlyDictionary<string, T> names) where T : struct
    {
        var text = String(node, path, "one of " + string.Join(", ", names.Keys));
        if (text is null)
        {
            return null;
        }

        if (names.TryGetValue(text.Trim(), out var value))
        {
            return value;
        }

        var suggestion = Suggestions.Closest(text, names.Keys);
        Error(node, path, $"'{text}' is not one of {string.Join(", ", names.Keys)}{(suggestion is null ? "" : $"; did you mean '{suggestion}'?")}");
        return null;
    }

    /// <summary>A string or a list of strings (argv). A string is split as a shell would split words, without running a shell.</summary>
    public ImmutableArray<string>? Argv(YamlNode node, string path, bool splitString = true)
    {
        if (node is YamlSequenceNode seq)
        {
            var items = ImmutableArray.CreateBuilder<string>(seq.Children.Count);
            for (var i = 0; i < seq.Children.Count; i++)
            {
                var item = String(seq.Children[i], Index(path, i));
                if (item is not null)
                {
                    items.Add(item);
                }
            }

            return items.ToImmutable();
        }

        var text = String(node, path, "a command: a list of arguments or a string");
        if (text is null)
        {
            return null;
        }

        if (!splitString)
        {
            return [text];
        }

        if (!ShellWords.TrySplit(text, out var words, out var error))
        {
            Error(node, path, error!);
            return null;
        }

        return [.. words];
    }

    /// <summary>A list of strings; a single string counts as a list of one.</summary>
    public ImmutableArray<string> Strings(YamlNode node, string path)
    {
        if (node is YamlScalarNode)
        {
            var one = String(node, path);
            return one is null ? [] : [one];
        }

        var seq = Sequence(node, path, "a list of strings");
        if (seq is null)
        {
            return [];
        }

        var items = ImmutableArray.CreateBuilder<string>(seq.Children.Count);
        for (var i = 0; i < seq.Children.Count; i++)
        {
            var item = String(seq.Children[i], Index(path, i));
            if (item is not null)
            {
                items.Add(item);
            }
        }

        return items.ToImmutable();
    }

    /// <summary>A key/value map written as a mapping or as a <c>KEY=value</c> list (Compose's environment, labels, args).
    /// Values that are absent (<c>KEY</c> alone, or <c>KEY:</c>) come back null.</summary>
    public List<(string Key, string? Value, YamlNode Node)> KeyValues(YamlNode node, string path)
    {
        var result = new List<(string, string?, YamlNode)>();
        if (node is YamlMappingNode map)
        {
            foreach (var (key, keyNode, value) in Entries(map, path))
            {
                var p = Join(path, key);
                if (IsNull(value))
                {
                    result.Add((key, null, keyNode));
                }
                else if (value is YamlScalarNode)
                {
                    var text = String(value, p);
                    if (text is not null)
                    {
                        result.Add((key, text, value));
                    }
                }
                else
                {
                    Error(value, p, $"must be a string, number or boolean, got {Describe(value)}");
                }
            }
        }
        else if (node is YamlSequenceNode seq)
        {
            for (var i = 0; i < seq.Children.Count; i++)
            {
                var item = String(seq.Children[i], Index(path, i), "KEY=value");
                if (item is null)
                {
                    continue;
                }

                var eq = item.IndexOf('=', StringComparison.Ordinal);
                var key = eq < 0 ? item : item[..eq];
                if (key.Length == 0)
                {
                    Error(seq.Children[i], Index(path, i), $"'{item}' has no name before '='; write KEY=value");
                    continue;
                }

                result.Add((key, eq < 0 ? null : item[(eq + 1)..], seq.Children[i]));
            }
        }
        else if (!IsNull(node))
        {
            Error(node, path, $"must be a mapping (KEY: value) or a list of KEY=value, got {Describe(node)}");
        }

        return result;
    }

    /// <summary>Reports an unknown key, suggesting the closest known one.</summary>
    public void UnknownKey(YamlScalarNode keyNode, string path, string key, IEnumerable<string> known, string where)
    {
        Error(keyNode, Join(path, key), KeyTable<NodeReader, object>.UnknownKeyMessage(key, known, where));
    }
}

/// <summary>Docker's byte units, as <c>docker</c> and Compose read them (go-units' RAMInBytes): a number, an optional space,
/// then <c>b</c>, <c>k</c>, <c>m</c>, <c>g</c>, <c>t</c> or <c>p</c> with an optional <c>i</c> and <c>b</c>, any case, all
/// binary: <c>512M</c>, <c>64MiB</c>, <c>64 MB</c>, <c>2KiB</c>, <c>1GiB</c> and <c>256Mi</c> are all powers of 1024.</summary>
internal static class DockerUnits
{
    public static bool TryParseBytes(string text, out ByteSize value, out string? error)
    {
        value = default;
        error = null;
        var s = text.Trim();
        var end = 0;
        while (end < s.Length && (char.IsAsciiDigit(s[end]) || s[end] == '.'))
        {
            end++;
        }

        var unit = s[end..].TrimStart(' ').ToLowerInvariant();
        long factor = unit.Length == 0 ? 1 : unit[0] switch
        {
            'b' when unit.Length == 1 => 1,
            'k' => 1L << 10,
            'm' => 1L << 20,
            'g' => 1L << 30,
            't' => 1L << 40,
            'p' => 1L << 50,
            _ => 0,
        };
        var suffix = unit.Length > 1 ? unit[1..] : "";
        if (factor == 0 || suffix is not ("" or "i" or "b" or "ib") || (factor == 1 && suffix.Length > 0)
            || !decimal.TryParse(s[..end], NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var amount))
        {
            error = $"'{s}' is not a memory size; write a number with a unit such as 512m, 64MiB or 1g (Docker's units, all binary)";
            return false;
        }

        value = new ByteSize((long)decimal.Ceiling(amount * factor));
        return true;
    }
}
