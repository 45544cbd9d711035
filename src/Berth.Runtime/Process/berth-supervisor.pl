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
#        [--log-max-size BYTES --log-max-files N]
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
my (@cgroups, $oom, $cwd, $user);
my ($log_max_size, $log_max_files) = (0, 1);
while (@ARGV) {
    my $opt = shift @ARGV;
    my $val = shift @ARGV;
    die "option $opt needs a value\n" unless defined $val;
    if ($opt eq '--cgroup') { push @cgroups, $val; }
    elsif ($opt eq '--oom') { $oom = $val; }
    elsif ($opt eq '--cwd') { $cwd = $val; }
    elsif ($opt eq '--user') { $user = $val; }
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

while (%open) {
    # Once the replica has exited, drain what is buffered and stop: its orphans may hold the pipes open.
    my $rin = '';
    vec($rin, $_, 1) = 1 for keys %open;
    my $n = select(my $rout = $rin, undef, undef, reap() ? 0 : 1);
    if ($n <= 0) {
        next if $n < 0 && $!{EINTR};
        last if $exited;
        next;
    }
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

# What the replica left behind dies with it, as in a container whose pid 1 exits.
kill('KILL', -$pid);

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
