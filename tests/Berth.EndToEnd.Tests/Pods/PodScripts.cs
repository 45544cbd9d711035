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

    /// <summary>The two-tier spec, every service <c>network: isolated</c>: api (2 replicas on port 8080 of their pods), web and
    /// web2 (port 80 of theirs, published on the stable <paramref name="web"/> and <paramref name="web2"/>). With
    /// <paramref name="retryResets"/>, api's mesh retries a reset too (a request in flight on a replica killed with SIGKILL
    /// sees one; retrying a GET then is safe, and a reset is retried only when asked, as in Envoy).</summary>
    public static string TwoTierSpec(string name, int web, int web2, bool retryResets = false, int? api = null) => $$"""
        name: {{name}}
        services:
          api:
            run: [perl, -e, {{Yaml(Api)}}]
            network: isolated
            replicas: 2
            endpoints:
              http: {{{(api is { } port ? $"port: {port}, " : "")}}target_port: 8080}
        {{(retryResets ? "    mesh:\n      retries: {on: [connect-failure, reset, 502, 503, 504]}\n" : "")}}  web:
            run: [perl, -e, {{Yaml(Web)}}]
            network: isolated
            endpoints:
              http: {port: {{web}}, target_port: 80}
          web2:
            run: [perl, -e, {{Yaml(Web)}}]
            network: isolated
            endpoints:
              http: {port: {{web2}}, target_port: 80}
        """;

    /// <summary>Polls GET / on the stable port <paramref name="web"/> until it has answered from two api replicas (each body
    /// "web web-… got: api api-…") and returns the two api replica ids, in order.</summary>
    public static async Task<List<string>> ApisReachedByNameAsync(HttpClient client, int web, TimeSpan wait, string what)
    {
        var seen = new HashSet<string>();
        await Poll.UntilAsync(async () =>
        {
            var body = await client.GetStringAsync($"http://127.0.0.1:{web}/");
            Assert.Matches("^web web-[0-9a-f]{5} got: api api-[0-9a-f]{5}$", body);
            seen.Add(body[(body.LastIndexOf(' ') + 1)..]);
            return seen.Count == 2;
        }, wait, what);
        return [.. seen.Order()];
    }
}

