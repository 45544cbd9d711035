using System.Globalization;
using System.Numerics;
using System.Text.Json.Nodes;

namespace Berth.Testing.Kubernetes;

/// <summary>How the stand-in API server normalizes an applied object before it stores it: the rules of a real kube-apiserver for the
/// fields that made Berth's repeated applies write (issue #19, seen on v1.24). Only these are modelled; a real server defaults many
/// more fields (dnsPolicy, restartPolicy, …) that Berth leaves out and that do not make an apply write:
/// <list type="bullet">
/// <item>A zero int32 that the Go type marks <c>omitempty</c> is dropped when the typed object is stored: <c>minReadySeconds</c>
/// (Deployment, StatefulSet) and a probe's <c>initialDelaySeconds</c>.</item>
/// <item>A PersistentVolumeClaim (and a StatefulSet's claim template) without <c>volumeMode</c> is defaulted to <c>Filesystem</c>.</item>
/// <item>A quantity (resources requests/limits, a claim's storage, an HPA target value) is stored as a string in canonical form:
/// <c>1000m</c> → <c>1</c>, <c>0.5</c> → <c>500m</c>, <c>1024Mi</c> → <c>1Gi</c>, <c>2000</c> → <c>2k</c>, a bare number → a string.</item>
/// </list></summary>
public static class ServerNormalization
{
    public static JsonObject Normalize(JsonObject applied)
    {
        var obj = (JsonObject)applied.DeepClone();
        var kind = obj["kind"]?.GetValue<string>();
        var spec = obj["spec"] as JsonObject;
        switch (kind)
        {
            case "Deployment" or "StatefulSet":
                DropZero(spec, "minReadySeconds");
                foreach (var template in (spec?["volumeClaimTemplates"] as JsonArray ?? []).OfType<JsonObject>())
                {
                    DefaultVolumeMode(template["spec"] as JsonObject);
                }

                break;
            case "PersistentVolumeClaim":
                DefaultVolumeMode(spec);
                break;
        }

        foreach (var probe in Probes(obj))
        {
            DropZero(probe, "initialDelaySeconds");
        }

        CanonicalQuantities(obj, parentKey: null);
        return obj;
    }

    private static void DropZero(JsonObject? parent, string key)
    {
        if (parent?[key] is JsonValue v && v.TryGetValue<long>(out var n) && n == 0)
        {
            parent.Remove(key);
        }
    }

    private static void DefaultVolumeMode(JsonObject? claimSpec)
    {
        if (claimSpec is not null && claimSpec["volumeMode"] is null)
        {
            claimSpec["volumeMode"] = "Filesystem";
        }
    }

    private static IEnumerable<JsonObject> Probes(JsonNode? node)
    {
        switch (node)
        {
            case JsonObject o:
                foreach (var (key, value) in o)
                {
                    if (key is "livenessProbe" or "readinessProbe" or "startupProbe" && value is JsonObject probe)
                    {
                        yield return probe;
                    }

                    foreach (var inner in Probes(value))
                    {
                        yield return inner;
                    }
                }

                break;
            case JsonArray a:
                foreach (var item in a)
                {
                    foreach (var inner in Probes(item))
                    {
                        yield return inner;
                    }
                }

                break;
        }
    }

    // Quantities live in resources.requests/limits maps (containers, claims) and in an HPA metric target's value/averageValue.
    private static void CanonicalQuantities(JsonNode? node, string? parentKey)
    {
        switch (node)
        {
            case JsonObject o:
                foreach (var key in o.Select(kv => kv.Key).ToList())
                {
                    var value = o[key];
                    var isQuantity = parentKey is "requests" or "limits" || (parentKey == "target" && key is "value" or "averageValue");
                    if (isQuantity && value is JsonValue scalar)
                    {
                        o[key] = Canonical(scalar.ToString());
                    }
                    else
                    {
                        CanonicalQuantities(value, key);
                    }
                }

                break;
            case JsonArray a:
                foreach (var item in a)
                {
                    CanonicalQuantities(item, parentKey);
                }

                break;
        }
    }

    private static readonly (string Suffix, int Power)[] Binary = [("Ei", 60), ("Pi", 50), ("Ti", 40), ("Gi", 30), ("Mi", 20), ("Ki", 10)];
    private static readonly (string Suffix, int Exponent)[] Decimal = [("E", 18), ("P", 15), ("T", 12), ("G", 9), ("M", 6), ("k", 3), ("", 0), ("m", -3), ("u", -6), ("n", -9)];

    /// <summary>A quantity's canonical text, as resource.Quantity marshals it: the largest suffix of its format that keeps the number whole.</summary>
    public static string Canonical(string text)
    {
        var i = 0;
        while (i < text.Length && (char.IsAsciiDigit(text[i]) || text[i] is '.' or '+' or '-'))
        {
            i++;
        }

        var number = decimal.Parse(text[..i], NumberStyles.Float, CultureInfo.InvariantCulture);
        var suffix = text[i..];
        var binary = Binary.FirstOrDefault(b => b.Suffix == suffix);
        if (binary.Suffix is not null)
        {
            var bytes = number * (decimal)BigInteger.Pow(2, binary.Power);
            if (bytes == decimal.Truncate(bytes))
            {
                foreach (var (s, power) in Binary)
                {
                    var unit = (decimal)BigInteger.Pow(2, power);
                    if (bytes % unit == 0)
                    {
                        return $"{(bytes / unit).ToString(CultureInfo.InvariantCulture)}{s}";
                    }
                }

                return bytes.ToString(CultureInfo.InvariantCulture);
            }

            number = bytes;
            suffix = "";
        }

        var exponent = suffix.StartsWith('e') || suffix.StartsWith('E') && suffix.Length > 1
            ? int.Parse(suffix[1..], CultureInfo.InvariantCulture)
            : Decimal.First(d => d.Suffix == suffix).Exponent;
        var value = number * Pow10(exponent);
        if (value == 0)
        {
            return "0";
        }

        foreach (var (s, e) in Decimal)
        {
            var scaled = value / Pow10(e);
            if (scaled == decimal.Truncate(scaled))
            {
                return $"{scaled.ToString("0", CultureInfo.InvariantCulture)}{s}";
            }
        }

        return text;
    }

    private static decimal Pow10(int exponent) => exponent >= 0 ? (decimal)BigInteger.Pow(10, exponent) : 1m / (decimal)BigInteger.Pow(10, -exponent);
}
