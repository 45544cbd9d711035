using System.Globalization;
using System.Text.RegularExpressions;

namespace Berth.Server;

/// <summary>One scrape of the data plane's request counters (its Prometheus <c>/metrics</c>): the requests each service's
/// listeners answered (<c>berth_mesh_requests_total</c>) and the attempts sent to each replica
/// (<c>berth_mesh_upstream_requests_total</c>, whose <c>upstream</c> label is the replica id), summed over endpoints and codes.
/// Two scrapes make a rate, as PromQL's <c>rate()</c>; a series missing from the first counts from 0 (it is made at its first request).
/// Read by <c>GET /v1/stats</c> (requests/s per replica and service) and by the autoscaler (per service).</summary>
public sealed partial class MeshRequestCounts
{
    private readonly Dictionary<string, double> _services = new(StringComparer.Ordinal);
    private readonly Dictionary<(string Service, string Replica), double> _replicas = [];

    public static MeshRequestCounts Parse(string prometheusText)
    {
        var counts = new MeshRequestCounts();
        foreach (Match m in CounterLine().Matches(prometheusText))
        {
            var labels = Labels(m.Groups["labels"].Value);
            if (!labels.TryGetValue("service", out var service)
                || !double.TryParse(m.Groups["value"].Value, NumberStyles.Float, CultureInfo.InvariantCulture, out var value))
            {
                continue;
            }

            if (m.Groups["name"].Value == "berth_mesh_requests_total")
            {
                counts._services[service] = counts.Service(service) + value;
            }
            else if (labels.TryGetValue("upstream", out var replica))
            {
                counts._replicas[(service, replica)] = counts.Replica(service, replica) + value;
            }
        }

        return counts;
    }

    public double Service(string service) => _services.GetValueOrDefault(service);

    public double Replica(string service, string replica) => _replicas.GetValueOrDefault((service, replica));

    /// <summary>Per second from <paramref name="before"/> to this scrape; a counter that went down (a data plane replaced
    /// in between starts from 0) counts what it has now, as Prometheus treats a counter reset.</summary>
    public static double Rate(double before, double after, TimeSpan elapsed) =>
        elapsed <= TimeSpan.Zero ? 0 : Math.Round((after >= before ? after - before : after) / elapsed.TotalSeconds, 2);

    private static Dictionary<string, string> Labels(string text)
    {
        var labels = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (Match l in Label().Matches(text))
        {
            labels[l.Groups["k"].Value] = l.Groups["v"].Value.Replace("\\\"", "\"", StringComparison.Ordinal).Replace("\\\\", "\\", StringComparison.Ordinal);
        }

        return labels;
    }

    [GeneratedRegex(@"^(?<name>berth_mesh_requests_total|berth_mesh_upstream_requests_total)\{(?<labels>[^}]*)\}\s+(?<value>\S+)", RegexOptions.Multiline)]
    private static partial Regex CounterLine();

    [GeneratedRegex(@"(?<k>\w+)=""(?<v>(?:[^""\\]|\\.)*)""")]
    private static partial Regex Label();
}
