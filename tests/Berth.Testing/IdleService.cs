namespace Berth.Testing;

/// <summary>A replica that only runs: perl sleeping for 10 minutes (after printing a line, if asked), stopped with a 1 s
/// grace. For the tests of what Berth does around a replica — its limits, logs, cgroups and leftovers — not of what it
/// serves (that is <see cref="TestHttpServer"/>).</summary>
public static class IdleService
{
    /// <summary>One entry of an app's <c>services:</c> map, <paramref name="service"/>: <paramref name="replicas"/> idle
    /// replicas that first print <paramref name="says"/> as a line (perl interpolates it, e.g. <c>$ENV{BERTH_REPLICA}</c>),
    /// or nothing; <paramref name="limits"/> is its <c>resources.limits</c> map, e.g. <c>{memory: 64Mi}</c>.</summary>
    public static string Entry(string service, int replicas = 1, string? limits = null, string? says = null)
    {
        // '$' doubled against Compose-style interpolation, as a user writes it in berth.yaml; "\\n" is perl's newline.
        var script = says is null ? "sleep 600" : $"$$|=1; print qq({says.Replace("$", "$$", StringComparison.Ordinal)}\\\\n); sleep 600";
        var lines = new List<string> { $"  {service}:", $"    run: [perl, -e, \"{script}\"]" };
        if (replicas != 1)
        {
            lines.Add($"    replicas: {replicas.ToString(System.Globalization.CultureInfo.InvariantCulture)}");
        }

        if (limits is not null)
        {
            lines.Add("    resources:");
            lines.Add($"      limits: {limits}");
        }

        lines.Add("    stop_grace_period: 1s");
        return string.Join('\n', lines) + "\n";
    }
}
