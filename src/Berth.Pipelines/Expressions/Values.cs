using System.Collections.Immutable;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Berth.Pipelines.Expressions;

/// <summary>
/// The values of expressions — null, bool, double, string, arrays (<see cref="IReadOnlyList{T}"/> of values) and
/// objects (<see cref="IReadOnlyDictionary{TKey,TValue}"/> of values, or of strings) — with GitHub Actions' rules for
/// converting and comparing them.
/// </summary>
public static class Values
{
    /// <summary>An object whose keys are found ignoring case, as GitHub looks up properties.</summary>
    public static ImmutableDictionary<string, object?> Object(IEnumerable<KeyValuePair<string, object?>> entries) =>
        ImmutableDictionary.CreateRange(StringComparer.OrdinalIgnoreCase, entries);

    public static readonly ImmutableDictionary<string, object?> EmptyObject = ImmutableDictionary.Create<string, object?>(StringComparer.OrdinalIgnoreCase);

    /// <summary>Falsy: false, 0, -0, NaN, '', null. Everything else (arrays and objects too) is truthy.</summary>
    public static bool IsTruthy(object? value) => value switch
    {
        null => false,
        bool b => b,
        double d => d != 0 && !double.IsNaN(d),
        string s => s.Length > 0,
        _ => true,
    };

    public static bool IsPrimitive(object? value) => value is null or bool or double or string;

    /// <summary>To a string as GitHub casts: null → '', booleans → 'true'/'false', numbers in decimal; arrays and objects as JSON.</summary>
    public static string ToText(object? value) => value switch
    {
        null => "",
        bool b => b ? "true" : "false",
        double d => FormatNumber(d),
        string s => s,
        _ => ToJson(value),
    };

    public static string FormatNumber(double d)
    {
        if (double.IsNaN(d))
        {
            return "NaN";
        }

        if (double.IsInfinity(d))
        {
            return d > 0 ? "Infinity" : "-Infinity";
        }

        if (d == Math.Floor(d) && Math.Abs(d) < 1e15)
        {
            return d.ToString("0", CultureInfo.InvariantCulture);
        }

        return d.ToString("G15", CultureInfo.InvariantCulture);
    }

    /// <summary>To a number as GitHub coerces: null → 0, false → 0, true → 1, a string by its JSON-like number (trimmed, '' → 0, else NaN); arrays and objects → NaN.</summary>
    public static double ToNumber(object? value) => value switch
    {
        null => 0,
        bool b => b ? 1 : 0,
        double d => d,
        string s => ParseNumber(s),
        _ => double.NaN,
    };

    private static double ParseNumber(string text)
    {
        var trimmed = text.Trim();
        if (trimmed.Length == 0)
        {
            return 0;
        }

        return TryParseNumberLiteral(trimmed, out var number) ? number : double.NaN;
    }

    /// <summary>
    /// A number as written in an expression or a string: decimal with sign, fraction and exponent (<c>-2.99e-2</c>,
    /// <c>.5</c>, <c>+1</c>), hex <c>0xff</c>, octal <c>0o17</c>, <c>Infinity</c>, <c>-Infinity</c>, <c>NaN</c>.
    /// </summary>
    public static bool TryParseNumberLiteral(string text, out double number)
    {
        number = double.NaN;
        if (text.Length == 0)
        {
            return false;
        }

        var span = text.AsSpan();
        var negative = false;
        if (span[0] is '+' or '-')
        {
            negative = span[0] == '-';
            span = span[1..];
        }

        double magnitude;
        if (span.SequenceEqual("Infinity"))
        {
            magnitude = double.PositiveInfinity;
        }
        else if (span.SequenceEqual("NaN") && text.Length == 3)
        {
            return true;
        }
        else if (span.Length > 2 && span[0] == '0' && span[1] is 'x' or 'X')
        {
            if (!long.TryParse(span[2..], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var hex))
            {
                return false;
            }

            magnitude = hex;
        }
        else if (span.Length > 2 && span[0] == '0' && span[1] is 'o' or 'O')
        {
            long octal = 0;
            foreach (var c in span[2..])
            {
                if (c is < '0' or > '7')
                {
                    return false;
                }

                octal = checked((octal * 8) + (c - '0'));
            }

            magnitude = octal;
        }
        else
        {
            // Digits, at most one '.', an optional exponent; no thousands separators, no hex floats, no inner spaces.
            foreach (var c in span)
            {
                if (!(char.IsAsciiDigit(c) || c is '.' or 'e' or 'E' or '+' or '-'))
                {
                    return false;
                }
            }

            if (!double.TryParse(span, NumberStyles.AllowDecimalPoint | NumberStyles.AllowExponent, CultureInfo.InvariantCulture, out magnitude))
            {
                return false;
            }
        }

        number = negative ? -magnitude : magnitude;
        return true;
    }

    /// <summary>
    /// <c>==</c>: values of one kind compare directly (strings ignoring case, NaN never equal, arrays and objects only
    /// when they are the same instance); values of different kinds are both coerced to numbers.
    /// </summary>
    public static bool LooseEquals(object? left, object? right)
    {
        switch (left, right)
        {
            case (null, null):
                return true;
            case (string l, string r):
                return string.Equals(l, r, StringComparison.OrdinalIgnoreCase);
            case (bool l, bool r):
                return l == r;
            case (double l, double r):
                return l == r;
        }

        if (!IsPrimitive(left) || !IsPrimitive(right))
        {
            return ReferenceEquals(left, right);
        }

        var a = ToNumber(left);
        var b = ToNumber(right);
        return a == b;
    }

    /// <summary><c>&lt; &lt;= &gt; &gt;=</c>: strings order ignoring case; anything else is compared as numbers (so NaN is never ordered).</summary>
    public static bool Compare(string op, object? left, object? right)
    {
        if (left is string ls && right is string rs)
        {
            var order = string.Compare(ls, rs, StringComparison.OrdinalIgnoreCase);
            return op switch
            {
                "<" => order < 0,
                "<=" => order <= 0,
                ">" => order > 0,
                ">=" => order >= 0,
                _ => throw new InvalidOperationException($"unknown operator {op}"),
            };
        }

        if (!IsPrimitive(left) || !IsPrimitive(right))
        {
            return false;
        }

        var l = ToNumber(left);
        var r = ToNumber(right);
        return op switch
        {
            "<" => l < r,
            "<=" => l <= r,
            ">" => l > r,
            ">=" => l >= r,
            _ => throw new InvalidOperationException($"unknown operator {op}"),
        };
    }

    /// <summary>A property of an object ignoring case (exact match first); null when missing or not an object.</summary>
    public static object? Member(object? target, string name)
    {
        switch (target)
        {
            case IReadOnlyDictionary<string, object?> map:
                if (map.TryGetValue(name, out var value))
                {
                    return value;
                }

                foreach (var (key, v) in map)
                {
                    if (string.Equals(key, name, StringComparison.OrdinalIgnoreCase))
                    {
                        return v;
                    }
                }

                return null;
            case IReadOnlyDictionary<string, string> strings:
                if (strings.TryGetValue(name, out var text))
                {
                    return text;
                }

                foreach (var (key, v) in strings)
                {
                    if (string.Equals(key, name, StringComparison.OrdinalIgnoreCase))
                    {
                        return v;
                    }
                }

                return null;
            default:
                return null;
        }
    }

    /// <summary><c>x[i]</c>: an array element by number (truncated; out of range → null), an object property by string.</summary>
    public static object? Index(object? target, object? index)
    {
        if (target is IReadOnlyList<object?> list)
        {
            var n = ToNumber(index);
            if (double.IsNaN(n) || n < 0 || n >= list.Count)
            {
                return null;
            }

            return list[(int)Math.Floor(n)];
        }

        return IsPrimitive(index) && index is not null ? Member(target, ToText(index)) : null;
    }

    /// <summary><c>x.*</c>: the values of an object, or the elements of an array, as an array; of anything else, an empty array.</summary>
    public static IReadOnlyList<object?> Filter(object? target) => target switch
    {
        IReadOnlyList<object?> list => list,
        IReadOnlyDictionary<string, object?> map => [.. map.Values],
        IReadOnlyDictionary<string, string> strings => [.. strings.Values],
        _ => [],
    };

    /// <summary>A member applied to every element of a filtered array (<c>a.*.name</c>): the elements that have it.</summary>
    public static IReadOnlyList<object?> MemberOfEach(IReadOnlyList<object?> items, Func<object?, object?> select)
    {
        var result = new List<object?>(items.Count);
        foreach (var item in items)
        {
            if (item is IReadOnlyDictionary<string, object?> or IReadOnlyDictionary<string, string> or IReadOnlyList<object?>)
            {
                var value = select(item);
                if (value is not null)
                {
                    result.Add(value);
                }
            }
        }

        return result;
    }

    /// <summary><c>toJSON()</c>: pretty-printed JSON, as GitHub prints it (two-space indent).</summary>
    public static string ToJson(object? value)
    {
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            Write(writer, value);
        }

        return Encoding.UTF8.GetString(stream.ToArray());
    }

    private static void Write(Utf8JsonWriter writer, object? value)
    {
        switch (value)
        {
            case null:
                writer.WriteNullValue();
                break;
            case bool b:
                writer.WriteBooleanValue(b);
                break;
            case double d when double.IsFinite(d):
                if (d == Math.Floor(d) && Math.Abs(d) < 1e15)
                {
                    writer.WriteNumberValue((long)d);
                }
                else
                {
                    writer.WriteNumberValue(d);
                }

                break;
            case double d:
                writer.WriteStringValue(FormatNumber(d));
                break;
            case string s:
                writer.WriteStringValue(s);
                break;
            case IReadOnlyList<object?> list:
                writer.WriteStartArray();
                foreach (var item in list)
                {
                    Write(writer, item);
                }

                writer.WriteEndArray();
                break;
            case IReadOnlyDictionary<string, object?> map:
                writer.WriteStartObject();
                foreach (var (key, v) in map is OrderedObject ? (IEnumerable<KeyValuePair<string, object?>>)map : map.OrderBy(e => e.Key, StringComparer.Ordinal))
                {
                    writer.WritePropertyName(key);
                    Write(writer, v);
                }

                writer.WriteEndObject();
                break;
            case IReadOnlyDictionary<string, string> strings:
                writer.WriteStartObject();
                foreach (var (key, v) in strings.OrderBy(e => e.Key, StringComparer.Ordinal))
                {
                    writer.WriteString(key, v);
                }

                writer.WriteEndObject();
                break;
            default:
                writer.WriteStringValue(value.ToString());
                break;
        }
    }

    /// <summary><c>fromJSON()</c>: JSON text to values (objects look up keys ignoring case).</summary>
    public static object? FromJson(string json)
    {
        using var document = JsonDocument.Parse(json, new JsonDocumentOptions { MaxDepth = 64 });
        return FromElement(document.RootElement);
    }

    private static object? FromElement(JsonElement element) => element.ValueKind switch
    {
        JsonValueKind.Null or JsonValueKind.Undefined => null,
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        JsonValueKind.Number => element.GetDouble(),
        JsonValueKind.String => element.GetString(),
        JsonValueKind.Array => element.EnumerateArray().Select(FromElement).ToImmutableArray(),
        JsonValueKind.Object => new OrderedObject(element.EnumerateObject().Select(p => KeyValuePair.Create(p.Name, FromElement(p.Value)))),
        _ => null,
    };

    /// <summary>An object that keeps its keys in the order written (as JSON objects read by fromJSON) and finds them ignoring case.</summary>
    public sealed class OrderedObject : IReadOnlyDictionary<string, object?>
    {
        private readonly Dictionary<string, object?> _values = new(StringComparer.OrdinalIgnoreCase);
        private readonly List<string> _order = [];

        public OrderedObject(IEnumerable<KeyValuePair<string, object?>> entries)
        {
            foreach (var (key, value) in entries)
            {
                if (!_values.ContainsKey(key))
                {
                    _order.Add(key);
                }

                _values[key] = value; // a repeated key: the last value wins, as JSON.parse
            }
        }

        public object? this[string key] => _values[key];

        public IEnumerable<string> Keys => _order;

        public IEnumerable<object?> Values => _order.Select(k => _values[k]);

        public int Count => _order.Count;

        public bool ContainsKey(string key) => _values.ContainsKey(key);

        public bool TryGetValue(string key, out object? value) => _values.TryGetValue(key, out value);

        public IEnumerator<KeyValuePair<string, object?>> GetEnumerator() => _order.Select(k => KeyValuePair.Create(k, _values[k])).GetEnumerator();

        System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
    }
}
