#!/usr/bin/perl
# What a pod adds to a process replica's start (issue #13 benchmark "the namespace should add under 5 ms p50"), without
# the rest of a start around it: the time from fork to the child's exit, for a child that does nothing vs a child that does
# exactly the process supervisor's pod set-up (berth-supervisor.pl --pod: unshare network + mount namespaces, make /
# private, bind a hosts file over /etc/hosts, bring lo up, write ip_unprivileged_port_start), interleaved one each so both
# see the same machine. The whole-start numbers (Berth.Bench.Runtime) carry the noise of a .NET driver, a Perl start and a
# loaded machine around these few syscalls; this measures the syscalls. Root; no traffic; bounded by COUNT (default 200).
# usage: perl bench/pods/netns-cost.pl [COUNT]
use strict;
use warnings;
use Time::HiRes qw(time);
use POSIX qw(_exit);
use File::Temp qw(tempfile);

my $count = $ARGV[0] // 200;
$count = 10_000 if $count > 10_000;
die "run as root (unshare of a network namespace)\n" if $> != 0;
my ($hfh, $hostsfile) = tempfile('berth-netns-cost-XXXXXX', TMPDIR => 1, UNLINK => 1);
print $hfh "127.0.0.1 localhost\n127.77.0.1 api\n127.77.0.2 web\n";
close($hfh);

my ($SYS_unshare, $SYS_mount) = (272, 165); # x86_64
chomp(my $arch = `uname -m`);
($SYS_unshare, $SYS_mount) = (97, 40) if $arch eq 'aarch64';

sub pod_setup {
    my ($NEWNS, $NEWNET) = (0x00020000, 0x40000000);
    syscall($SYS_unshare, $NEWNET | $NEWNS) == 0 or _exit(1);
    my ($MS_BIND, $MS_REC, $MS_PRIVATE) = (4096, 16384, 262144);
    my ($none, $root, $hosts, $source) = ('none', '/', '/etc/hosts', "$hostsfile");
    syscall($SYS_mount, $none, $root, 0, $MS_REC | $MS_PRIVATE, 0) == 0 or _exit(2);
    syscall($SYS_mount, $source, $hosts, 0, $MS_BIND, 0) == 0 or _exit(3);
    socket(my $s, 2, 2, 0) or _exit(4);
    my $ifr = pack('a16 x24', 'lo');
    ioctl($s, 0x8913, $ifr) or _exit(5);
    my $up = unpack('x16 s', $ifr) | 1;
    $ifr = pack('a16 s x22', 'lo', $up);
    ioctl($s, 0x8914, $ifr) or _exit(6);
    close($s);
    if (open(my $fh, '>', '/proc/sys/net/ipv4/ip_unprivileged_port_start')) { print $fh "0\n"; close($fh); }
}

sub once {
    my ($pod) = @_;
    my $t0 = time;
    my $pid = fork() // die "fork: $!\n";
    if ($pid == 0) {
        pod_setup() if $pod;
        _exit(0);
    }
    waitpid($pid, 0);
    die "pod set-up failed in the child (step " . ($? >> 8) . ")\n" if $? != 0;
    return (time - $t0) * 1000;
}

my (@host, @pod);
for (1 .. $count) {
    push @host, once(0);
    push @pod, once(1);
}

sub stats {
    my @s = sort { $a <=> $b } @_;
    my $mean = 0; $mean += $_ for @s; $mean /= @s;
    return ($s[int(@s * 0.5)], $s[int(@s * 0.99)], $mean);
}
open(my $la, '<', '/proc/loadavg'); my $load = <$la>; close($la); chomp $load;
printf "%d interleaved forks each; load average %s\n", $count, $load;
print "| child | n | p50 ms | p99 ms | mean ms |\n| --- | ---: | ---: | ---: | ---: |\n";
my @h = stats(@host); my @p = stats(@pod);
printf "| fork, exit (host network) | %d | %.2f | %.2f | %.2f |\n", $count, @h;
printf "| fork, pod set-up, exit | %d | %.2f | %.2f | %.2f |\n", $count, @p;
printf "pod set-up adds %.2f ms p50 (%.2f ms mean)\n", $p[0] - $h[0], $p[2] - $h[2];
