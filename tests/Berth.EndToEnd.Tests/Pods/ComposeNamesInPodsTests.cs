namespace Berth.EndToEnd.Tests.Pods;

/// <summary>
/// The names a Compose file gives a service — network <c>aliases</c>, <c>hostname</c>, <c>container_name</c> and another
/// service's <c>links</c> alias — each reach that service from inside a caller's pod, through the caller's hosts file,
/// the service's virtual address and the mesh, and the callee answers: as process services with <c>network: isolated</c>,
/// and on the Docker driver with a busybox image made offline. A name given to nobody does not resolve.
/// </summary>
public sealed class ComposeNamesInPodsTests() : AppFolderTest("berth-pod-names-")
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(120);

    /// <summary>Every name of api the Compose file below gives it, the service name first.</summary>
    private static readonly string[] Names = ["api", "api-alias", "api-host", "api-box", "backend"];

    private readonly string _name = "names" + Guid.NewGuid().ToString("N")[..6];
    private readonly int _web = Ports.Free();

    /// <summary>web: GET /by/NAME fetches http://NAME:8080/ from inside web's pod and answers with what came back
    /// ("failed: REASON" when nothing did).</summary>
    private const string ByName = """
        use IO::Socket::INET; $| = 1;
        sub fetch { my ($host) = @_; my $c = IO::Socket::INET->new(PeerAddr => $host, PeerPort => 8080, Timeout => 10) or return "failed: $@";
          print $c "GET / HTTP/1.1\r\nHost: $host\r\nConnection: close\r\n\r\n"; local $/; my $r = <$c> // ""; close $c;
          my ($st) = $r =~ m{^HTTP/1\.1 (\d+)}; my ($body) = $r =~ /\r\n\r\n(.*)\z/s; return ($st // 0) == 200 ? $body : "failed: status " . ($st // "none"); }
        my $s = IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => $ENV{PORT}, Listen => 128, ReuseAddr => 1) or die "listen $ENV{PORT}: $!";
        while (my $c = $s->accept) {
          my $first = <$c> // ""; while (my $l = <$c>) { last if $l =~ /^\r?\n$/ }
          my $b = $first =~ m{^GET /by/([A-Za-z0-9.-]+)} ? fetch($1) : "web";
          print $c "HTTP/1.1 200 OK\r\nContent-Length: " . length($b) . "\r\nConnection: close\r\n\r\n$b"; close $c;
        }
        """;

    [Fact]
    public async Task ProcessPods_AliasesHostnameContainerNameAndLinks_EachReachesTheCalleeThroughTheMesh()
    {
        App.Write("compose.yaml", $$"""
            name: {{_name}}
            services:
              api:
                hostname: api-host
                container_name: api-box
                networks:
                  default:
                    aliases: [api-alias]
                x-berth:
                  run: [perl, -e, {{PodScripts.Yaml(PodScripts.Api)}}]
                  network: isolated
                  endpoints:
                    http: {target_port: 8080}
              web:
                links: ["api:backend"]
                x-berth:
                  run: [perl, -e, {{PodScripts.Yaml(ByName)}}]
                  network: isolated
                  endpoints:
                    http: {port: {{_web}}, target_port: 80}
            """);
        await App.Cli.UpDetachedAsync(ready: 2, Wait);

        await AssertEveryNameReachesApiAsync(name => $"http://127.0.0.1:{_web}/by/{name}");
    }

    [DockerFact]
    public async Task DockerPods_AliasesHostnameContainerNameAndLinks_EachReachesTheCalleeThroughTheMesh()
    {
        await TestImages.EnsureAsync();

        // web's CGI fetches http://QUERY:8080/ with busybox wget at each request, from inside web's container (NetworkMode none).
        App.Write("compose.yaml", $$"""
            name: {{_name}}
            services:
              api:
                image: {{TestImages.Base}}
                command: ["sh", "-c", "mkdir -p /www && echo \"api $$BERTH_REPLICA\" > /www/index.html && exec httpd -f -p 8080 -h /www"]
                hostname: api-host
                container_name: api-box
                networks:
                  default:
                    aliases: [api-alias]
              web:
                image: {{TestImages.Base}}
                command: ["sh", "-c", "mkdir -p /w/cgi-bin && printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\nwget -q -O - http://$$QUERY_STRING:8080/ || echo failed\\n' > /w/cgi-bin/by && chmod +x /w/cgi-bin/by && exec httpd -f -p 80 -h /w"]
                ports: ["{{_web}}:80"]
                links: ["api:backend"]
            """);
        await App.Cli.UpDetachedAsync(ready: 2, Wait);

        await AssertEveryNameReachesApiAsync(name => $"http://127.0.0.1:{_web}/cgi-bin/by?{name}");
    }

    /// <summary>Each of <see cref="Names"/> answers api's page (waiting for the outbound listeners the data plane opens in
    /// web's pod once it runs); a name nobody was given answers a failure.</summary>
    private async Task AssertEveryNameReachesApiAsync(Func<string, string> url)
    {
        var api = (await App.Cli.PsAsync()).Single(r => r.GetProperty("service").GetString() == "api").GetProperty("id").GetString()!;
        using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        foreach (var name in Names)
        {
            var body = "";
            var deadline = DateTime.UtcNow + Wait;
            while ((body = (await client.GetStringAsync(url(name))).Trim()) != $"api {api}" && DateTime.UtcNow < deadline)
            {
                await Task.Delay(200); // polling: the outbound listeners open on the route publication after web runs
            }

            Assert.True(body == $"api {api}", $"web should reach api ({api}) by the name '{name}' from inside its pod; it answered: {body}");
        }

        Assert.StartsWith("failed", (await client.GetStringAsync(url("not-a-name"))).Trim(), StringComparison.Ordinal);
    }
}
