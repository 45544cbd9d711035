namespace Berth.Testing;

/// <summary>The one test HTTP server: a Perl one-liner (perl is what the process supervisor needs anyway) that replicas run
/// as their command. It listens on 127.0.0.1:$PORT and answers every request with <c>Connection: close</c>:
/// <list type="bullet">
/// <item>200 with the body "ok", or "ok $V" when V is set;</item>
/// <item>500 while the file named by $SICK exists (so a readiness probe fails);</item>
/// <item>waits $DELAY seconds before listening (a slow start);</item>
/// <item>spins the CPU for $BURN_MS milliseconds per request other than <c>GET /healthz</c> (a CPU-bound service).</item>
/// </list>
/// It prints "listening on $PORT" once it listens.</summary>
public static class TestHttpServer
{
    public const string Script = """
        use IO::Socket::INET; use Time::HiRes qw(time); $| = 1; sleep($ENV{DELAY} // 0);
        my $s = IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => $ENV{PORT}, Listen => 128, ReuseAddr => 1) or die "listen $ENV{PORT}: $!";
        print "listening on $ENV{PORT}\n";
        my $b = defined $ENV{V} ? "ok $ENV{V}" : "ok";
        while (my $c = $s->accept) {
          my $first = <$c> // ""; while (my $l = <$c>) { last if $l =~ /^\r?\n$/ }
          if ($ENV{BURN_MS} && $first !~ m{^GET /healthz}) { my $until = time + $ENV{BURN_MS} / 1000; my $n = 0; $n++ while time < $until; }
          my $st = ($ENV{SICK} && -e $ENV{SICK}) ? "500 Sick" : "200 OK";
          print $c "HTTP/1.1 $st\r\nContent-Length: " . length($b) . "\r\nConnection: close\r\n\r\n$b"; close $c;
        }
        """;

    /// <summary>The command a replica runs: <c>perl -e Script</c>.</summary>
    public static System.Collections.Immutable.ImmutableArray<string> Command { get; } = ["perl", "-e", Script];

    /// <summary>The command as a berth.yaml flow sequence, e.g. <c>run: {Yaml}</c>: the script on one line in a double-quoted
    /// string, with '$' doubled against Compose-style interpolation, as a user writes it.</summary>
    public static string Yaml { get; } = "[perl, -e, \"" + Script
        .Replace("\\", "\\\\", StringComparison.Ordinal)
        .Replace("\"", "\\\"", StringComparison.Ordinal)
        .Replace("\n", " ", StringComparison.Ordinal)
        .Replace("$", "$$", StringComparison.Ordinal) + "\"]";

    /// <summary>A berth.yaml app <paramref name="name"/> of one service <c>web</c> that runs this server, as
    /// <see cref="Service"/> writes it (by default with 2 replicas).</summary>
    public static string App(string name, int replicas = 2, int? port = null, string? environment = null, string? extra = null) =>
        $"name: {name}\nservices:\n" + Service("web", replicas, port, environment, extra);

    /// <summary>One entry of an app's <c>services:</c> map, <paramref name="service"/>, that runs this server:
    /// <paramref name="replicas"/> replicas, an http endpoint (on the stable <paramref name="port"/>, or one Berth picks),
    /// readiness on <c>GET /</c> every 500 ms, 2 s to stop; <paramref name="environment"/> is the body of its
    /// <c>environment:</c> map, <paramref name="extra"/> more keys of the service (one a line, unindented).</summary>
    public static string Service(string service, int replicas = 1, int? port = null, string? environment = null, string? extra = null)
    {
        var lines = new List<string>
        {
            $"  {service}:",
            $"    run: {Yaml}",
            $"    replicas: {replicas.ToString(System.Globalization.CultureInfo.InvariantCulture)}",
        };
        if (environment is not null)
        {
            lines.Add($"    environment: {{ {environment} }}");
        }

        lines.Add("    endpoints:");
        lines.Add(port is { } p ? $"      http: {{port: {p.ToString(System.Globalization.CultureInfo.InvariantCulture)}}}" : "      http: {}");
        lines.Add("    probes:");
        lines.Add("      readiness: {http: /, period: 500ms}");
        lines.Add("    stop_grace_period: 2s");
        if (extra is not null)
        {
            lines.AddRange(extra.Split('\n').Select(l => "    " + l.TrimEnd()));
        }

        return string.Join('\n', lines) + "\n";
    }
}
