namespace Berth.Cli.Tests.Shell;

/// <summary>A Perl HTTP server on 127.0.0.1:$PORT that answers with out/body.txt as it was when it started, as a compiled
/// program serves what it was built with: what a build changes shows only after a restart.</summary>
internal static class BuiltBodyServer
{
    public const string Script = """
        use IO::Socket::INET; $| = 1; open(my $f, "<", "out/body.txt") or die "no out/body.txt: $!"; my $b = <$f>; chomp $b;
        my $s = IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => $ENV{PORT}, Listen => 128, ReuseAddr => 1) or die "listen: $!";
        while (my $c = $s->accept) { while (my $l = <$c>) { last if $l =~ /^\r?\n$/ }
          print $c "HTTP/1.1 200 OK\r\nContent-Length: " . length($b) . "\r\nConnection: close\r\n\r\n$b"; close $c; }
        """;
}
