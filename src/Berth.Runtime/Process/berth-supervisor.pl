#!/usr/bin/perl
# Berth replica supervisor: the replica's parent, like conmon or containerd-shim. It lets the replica
# outlive the control plane, stamps each stdout/stderr line into its own file, and records the pid, the
# process start time and the final exit status in the replica's state folder.
#
# Perl because perl-base is Essential on Debian/Ubuntu (and ships with macOS): ~2.5 MB private memory per
# replica and ~15 ms to start, where a .NET supervisor costs ~46 MB resident and ~200 ms. Only builtins and
# Time::HiRes are loaded (POSIX alone costs ~35 ms per start). The user's argv is exec'd directly (execvp,
# no shell); the driver asks for /bin/sh -c only when the spec says shell: true.
#
# usage: perl berth-supervisor.pl STATE_DIR [--cgroup PROCS_FILE]... [--oom FILE] [--cwd DIR] [--user USER]
#        [--pod HOSTS_FILE [--pod-user UID:GID] [--pod-egress SLIRP4NETNS]] [--log-max-size BYTES --log-max-files N]
# --pod: the replica's pod. The supervisor unshares a network namespace holding only loopback (brought up here) and a
# mount namespace in which HOSTS_FILE is bind-mounted over /etc/hosts, then runs the replica in them; the pod lives as
# long as the supervisor (/proc/SUPERVISOR/ns/net). --pod-user (a normal user): a user namespace first, mapping the
# user to itself, and a Unix socket STATE_DIR/pod.sock on which the supervisor hands out sockets made inside the pod
# (SCM_RIGHTS), since the mesh cannot setns into a pod it does not own. Raw syscalls: nothing to install.
# --pod-egress (egress: true): slirp4netns, started from the host's namespace by a child forked before the unshare, gives
# the pod a tap device and a default route; the replica starts once the route is there. The helper dies with the supervisor
# (PR_SET_PDEATHSIG, so a SIGKILLed supervisor too) and is killed when the replica ends; its output goes to egress.log.
# stdin: NUL-terminated records: argc, argv[0..argc-1], then the environment as KEY=VALUE.
# stdout: one line, "started PID START_TICKS" or "error MESSAGE", then nothing more.
use strict;
use warnings;

my $hires = eval { require Time::HiRes; 1 };
sub now { return $hires ? Time::HiRes::time() : time(); }

sub stamp {
    my $t = now();
    my $s = int($t);
    my ($sec, $min, $hour, $day, $mon, $year) = gmtime($s);
    return sprintf('%04d-%02d-%02dT%02d:%02d:%02d.%06dZ', $year + 1900, $mon + 1, $day, $hour, $min, $sec, int(($t - $s) * 1_000_000));
}

# waitpid's WNOHANG: 1 on Linux, macOS and the BSDs (spelled out to spare loading POSIX).
use constant WNOHANG => 1;

sub write_atomic {
    my ($path, $text) = @_;
    open(my $fh, '>', "$path.tmp") or die "cannot write $path.tmp: $!";
    print $fh $text;
    close($fh) or die "cannot write $path.tmp: $!";
    rename("$path.tmp", $path) or die "cannot rename $path.tmp: $!";
}

my $dir = shift @ARGV or die "usage: berth-supervisor.pl STATE_DIR [options]\n";
my (@cgroups, $oom, $cwd, $user, $pod, $pod_user, $pod_egress);
my ($log_max_size, $log_max_files) = (0, 1);
while (@ARGV) {
    my $opt = shift @ARGV;
    my $val = shift @ARGV;
    die "option $opt needs a value\n" unless defined $val;
    if ($opt eq '--cgroup') { push @cgroups, $val; }
    elsif ($opt eq '--oom') { $oom = $val; }
    elsif ($opt eq '--cwd') { $cwd = $val; }
    elsif ($opt eq '--user') { $user = $val; }
    elsif ($opt eq '--pod') { $pod = $val; }
    elsif ($opt eq '--pod-user') { $pod_user = $val; }
    elsif ($opt eq '--pod-egress') { $pod_egress = $val; }
    elsif ($opt eq '--log-max-size') { $log_max_size = $val; }
    elsif ($opt eq '--log-max-files') { $log_max_files = $val; }
    else { die "unknown option $opt\n"; }
}

my $input = do { local $/; <STDIN> };
my @records = split(/\0/, $input // '', -1);
pop @records if @records && $records[-1] eq '';
my $argc = shift @records;
die "no command given\n" unless defined $argc && $argc =~ /^\d+$/ && $argc > 0 && @records >= $argc;
my @argv = splice(@records, 0, $argc);
my %env;
for my $kv (@records) {
    my $i = index($kv, '=');
    $env{substr($kv, 0, $i)} = substr($kv, $i + 1) if $i > 0;
}

# Leave the control plane's process group so its terminal's Ctrl-C or hangup does not reach us.
setpgrp(0, 0);
$SIG{$_} = 'IGNORE' for qw(HUP INT PIPE);

umask(027);
open(my $outlog, '>>', "$dir/stdout.log") or die "cannot open $dir/stdout.log: $!\n";
open(my $errlog, '>>', "$dir/stderr.log") or die "cannot open $dir/stderr.log: $!\n";

# Linux syscall numbers by architecture (asm/unistd.h): unshare, mount, sendmsg, prctl.
my %SYS = (
    x86_64 => [272, 165, 46, 157],
    aarch64 => [97, 40, 211, 167],
);
my $helper;
my $egress_pid;
if (defined $pod) {
    my $fail = sub { $| = 1; print STDOUT "error pod: $_[0]\n"; exit 0; };
    my $arch = '';
    if (open(my $fh, '<', '/proc/sys/kernel/arch')) { chomp($arch = <$fh> // ''); close($fh); }
    chomp($arch = `uname -m`) if $arch eq '';
    my $sys = $SYS{$arch} or $fail->("no syscall table for $arch; run the service with network: host");
    my ($SYS_unshare, $SYS_mount, $SYS_sendmsg, $SYS_prctl) = @$sys;
    my $egress_go;
    if (defined $pod_egress) {
        # Forked before the unshare: the helper must run in the host's namespace (its sockets to the outside live there).
        my $parent = $$;
        my $host_ns = readlink('/proc/self/ns/net') // '';
        pipe(my $go_r, $egress_go) or $fail->("pipe: $!");
        $egress_pid = fork();
        $fail->("fork: $!") unless defined $egress_pid;
        if ($egress_pid == 0) {
            close($egress_go);
            open(STDIN, '<', '/dev/null');
            open(STDOUT, '>>', "$dir/egress.log");
            open(STDERR, '>&', \*STDOUT);
            syscall($SYS_prctl, 1, 9, 0, 0, 0); # PR_SET_PDEATHSIG, SIGKILL: it survives exec
            exit 0 if getppid() != $parent;
            my $go = '';
            sysread($go_r, $go, 1);
            exit 0 if $go ne 'g';
            # Never the host's own namespace: the helper sets up whatever namespace it is pointed at.
            my $ns = readlink("/proc/$parent/ns/net") // '';
            if ($ns eq '' || $ns eq $host_ns) { print STDERR "the pod's namespace is the host's; egress not started\n"; exit 1; }
            my @args = ('--configure', '--mtu=65520', '--disable-host-loopback');
            push @args, "--userns-path=/proc/$parent/ns/user" if defined $pod_user;
            { no warnings 'exec'; exec { $pod_egress } 'slirp4netns', @args, $parent, 'tap0'; }
            print STDERR "cannot run $pod_egress: $!\n";
            exit 127;
        }
        close($go_r);
    }
    my ($NEWNS, $NEWUSER, $NEWNET) = (0x00020000, 0x10000000, 0x40000000);
    my $flags = $NEWNET | $NEWNS | (defined $pod_user ? $NEWUSER : 0);
    syscall($SYS_unshare, $flags) == 0 or $fail->("unshare: $!");
    if (defined $pod_user) {
        my ($uid, $gid) = split(/:/, $pod_user, 2);
        for (["setgroups", "deny"], ["uid_map", "$uid $uid 1"], ["gid_map", "$gid $gid 1"]) {
            open(my $fh, '>', "/proc/self/$_->[0]") or $fail->("cannot open /proc/self/$_->[0]: $!");
            print $fh "$_->[1]\n";
            close($fh) or $fail->("cannot write /proc/self/$_->[0]: $!");
        }
    }
    # Mounts made here stay here: / private (recursively) before the hosts file is bound over /etc/hosts.
    my ($MS_BIND, $MS_REC, $MS_PRIVATE) = (4096, 16384, 262144);
    # (syscall may write into string arguments, so each is a variable, not a constant.)
    my ($none, $root, $hosts, $source) = ('none', '/', '/etc/hosts', "$pod");
    syscall($SYS_mount, $none, $root, 0, $MS_REC | $MS_PRIVATE, 0) == 0 or $fail->("mount --make-rprivate /: $!");
    syscall($SYS_mount, $source, $hosts, 0, $MS_BIND, 0) == 0 or $fail->("bind-mount $pod on /etc/hosts: $!");
    # Loopback up (SIOCGIFFLAGS/SIOCSIFFLAGS on a datagram socket; struct ifreq is 40 bytes).
    socket(my $s, 2, 2, 0) or $fail->("socket: $!");
    my $ifr = pack('a16 x24', 'lo');
    ioctl($s, 0x8913, $ifr) or $fail->("SIOCGIFFLAGS lo: $!");
    my $up = unpack('x16 s', $ifr) | 1;
    $ifr = pack('a16 s x22', 'lo', $up);
    ioctl($s, 0x8914, $ifr) or $fail->("bring lo up: $!");
    close($s);
    # Any user may listen on any port of the pod, as in Docker's containers (net.ipv4.ip_unprivileged_port_start=0): the
    # pod's ports are its own, and a normal user's replica can listen on 80 as Compose files expect.
    if (open(my $fh, '>', '/proc/sys/net/ipv4/ip_unprivileged_port_start')) { print $fh "0\n"; close($fh); }
    if (defined $egress_go) {
        syswrite($egress_go, 'g');
        close($egress_go);
        # The replica starts once the pod has its way out: a default route on the helper's tap device (10 s at most).
        my ($deadline, $ready) = (now() + 10, 0);
        while (!$ready && now() < $deadline) {
            if (open(my $fh, '<', '/proc/self/net/route')) { while (<$fh>) { if (/^tap0\s+00000000\s/) { $ready = 1; last; } } close($fh); }
            last if $ready || waitpid($egress_pid, WNOHANG) == $egress_pid;
            select(undef, undef, undef, 0.02);
        }
        if (!$ready) {
            kill('KILL', $egress_pid);
            waitpid($egress_pid, 0);
            my $said = '';
            if (open(my $fh, '<', "$dir/egress.log")) { local $/; $said = <$fh> // ''; close($fh); }
            $said =~ s/\s+/ /g;
            $fail->("egress: $pod_egress gave the pod no default route within 10 s ($said); see $dir/egress.log");
        }
    }
    if (defined $pod_user) {
        # AF_UNIX = 1, SOCK_STREAM = 1; sockaddr_un = family + path.
        my $path = "$dir/pod.sock";
        unlink($path);
        socket($helper, 1, 1, 0) or $fail->("socket: $!");
        bind($helper, pack('S a108', 1, $path)) or $fail->("bind $path: $!");
        chmod(0600, $path);
        listen($helper, 16) or $fail->("listen $path: $!");
        $helper = [$helper, $SYS_sendmsg];
    }
}

# Pipes are close-on-exec (fd > $^F); the exec pipe reports a failed exec and reads EOF on success.
pipe(my $out_r, my $out_w) or die "pipe: $!\n";
pipe(my $err_r, my $err_w) or die "pipe: $!\n";
pipe(my $exec_r, my $exec_w) or die "pipe: $!\n";

my $pid = fork();
die "fork: $!\n" unless defined $pid;
if ($pid == 0) {
    close($out_r); close($err_r); close($exec_r);
    my $fail = sub { syswrite($exec_w, $_[0]); exit 127; };
    # Own process group: the driver signals the whole group (shell: true has children).
    setpgrp(0, 0);
    # Start clean whatever the control plane had: default dispositions, nothing blocked (both survive exec).
    $SIG{$_} = 'DEFAULT' for grep { $_ ne 'KILL' && $_ ne 'STOP' && $_ !~ /^(?:NUM\d+|RTMIN|RTMAX|ZERO)$/ } keys %SIG;
    if (open(my $status, '<', '/proc/self/status')) {
        my ($blocked) = map { /^SigBlk:\s*([0-9a-f]+)/ ? $1 : () } <$status>;
        close($status);
        if (defined $blocked && $blocked =~ /[1-9a-f]/) {
            require POSIX;
            POSIX::sigprocmask(POSIX::SIG_SETMASK(), POSIX::SigSet->new());
        }
    }
    for my $procs (@cgroups) {
        open(my $fh, '>>', $procs) or $fail->("cannot join cgroup $procs: $!");
        print $fh "$$\n";
        close($fh) or $fail->("cannot join cgroup $procs: $!");
    }
    if (defined $cwd) { chdir($cwd) or $fail->("cannot change to working directory $cwd: $!"); }
    if (defined $user) {
        my ($name, $group) = split(/:/, $user, 2);
        my ($uid, $gid);
        if ($name =~ /^\d+$/) { $uid = $name; $gid = $name; }
        else {
            my @pw = getpwnam($name) or $fail->("user $name does not exist on this machine");
            ($uid, $gid) = @pw[2, 3];
        }
        if (defined $group) {
            $gid = $group =~ /^\d+$/ ? $group : (getgrnam($group) // $fail->("group $group does not exist on this machine"));
        }
        $) = "$gid $gid";
        $( = $gid;
        $< = $> = $uid;
        $fail->("cannot switch to user $user: $!") if $< != $uid || $> != $uid;
    }
    open(STDIN, '<', '/dev/null') or $fail->("cannot open /dev/null: $!");
    # Reopening STDOUT/STDERR keeps fds 1 and 2 (perl dup2s onto them), now the pipes, not close-on-exec.
    open(STDOUT, '>&', $out_w) or $fail->("cannot redirect stdout: $!");
    open(STDERR, '>&', $err_w) or $fail->("cannot redirect stderr: $!");
    %ENV = %env;
    { no warnings 'exec'; exec { $argv[0] } @argv; }
    $fail->("cannot run '$argv[0]': $!");
}

close($out_w); close($err_w); close($exec_w);
my $failure = '';
while (sysread($exec_r, my $buf, 4096)) { $failure .= $buf; }
close($exec_r);

if ($failure ne '') {
    waitpid($pid, 0);
    my $ms = int(now() * 1000);
    $failure =~ s/\s+/ /g;
    write_atomic("$dir/exit", "code=127\nsignal=0\noom_kill=0\nfinished=$ms\nerror=$failure\n");
    print STDOUT "error $failure\n";
    exit 0;
}

sub start_ticks {
    my ($p) = @_;
    open(my $stat, '<', "/proc/$p/stat") or return 0;
    my $line = <$stat>;
    close($stat);
    my @f = split(/ /, substr($line, rindex($line, ')') + 2));
    return $f[19];
}
my $ticks = start_ticks($pid);
my $own_ticks = start_ticks($$);
my $started = int(now() * 1000);
write_atomic("$dir/pid", "pid=$pid\nticks=$ticks\nstarted=$started\nsupervisor=$$\nsupervisor_ticks=$own_ticks\n");
{ local $| = 1; print STDOUT "started $pid $ticks\n"; }

# From here on the control plane may be gone: never touch its pipes again.
open(STDIN, '<', '/dev/null');
open(STDOUT, '>', '/dev/null');
open(STDERR, '>>', "$dir/supervisor.log");

my $exited = 0;
my $status;
$SIG{CHLD} = sub { };

# A line longer than this is cut into pieces, as Docker's 16 KiB log messages.
my $max_line = 16384;
my %log = (fileno($out_r) => $outlog, fileno($err_r) => $errlog);
my %logname = (fileno($out_r) => 'stdout.log', fileno($err_r) => 'stderr.log');
my %logsize = (fileno($out_r) => (-s "$dir/stdout.log") // 0, fileno($err_r) => (-s "$dir/stderr.log") // 0);

# Rotation, as the kubelet rotates container logs and Docker's json-file does: before a line would take the live file
# past --log-max-size, it is renamed NAME.G (G one more than the newest rotated file: readers following the live file
# by its descriptor find what came after it in order) and a new one started; the oldest go so that --log-max-files
# files are kept, the live one included. One file (--log-max-files 1) is truncated instead.
sub rotate {
    my ($fd) = @_;
    my $name = $logname{$fd};
    close($log{$fd});
    if ($log_max_files > 1) {
        opendir(my $dh, $dir) or die "cannot list $dir: $!";
        my @gens = sort { $a <=> $b } map { /^\Q$name\E\.(\d+)$/ ? $1 : () } readdir($dh);
        closedir($dh);
        my $next = @gens ? $gens[-1] + 1 : 1;
        rename("$dir/$name", "$dir/$name.$next");
        push @gens, $next;
        unlink("$dir/$name." . shift(@gens)) while @gens > $log_max_files - 1;
    }
    open($log{$fd}, '>', "$dir/$name") or die "cannot open $dir/$name: $!";
    $logsize{$fd} = 0;
}

sub write_log {
    my ($fd, $text) = @_;
    if ($log_max_size <= 0 || $logsize{$fd} + length($text) <= $log_max_size) {
        syswrite($log{$fd}, $text);
        $logsize{$fd} += length($text);
        return;
    }
    my $chunk = '';
    for my $line (split(/(?<=\n)/, $text)) {
        if ($logsize{$fd} + length($chunk) + length($line) > $log_max_size && $logsize{$fd} + length($chunk) > 0) {
            syswrite($log{$fd}, $chunk) if $chunk ne '';
            rotate($fd);
            $chunk = '';
        }
        $chunk .= $line;
    }
    syswrite($log{$fd}, $chunk);
    $logsize{$fd} += length($chunk);
}
my %partial = (fileno($out_r) => '', fileno($err_r) => '');
my %open = (fileno($out_r) => $out_r, fileno($err_r) => $err_r);

sub emit {
    my ($fd, $data, $final) = @_;
    my $buf = $partial{$fd} . $data;
    my $ts = stamp();
    my $text = '';
    while (1) {
        my $nl = index($buf, "\n");
        if ($nl >= 0 && $nl <= $max_line) {
            $text .= "$ts " . substr($buf, 0, $nl + 1);
            substr($buf, 0, $nl + 1) = '';
        } elsif (length($buf) > $max_line) {
            $text .= "$ts " . substr($buf, 0, $max_line) . "\n";
            substr($buf, 0, $max_line) = '';
        } else {
            last;
        }
    }
    if ($final && $buf ne '') { $text .= "$ts $buf\n"; $buf = ''; }
    $partial{$fd} = $buf;
    write_log($fd, $text) if $text ne '';
}

sub reap {
    return 1 if $exited;
    my $r = waitpid($pid, WNOHANG);
    if ($r == $pid) { $status = $?; $exited = 1; }
    return $exited;
}

# The pod's socket helper: one request per connection, a byte ('4' or '6') answered with one byte and a new unconnected
# TCP socket made here, inside the pod, passed as SCM_RIGHTS; the caller binds or connects it, and it stays in the pod's
# namespace. One request per connection, so a slow caller never holds up the log loop for more than one read.
sub serve_helper {
    my ($listener, $SYS_sendmsg) = @$helper;
    accept(my $conn, $listener) or return;
    if (sysread($conn, my $want, 1)) {
        my $family = $want eq '6' ? 10 : 2;
        my $fd = -1;
        my $sock;
        if (socket($sock, $family, 1, 0)) { $fd = fileno($sock); }
        my $byte = $fd >= 0 ? 'k' : 'e';
        my $iov = pack('P1 Q', $byte, 1);
        my $cmsg = pack('Q i i i x4', 20, 1, 1, $fd);
        my $msg = $fd >= 0 ? pack('Q L x4 P16 Q P24 Q i x4', 0, 0, $iov, 1, $cmsg, 24, 0) : pack('Q L x4 P16 Q Q Q i x4', 0, 0, $iov, 1, 0, 0, 0);
        syscall($SYS_sendmsg, fileno($conn), $msg, 0);
        close($sock) if $fd >= 0;
    }
    close($conn);
}

while (%open) {
    # Once the replica has exited, drain what is buffered and stop: its orphans may hold the pipes open.
    my $rin = '';
    vec($rin, $_, 1) = 1 for keys %open;
    vec($rin, fileno($helper->[0]), 1) = 1 if $helper;
    my $n = select(my $rout = $rin, undef, undef, reap() ? 0 : 1);
    if ($n <= 0) {
        next if $n < 0 && $!{EINTR};
        last if $exited;
        next;
    }
    serve_helper() if $helper && vec($rout, fileno($helper->[0]), 1);
    for my $fd (grep { vec($rout, $_, 1) } keys %open) {
        my $got = sysread($open{$fd}, my $chunk, 65536);
        if (!defined $got) { next if $!{EINTR} || $!{EAGAIN}; }
        if (!$got) {
            emit($fd, '', 1);
            close(delete $open{$fd});
            next;
        }
        emit($fd, $chunk, 0);
    }
}
for my $fd (keys %partial) { emit($fd, '', 1); }
if (!$exited) { waitpid($pid, 0); $status = $?; }

# What the replica left behind dies with it, as in a container whose pid 1 exits; so does the pod's way out.
kill('KILL', -$pid);
if (defined $egress_pid) { kill('KILL', $egress_pid); waitpid($egress_pid, 0); }

my $oom_kills = 0;
if (defined $oom && open(my $fh, '<', $oom)) {
    while (<$fh>) { $oom_kills = $1 if /^oom_kill\s+(\d+)/; }
    close($fh);
}
my $signal = $status & 127;
my $code = $signal ? 128 + $signal : $status >> 8;
my $finished = int(now() * 1000);
# A newer run of the same replica id may own the folder now (it cleared our pid file): our end is not its exit.
my $owner = '';
if (open(my $fh, '<', "$dir/pid")) { while (<$fh>) { $owner = $1 if /^supervisor=(\d+)/; } close($fh); }
exit 0 if $owner ne "$$";
write_atomic("$dir/exit", "code=$code\nsignal=$signal\noom_kill=$oom_kills\nfinished=$finished\n");
exit 0;
