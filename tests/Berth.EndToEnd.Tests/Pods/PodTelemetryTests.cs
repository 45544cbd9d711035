namespace Berth.EndToEnd.Tests.Pods;

/// <summary>
/// A replica in a pod exports its own telemetry to the control plane's OTLP receiver, as one on the host does: in a pod
/// 127.0.0.1 is the pod's own loopback, so the replica is told the host-gateway address instead, where the data plane
/// forwards to the receiver on the host. Before, every export from a pod was refused and only the mesh's spans reached
/// the dashboard.
/// </summary>
public sealed class PodTelemetryTests : AppFolderTest
{
    /// <summary>On GET /env: its OTEL_EXPORTER_OTLP_ENDPOINT. On GET /export: connects to that endpoint (the receiver's
    /// OTLP/gRPC listener, HTTP/2 only) and opens an HTTP/2 connection as a gRPC exporter does (the client preface and an
    /// empty SETTINGS frame), answering "settings" when the server's first frame is its SETTINGS, else what came, or why it
    /// could not connect.</summary>
    private const string Exporter = """
        use IO::Socket::INET; $| = 1;
        sub export { my ($host, $port) = $ENV{OTEL_EXPORTER_OTLP_ENDPOINT} =~ m{^http://([^:/]+):(\d+)} or return "no endpoint";
          my $c = IO::Socket::INET->new(PeerAddr => $host, PeerPort => $port, Timeout => 10) or return "refused: $!";
          print $c "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" . pack("CnCCN", 0, 0, 4, 0, 0);
          my $n = read($c, my $frame, 9); close $c;
          return ($n // 0) == 9 ? (unpack("x3C", $frame) == 4 ? "settings" : "frame type " . unpack("x3C", $frame)) : "closed"; }
        my $s = IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => $ENV{PORT}, Listen => 16, ReuseAddr => 1) or die "listen $ENV{PORT}: $!";
        while (my $c = $s->accept) {
          my $first = <$c> // ""; while (my $l = <$c>) { last if $l =~ /^\r?\n$/ }
          my $b = $first =~ m{^GET /env} ? $ENV{OTEL_EXPORTER_OTLP_ENDPOINT} : export();
          print $c "HTTP/1.1 200 OK\r\nContent-Length: " . length($b) . "\r\nConnection: close\r\n\r\n$b"; close $c;
        }
        """;

    private readonly int _port = Ports.Free();

    public PodTelemetryTests()
        : base("berth-pod-otlp-") => App.WriteSpec($$"""
        name: otlp{{Guid.NewGuid().ToString("N")[..6]}}
        services:
          app:
            run: [perl, -e, {{PodScripts.Yaml(Exporter)}}]
            network: isolated
            endpoints:
              http: {port: {{_port}}, target_port: 8080}
        """);

    [Fact]
    public async Task Up_ReplicaInAPod_ItsOtlpEndpointIsTheHostGatewayWhereTheReceiverAnswers()
    {
        await App.Cli.UpDetachedAsync(ready: 1);
        using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };

        var endpoint = await client.GetStringAsync($"http://127.0.0.1:{_port}/env");
        Assert.Matches(@"^http://127\.78\.0\.1:\d+$", endpoint);

        // Through the pod's listener at that address, the data plane forwards to the receiver on the host, whose HTTP/2 server
        // answers the exporter's preface with its SETTINGS (before: "refused", nothing listened on the pod's own loopback).
        var statuses = new List<string>();
        try
        {
            await Poll.UntilAsync(async () =>
            {
                statuses.Add(await client.GetStringAsync($"http://127.0.0.1:{_port}/export"));
                return statuses[^1] == "settings";
            }, TimeSpan.FromSeconds(30), "the receiver's HTTP/2 server answering from inside the pod");
        }
        catch (TimeoutException e)
        {
            Assert.Fail($"{e.Message}; the exports got: {string.Join(" | ", statuses.Distinct())}");
        }
    }
}
