using System.Diagnostics;
using System.Globalization;
using Berth.Runtime.Capabilities;

namespace Berth.Runtime.Process;

/// <summary>What <c>berth exec</c> runs in a process replica, as <c>docker exec</c> runs in a container: the replica's own
/// environment (read from <c>/proc/PID/environ</c>, so its secrets never pass through the API), its working directory,
/// its user, its cgroups (so its limits hold for the command too) and, when it runs in a pod, its network and mount
/// namespaces (and its user namespace where the pod was made by a normal user), entered with <c>nsenter</c>.</summary>
public sealed record ReplicaExecContext(
    int Pid,
    IReadOnlyDictionary<string, string> Environment,
    string WorkingDirectory,
    int Uid,
    int Gid,
    IReadOnlyList<string> CgroupProcsFiles,
    IReadOnlyList<string> CgroupsNotFound,
    bool InPod,
    bool InUserNamespace)
{
    /// <summary>Joins the cgroups (before anything runs), with <c>--tty</c> starts a session whose controlling terminal is
    /// that pty (so a shell has job control and the window size), changes folder and user,
    /// then execs argv (perl-base is Essential on Debian, and the supervisor already needs it). No shell: argv stays argv.</summary>
    private const string Launcher = """
        use strict; use warnings;
        my (@cg, $cwd, $uid, $gid, $tty);
        while (@ARGV && $ARGV[0] ne '--') {
            my ($o, $v) = splice(@ARGV, 0, 2);
            if ($o eq '--cgroup') { push @cg, $v } elsif ($o eq '--cwd') { $cwd = $v } elsif ($o eq '--tty') { $tty = $v }
            elsif ($o eq '--uid') { $uid = $v } elsif ($o eq '--gid') { $gid = $v } else { die "berth exec: unknown option $o\n" }
        }
        shift @ARGV;
        for my $p (@cg) {
            open(my $fh, '>>', $p) or do { print STDERR "berth exec: cannot join the replica's cgroup $p: $!\n"; exit 126 };
            print $fh "$$\n";
            close($fh) or do { print STDERR "berth exec: cannot join the replica's cgroup $p: $!\n"; exit 126 };
        }
        if (defined $tty) {
            require POSIX;
            POSIX::setsid() or do { print STDERR "berth exec: cannot start a session for the terminal: $!\n"; exit 126 };
            open(my $t, '+<', $tty) or do { print STDERR "berth exec: cannot open the terminal $tty: $!\n"; exit 126 };
            for my $fd (0, 1, 2) { POSIX::dup2(fileno($t), $fd) or do { print STDERR "berth exec: cannot attach the terminal: $!\n"; exit 126 } }
            close($t) if fileno($t) > 2;
            ioctl(STDIN, 0x540E, 0); # TIOCSCTTY: the session's controlling terminal (opening it as the session leader did already on Linux)
        }
        if (defined $cwd) { chdir($cwd) or do { print STDERR "berth exec: cannot change to $cwd: $!\n"; exit 126 } }
        if (defined $gid) { $) = "$gid $gid"; $( = $gid; }
        if (defined $uid) { $< = $> = $uid; if ($> != $uid) { print STDERR "berth exec: cannot switch to uid $uid: $!\n"; exit 126 } }
        { no warnings 'exec'; exec { $ARGV[0] } @ARGV; }
        print STDERR "berth exec: cannot run '$ARGV[0]': $!\n"; exit($!{ENOENT} ? 127 : 126);
        """;

    /// <summary>Reads what the replica's process runs with. Throws <see cref="InvalidOperationException"/> with words a user can act
    /// on when the process is gone or not ours to read.</summary>
    public static ReplicaExecContext Read(int pid)
    {
        try
        {
            var environ = File.ReadAllText($"/proc/{pid}/environ");
            var env = new SortedDictionary<string, string>(StringComparer.Ordinal);
            foreach (var pair in environ.Split('\0', StringSplitOptions.RemoveEmptyEntries))
            {
                var eq = pair.IndexOf('=', StringComparison.Ordinal);
                if (eq > 0)
                {
                    env[pair[..eq]] = pair[(eq + 1)..];
                }
            }

            var cwd = new DirectoryInfo($"/proc/{pid}/cwd").LinkTarget ?? "/";
            var (uid, gid) = Ids(pid);
            var (joins, missing) = CgroupJoins(pid);
            return new ReplicaExecContext(pid, env, cwd, uid, gid, joins, missing,
                InPod: Namespace(pid, "net") != Namespace(System.Environment.ProcessId, "net"),
                InUserNamespace: Namespace(pid, "user") != Namespace(System.Environment.ProcessId, "user"));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new InvalidOperationException(e is UnauthorizedAccessException
                ? $"process {pid} belongs to another user: run berth as the user the control plane runs as (or root)"
                : $"process {pid} is gone ({e.Message})", e);
        }
    }

    /// <summary>The command line for <paramref name="command"/> in this replica: <c>perl -e LAUNCHER [--cgroup F]…
    /// -- [nsenter --target PID --net --mount [--user --preserve-credentials] --wd DIR [-S UID -G GID] --] COMMAND…</c>, with
    /// the replica's environment plus <paramref name="extraEnv"/>. Its stdio is inherited from the caller unless redirected,
    /// or with <paramref name="terminal"/> is that pty's slave, in a session of its own (as <c>docker exec -t</c> gives a container command its own TTY).</summary>
    /// <param name="command">argv, run without a shell.</param>
    /// <param name="extraEnv">Variables set over the replica's (<c>-e K=V</c>).</param>
    /// <param name="workingDirectory">Where it runs; null: the replica's working directory.</param>
    /// <param name="user">A user name or uid[:gid] (as <c>docker exec -u</c>); null: the replica's own.</param>
    /// <param name="perl">The perl to run the launcher with.</param>
    /// <param name="terminal">A pty slave's path (<c>/dev/pts/N</c>) to be the command's stdin, stdout, stderr and controlling terminal; null: none.</param>
    public ProcessStartInfo StartInfo(IReadOnlyList<string> command, IReadOnlyDictionary<string, string> extraEnv, string? workingDirectory, string? user, string perl = "perl", string? terminal = null)
    {
        if (command.Count == 0)
        {
            throw new ArgumentException("the command is empty", nameof(command));
        }

        var (uid, gid) = user is null ? (Uid, Gid) : ResolveUser(user);
        var switchUser = uid != HostUser.Uid || gid != HostUser.Gid;
        if (switchUser && !HostUser.IsRoot && !InUserNamespace)
        {
            throw new InvalidOperationException($"only root may run a command as uid {uid.ToString(CultureInfo.InvariantCulture)}; berth runs as {HostUser.Describe(HostUser.Uid)}");
        }

        var dir = workingDirectory ?? WorkingDirectory;
        var info = new ProcessStartInfo(perl) { UseShellExecute = false };
        info.ArgumentList.Add("-e");
        info.ArgumentList.Add(Launcher);
        info.ArgumentList.Add("--"); // the end of perl's own switches
        if (terminal is not null)
        {
            info.ArgumentList.Add("--tty");
            info.ArgumentList.Add(terminal);
        }

        foreach (var procs in CgroupProcsFiles)
        {
            info.ArgumentList.Add("--cgroup");
            info.ArgumentList.Add(procs);
        }

        if (InPod)
        {
            info.ArgumentList.Add("--");
            foreach (var arg in (string[])["nsenter", "--target", Pid.ToString(CultureInfo.InvariantCulture), .. InUserNamespace ? (string[])["--user", "--preserve-credentials"] : [], "--net", "--mount", $"--wd={dir}"])
            {
                info.ArgumentList.Add(arg);
            }

            if (switchUser && !InUserNamespace)
            {
                foreach (var arg in (string[])["-S", uid.ToString(CultureInfo.InvariantCulture), "-G", gid.ToString(CultureInfo.InvariantCulture)])
                {
                    info.ArgumentList.Add(arg);
                }
            }
        }
        else
        {
            info.ArgumentList.Add("--cwd");
            info.ArgumentList.Add(dir);
            if (switchUser)
            {
                foreach (var arg in (string[])["--gid", gid.ToString(CultureInfo.InvariantCulture), "--uid", uid.ToString(CultureInfo.InvariantCulture)])
                {
                    info.ArgumentList.Add(arg);
                }
            }
        }

        info.ArgumentList.Add("--");
        foreach (var arg in command)
        {
            info.ArgumentList.Add(arg);
        }

        info.Environment.Clear();
        foreach (var (k, v) in Environment.Concat(extraEnv))
        {
            info.Environment[k] = v;
        }

        return info;
    }

    /// <summary><c>name</c>, <c>uid</c>, <c>name:group</c> or <c>uid:gid</c>, looked up in this machine's /etc/passwd and
    /// /etc/group (a process replica shares the host's files).</summary>
    internal static (int Uid, int Gid) ResolveUser(string user)
    {
        var (name, group) = user.IndexOf(':', StringComparison.Ordinal) is var colon and >= 0 ? (user[..colon], user[(colon + 1)..]) : (user, null);
        int uid, gid;
        if (int.TryParse(name, NumberStyles.None, CultureInfo.InvariantCulture, out uid))
        {
            gid = PasswdEntry("/etc/passwd", e => e[2] == name) is { } byId ? int.Parse(byId[3], CultureInfo.InvariantCulture) : uid;
        }
        else if (PasswdEntry("/etc/passwd", e => e[0] == name) is { } entry)
        {
            (uid, gid) = (int.Parse(entry[2], CultureInfo.InvariantCulture), int.Parse(entry[3], CultureInfo.InvariantCulture));
        }
        else
        {
            throw new InvalidOperationException($"no user '{name}' on this machine (/etc/passwd); give a uid instead (-u 1000)");
        }

        if (group is not null)
        {
            gid = int.TryParse(group, NumberStyles.None, CultureInfo.InvariantCulture, out var g) ? g
                : PasswdEntry("/etc/group", e => e[0] == group) is { } ge ? int.Parse(ge[2], CultureInfo.InvariantCulture)
                : throw new InvalidOperationException($"no group '{group}' on this machine (/etc/group); give a gid instead (-u {name}:1000)");
        }

        return (uid, gid);
    }

    private static string[]? PasswdEntry(string file, Func<string[], bool> match) =>
        File.Exists(file) ? File.ReadLines(file).Select(l => l.Split(':')).FirstOrDefault(e => e.Length >= 4 && match(e)) : null;

    private static (int Uid, int Gid) Ids(int pid)
    {
        int uid = HostUser.Uid, gid = HostUser.Gid;
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
        {
            // "Uid:\treal\teffective\tsaved\tfs": the effective ids are what the replica acts as.
            if (line.StartsWith("Uid:", StringComparison.Ordinal))
            {
                uid = int.Parse(line.Split('\t', StringSplitOptions.RemoveEmptyEntries)[2], CultureInfo.InvariantCulture);
            }
            else if (line.StartsWith("Gid:", StringComparison.Ordinal))
            {
                gid = int.Parse(line.Split('\t', StringSplitOptions.RemoveEmptyEntries)[2], CultureInfo.InvariantCulture);
            }
        }

        return (uid, gid);
    }

    private static string? Namespace(int pid, string kind) => new FileInfo($"/proc/{pid}/ns/{kind}").LinkTarget;

    /// <summary>The <c>cgroup.procs</c> files of the replica's cgroups that are not the caller's own (cgroup v2: one; v1: one
    /// per hierarchy where they differ), mapped to where each hierarchy is mounted; the second list names those with no mount.</summary>
    internal static (IReadOnlyList<string> Procs, IReadOnlyList<string> Missing) CgroupJoins(int pid)
    {
        static Dictionary<string, string> Read(int p) => File.ReadLines($"/proc/{p}/cgroup")
            .Select(l => l.Split(':', 3)).Where(f => f.Length == 3)
            .GroupBy(f => f[1], StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.First()[2], StringComparer.Ordinal);

        var mine = Read(System.Environment.ProcessId);
        var theirs = Read(pid);
        var mounts = File.ReadLines("/proc/self/mountinfo").Select(l => l.Split(" - ", 2)).Where(p => p.Length == 2)
            .Select(p => (Fields: p[0].Split(' '), Fs: p[1].Split(' ')))
            .Where(m => m.Fs[0] is "cgroup" or "cgroup2" && m.Fields.Length >= 5)
            .Select(m => (Root: m.Fields[3], Point: m.Fields[4], Options: m.Fs[0] == "cgroup2" ? [] : m.Fs[^1].Split(',')))
            .ToList();
        var procs = new List<string>();
        var missing = new List<string>();
        foreach (var (controllers, path) in theirs)
        {
            if (mine.TryGetValue(controllers, out var own) && own == path)
            {
                continue;
            }

            var names = controllers.Split(',', StringSplitOptions.RemoveEmptyEntries);
            var mount = mounts.FirstOrDefault(m => names.Length == 0 ? m.Options.Length == 0 : names.All(m.Options.Contains));
            var relative = mount.Point is null ? null : path.StartsWith(mount.Root, StringComparison.Ordinal) ? path[mount.Root.Length..].TrimStart('/') : null;
            var file = relative is null ? null : Path.Combine(mount.Point!, relative, "cgroup.procs");
            if (file is not null && File.Exists(file))
            {
                procs.Add(file);
            }
            else
            {
                missing.Add($"{(controllers.Length == 0 ? "unified" : controllers)}:{path}");
            }
        }

        return (procs, missing);
    }
}
