namespace Berth.EndToEnd.Tests.Pods;

/// <summary>The two tiers of the pod tests as small Perl servers (perl is what the process supervisor needs anyway).</summary>
internal static class PodScripts
{
    /// <summary>api: answers every request with "api $BERTH_REPLICA" on 127.0.0.1:$PORT (Connection: close).</summary>
    public const string Api = """
        use IO::Socket::INET; $| = 1;
        my $s = IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => $ENV{PORT}, Listen => 128, ReuseAddr => 1) or die "listen $ENV{PORT}: $!";
        my $b = "api $ENV{BERTH_REPLICA}";
        while (my $c = $s->accept) {
          while (my $l = <$c>) { last if $l =~ /^\r?\n$/ }
          print $c "HTTP/1.1 200 OK\r\nContent-Length: " . length($b) . "\r\nConnection: close\r\n\r\n$b"; close $c;
        }
        """;

    /// <summary>web: on 127.0.0.1:$PORT, GET / fetches http://api:8080/ by name (through /etc/hosts and the mesh) and answers
    /// "web $BERTH_REPLICA got: BODY"; GET /direct/PORT tries 127.0.0.1:PORT in its own pod and says what happened.</summary>
    public const string Web = """
        use IO::Socket::INET; $| = 1;
        sub fetch { my ($host, $port) = @_; my $c = IO::Socket::INET->new(PeerAddr => $host, PeerPort => $port, Timeout => 10) or return "refused: $!";
          print $c "GET / HTTP/1.1\r\nHost: $host\r\nConnection: close\r\n\r\n"; local $/; my $r = <$c> // ""; close $c;
          my ($st) = $r =~ m{^HTTP/1\.1 (\d+)}; my ($body) = $r =~ /\r\n\r\n(.*)\z/s; return ($st // 0) == 200 ? $body : "status " . ($st // "none"); }
        my $s = IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => $ENV{PORT}, Listen => 128, ReuseAddr => 1) or die "listen $ENV{PORT}: $!";
        while (my $c = $s->accept) {
          my $first = <$c> // ""; while (my $l = <$c>) { last if $l =~ /^\r?\n$/ }
          my $b = $first =~ m{^GET /direct/(\d+)} ? fetch("127.0.0.1", $1) : $first =~ m{^GET /name} ? join(" ", gethostbyname("api") ? "api=" . join(".", unpack("C4", (gethostbyname("api"))[4])) : "api=unresolved") : "web $ENV{BERTH_REPLICA} got: " . fetch("api", 8080);
          print $c "HTTP/1.1 200 OK\r\nContent-Length: " . length($b) . "\r\nConnection: close\r\n\r\n$b"; close $c;
        }
        """;

    /// <summary>A script as one line for a berth.yaml/Compose flow sequence in double quotes, '$' doubled against interpolation.</summary>
    public static string Yaml(string script) => "\"" + script
        .Replace("\\", "\\\\", StringComparison.Ordinal)
        .Replace("\"", "\\\"", StringComparison.Ordinal)
        .Replace("\n", " ", StringComparison.Ordinal)
        .Replace("$", "$$", StringComparison.Ordinal) + "\"";
}
