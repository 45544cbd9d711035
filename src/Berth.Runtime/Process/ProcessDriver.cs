using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using Berth.Core.Model;
using Berth.Core.Routing;
using Berth.Runtime.Capabilities;
using Berth.Runtime.Cgroups;
using Berth.Runtime.Logs;
using SysProcess = System.Diagnostics.Process;

namespace Berth.Runtime.Process;

/// <summary>
/// Runs replicas as OS processes, each under a small supervisor (its parent) that outlives the control plane, stamps
/// its logs into files and records its exit; CPU and memory limits through cgroups where the machine allows.
/// </summary>
public sealed class ProcessDriver : IWorkloadDriver, INodeIsolation
{
    private const string RegistryFolder = "process";

    /// <summary>Marks a replica that has ended while its supervisor is still writing the exit record.</summary>
    private const string Finishing = "finishing";

    private static readonly TimeSpan FinishingWait = TimeSpan.FromSeconds(5);

    /// <summary>How long an unrecorded earlier run's supervisor gets to record its end after its replica is killed.</summary>
    private static readonly TimeSpan UnrecordedRunWait = TimeSpan.FromSeconds(10);

    /// <summary>Clock ticks per second of /proc/PID/stat times (USER_HZ, 100 on every Linux architecture Berth runs on).</summary>
    private const long UserHz = 100;

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    private readonly ProcessDriverOptions _options;
    /// <summary>Where new replicas get their cgroups; becomes <see cref="NoCgroups"/> if the hierarchy stops letting this
    /// user in (replicas then run unlimited, said plainly, rather than crash-looping).</summary>
    private volatile ICgroupHierarchy _cgroups;

    /// <summary>The hierarchy found at start: replicas already placed in it are measured and cleaned up there.</summary>
    private readonly ICgroupHierarchy _placed;
    private readonly string _supervisorScript;
    private readonly ConcurrentDictionary<string, (long CpuNanos, long Timestamp)> _cpuSamples = new();

    public ProcessDriver(ProcessDriverOptions options)
        : this(options, options.UseCgroups
            ? CgroupDetector.Detect(CgroupSetting.ForThisProcess(options.CgroupRoot, options.CgroupSubtree, rootGiven: options.CgroupRoot != ProcessDriverDefaults.CgroupRoot))
            : new NoCgroups("none: cgroups are turned off in the process driver's options; replicas run without CPU and memory limits", "remove UseCgroups = false from the process driver's options"))
    {
    }

    internal ProcessDriver(ProcessDriverOptions options, ICgroupHierarchy cgroups)
    {
        _options = options;
        _cgroups = cgroups;
        _placed = cgroups;
        Directory.CreateDirectory(options.StateRoot);
        if (options.CpuShares is { } shares)
        {
            cgroups.SetSubtreeCpuShares(shares);
        }

        _supervisorScript = InstallSupervisor(options.StateRoot);
        Capabilities = CapabilitiesOf(cgroups);
        Log.ProcessLimits(options.Logger, cgroups.Description);
    }

    public RuntimeKind Kind => RuntimeKind.Process;

    public DriverCapabilities Capabilities { get; private set; }

    /// <summary>Whether CPU and memory limits are enforced here for this user, in the words <c>berth up</c> prints.</summary>
    public HostCapability CgroupCapability
    {
        get
        {
            var cgroups = _cgroups;
            return cgroups.Enforced
                ? new HostCapability(HostCapability.Cgroups, true, $"CPU and memory limits enforced through {cgroups.Description}")
                : new HostCapability(HostCapability.Cgroups, false, $"CPU and memory limits not enforced: {Reason(cgroups.Description)}", cgroups.Fix);
        }
    }

    private static string Reason(string description)
    {
        var reason = description.StartsWith("none: ", StringComparison.Ordinal) ? description["none: ".Length..] : description;
        const string Tail = "; replicas run without CPU and memory limits";
        return reason.EndsWith(Tail, StringComparison.Ordinal) ? reason[..^Tail.Length] : reason;
    }

    private static DriverCapabilities CapabilitiesOf(ICgroupHierarchy cgroups) => new()
    {
        Available = true,
        CpuLimitsEnforced = cgroups.Enforced,
        MemoryLimitsEnforced = cgroups.Enforced,
        LimitsMechanism = cgroups.Description,
        LimitsFix = cgroups.Fix,
    };

    /// <summary>The hierarchy refused this user after it was probed (made read-only, taken over by root): new replicas
    /// run without cgroups from now on and the capabilities say so — a missing capability never makes a crash loop.</summary>
    private void LoseCgroups(Exception e)
    {
        var lost = new NoCgroups(
            $"none: {_cgroups.Description} stopped letting {HostUser.Describe(HostUser.Uid)} in ({CgroupDetector.Why(e, HostUser.Uid)}); replicas run without CPU and memory limits",
            CgroupDetector.GeneralFix);
        _cgroups = lost;
        Capabilities = CapabilitiesOf(lost);
        Log.ProcessLimits(_options.Logger, lost.Description);
    }

    public async Task<ReplicaHandle> StartAsync(ReplicaSpec spec, CancellationToken cancellationToken)
    {
        var argv = BuildArgv(spec);
        var dir = Path.GetFullPath(spec.StateDirectory);
        Directory.CreateDirectory(dir);
        var existing = ReadRecord(spec.App, spec.ReplicaId);
        if (existing is not null && Inspect(existing).State == ReplicaState.Running)
        {
            throw new ReplicaStartException($"replica {spec.ReplicaId} of {spec.App} is already running (pid {existing.Handle.Pid}); stop and remove it first, or give the new one another id");
        }

        await EndUnrecordedRunAsync(spec.ReplicaId, dir, cancellationToken).ConfigureAwait(false);
        SupervisorFiles.ClearRun(dir);
        var files = await MountedFiles.WriteAsync(spec, cancellationToken).ConfigureAwait(false);
        if (spec.Pod is { } pod)
        {
            // The pod's /etc/hosts, bind-mounted by the supervisor in the pod's own mount namespace.
            await File.WriteAllTextAsync(Path.Combine(dir, PodHostsFile), pod.HostsFile(), cancellationToken).ConfigureAwait(false);
        }

        var cgroup = CgroupPath(spec);
        var limited = spec.CpuLimit is not null || spec.MemoryLimit is not null;
        var cgroups = _cgroups;
        if (cgroups.Enforced)
        {
            if (spec.Node is not null && !cgroups.Pids(spec.Node).Any() && cgroups.Usage(spec.Node) is null)
            {
                throw new ReplicaStartException($"replica {spec.ReplicaId}: node cgroup '{spec.Node}' does not exist; create it with EnsureNodeAsync first");
            }

            try
            {
                cgroups.Ensure(cgroup, new CgroupLimits(spec.CpuLimit, spec.MemoryLimit));
            }
            catch (UnauthorizedAccessException e)
            {
                LoseCgroups(e);
                cgroups = _cgroups;
            }
        }

        if (!cgroups.Enforced && limited)
        {
            Log.LimitsNotEnforced(_options.Logger, spec.ReplicaId, cgroups.Description);
        }

        var (line, stderr) = await RunSupervisorAsync(spec, files, argv, dir, cgroups, cgroup, cancellationToken).ConfigureAwait(false);
        if (cgroups.Enforced && line is not null && line.StartsWith(JoinRefused, StringComparison.Ordinal) && line.Contains("Permission denied", StringComparison.Ordinal))
        {
            // The supervisor may not move the replica into its group: run it without one rather than fail it over and over.
            RemoveCgroup(cgroups, cgroup, spec.Node is null ? spec.App : null);
            LoseCgroups(new UnauthorizedAccessException(line["error ".Length..]));
            cgroups = _cgroups;
            SupervisorFiles.ClearRun(dir);
            (line, stderr) = await RunSupervisorAsync(spec, files, argv, dir, cgroups, cgroup, cancellationToken).ConfigureAwait(false);
        }

        if (line is null || !line.StartsWith("started ", StringComparison.Ordinal))
        {
            RemoveCgroup(cgroups, cgroup, spec.Node is null ? spec.App : null);
            var reason = line is null
                ? $"the supervisor did not report within {_options.StartTimeout.TotalSeconds:0}s{(stderr.Length > 0 ? ": " + stderr.Trim() : "")}"
                : line.StartsWith("error ", StringComparison.Ordinal) ? line["error ".Length..] : line;
            throw new ReplicaStartException($"replica {spec.ReplicaId} of service {spec.Service} did not start: {reason}");
        }

        var parts = line.Split(' ');
        var handle = new ReplicaHandle
        {
            Pod = spec.Pod is null ? null : PodOf(spec.ReplicaId, dir),
            ReplicaId = spec.ReplicaId,
            App = spec.App,
            Service = spec.Service,
            Revision = spec.Revision,
            Kind = RuntimeKind.Process,
            Pid = int.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture),
            ProcessStartTicks = long.Parse(parts[2], System.Globalization.CultureInfo.InvariantCulture),
            StateDirectory = dir,
        };
        WriteRecord(new ProcessRecord(handle, cgroups.Enforced ? cgroup : null, spec.Node is null ? spec.App : null));
        Log.ProcessStarted(_options.Logger, spec.ReplicaId, spec.App, spec.Service, handle.Pid!.Value);
        return handle;
    }

    /// <summary>The pod's hosts file in the replica's folder.</summary>
    private const string PodHostsFile = "hosts";

    /// <summary>The pod's helper socket (rootless pods), served by the supervisor.</summary>
    private const string PodHelperSocket = "pod.sock";

    /// <summary>The pod the supervisor made: its namespace is the supervisor's, which lives as long as the replica.</summary>
    private static PodNetwork PodOf(string replicaId, string dir)
    {
        var supervisor = SupervisorFiles.ReadPid(dir)?.SupervisorPid ?? throw new ReplicaStartException($"replica {replicaId}: the supervisor reported a start but wrote no pid file in {dir}");
        var path = $"/proc/{supervisor}/ns/net";
        return new PodNetwork(replicaId, path)
        {
            NamespaceInode = PodSockets.InodeOf(path),
            SocketHelper = HostUser.IsRoot ? null : Path.Combine(dir, PodHelperSocket),
        };
    }

    /// <summary>What the supervisor says when it may not move the replica into its cgroup.</summary>
    private const string JoinRefused = "error cannot join cgroup";

    /// <summary>Starts the replica's supervisor and reads its handshake: <c>started PID TICKS</c> or <c>error …</c> (null: no answer).</summary>
    private async Task<(string? Line, string Stderr)> RunSupervisorAsync(ReplicaSpec spec, IReadOnlyList<(MountedFile File, string HostPath)> files, List<string> argv, string dir, ICgroupHierarchy cgroups, string cgroup, CancellationToken cancellationToken)
    {
        var start = new ProcessStartInfo(_options.Perl)
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.ArgumentList.Add(_supervisorScript);
        start.ArgumentList.Add(dir);
        foreach (var procs in cgroups.ProcsFiles(cgroup))
        {
            start.ArgumentList.Add("--cgroup");
            start.ArgumentList.Add(procs);
        }

        if (cgroups.OomFile(cgroup) is { } oom)
        {
            start.ArgumentList.Add("--oom");
            start.ArgumentList.Add(oom);
        }

        if (spec.WorkingDir is not null)
        {
            start.ArgumentList.Add("--cwd");
            start.ArgumentList.Add(spec.WorkingDir);
        }

        if (spec.User is not null)
        {
            start.ArgumentList.Add("--user");
            start.ArgumentList.Add(spec.User);
        }

        if (spec.Pod is not null)
        {
            start.ArgumentList.Add("--pod");
            start.ArgumentList.Add(Path.Combine(dir, PodHostsFile));
            if (!HostUser.IsRoot)
            {
                // A normal user: the pod's user namespace maps the user to itself, so files it writes are the user's.
                start.ArgumentList.Add("--pod-user");
                start.ArgumentList.Add(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{HostUser.Uid}:{HostUser.Gid}"));
            }

            if (spec.Pod.Egress && _options.EgressHelper is { } egress)
            {
                start.ArgumentList.Add("--pod-egress");
                start.ArgumentList.Add(egress);
            }
        }

        start.ArgumentList.Add("--log-max-size");
        start.ArgumentList.Add(spec.Logging.MaxSize.Bytes.ToString(System.Globalization.CultureInfo.InvariantCulture));
        start.ArgumentList.Add("--log-max-files");
        start.ArgumentList.Add(spec.Logging.MaxFiles.ToString(System.Globalization.CultureInfo.InvariantCulture));

        // The supervisor's own environment is minimal: the replica's (which may hold secrets) goes over stdin.
        start.Environment.Clear();
        start.Environment["PATH"] = Environment.GetEnvironmentVariable("PATH") ?? "/usr/local/bin:/usr/bin:/bin";
        start.Environment["LC_ALL"] = "C";

        SysProcess supervisor;
        try
        {
            supervisor = SysProcess.Start(start) ?? throw new ReplicaStartException($"replica {spec.ReplicaId}: could not start the supervisor");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            RemoveCgroup(cgroups, cgroup, spec.Node is null ? spec.App : null);
            throw new ReplicaStartException($"replica {spec.ReplicaId}: cannot run the supervisor with '{_options.Perl}' ({e.Message}); install perl (Debian/Ubuntu: apt-get install perl-base) or set ProcessDriverOptions.Perl", e);
        }

        string? line;
        string stderr;
        using (supervisor)
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(_options.StartTimeout);
            try
            {
                await supervisor.StandardInput.BaseStream.WriteAsync(EncodeInput(argv, BuildEnvironment(spec, files)), timeout.Token).ConfigureAwait(false);
                supervisor.StandardInput.Close();
                line = await supervisor.StandardOutput.ReadLineAsync(timeout.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                line = null;
            }

            // The supervisor's first process exits right after the handshake only on failure; on success it keeps
            // running detached from our pipes, and .NET reaps it whenever it ends.
            stderr = line is null ? await ReadAvailableAsync(supervisor.StandardError).ConfigureAwait(false) : "";
        }

        return (line, stderr);
    }

    /// <summary>Ends a run of this replica id that has no record: the control plane that started it died between the
    /// supervisor's handshake and writing the record, and the restarted one starts the id again (issue #5). Left running,
    /// that run holds the replica's port, and when it is killed later (by the cleanup of a restart, which kills what is in
    /// the replica's cgroup) its supervisor writes its SIGKILL into this folder as the new run's exit.</summary>
    private async Task EndUnrecordedRunAsync(string replicaId, string dir, CancellationToken cancellationToken)
    {
        if (SupervisorFiles.ReadPid(dir) is not { } run || !ProcFs.IsAlive(run.SupervisorPid, run.SupervisorStartTicks))
        {
            return;
        }

        Log.EndingUnrecordedRun(_options.Logger, replicaId, run.Pid);
        if (ProcFs.IsAlive(run.Pid, run.StartTicks))
        {
            ProcFs.Signal(-run.Pid, ProcFs.SigKill);
            ProcFs.Signal(run.Pid, ProcFs.SigKill);
        }

        // Its supervisor reaps it within a poll (1s) and writes the exit record; wait so that write cannot land after ClearRun.
        var time = _options.TimeProvider;
        var started = time.GetTimestamp();
        while (ProcFs.IsAlive(run.SupervisorPid, run.SupervisorStartTicks) && time.GetElapsedTime(started) < UnrecordedRunWait)
        {
            await Task.Delay(_options.PollInterval, time, cancellationToken).ConfigureAwait(false);
        }

        if (ProcFs.IsAlive(run.SupervisorPid, run.SupervisorStartTicks))
        {
            ProcFs.Signal(run.SupervisorPid, ProcFs.SigKill);
        }
    }

    public async Task<ReplicaStatus> StopAsync(ReplicaHandle replica, TimeSpan gracePeriod, CancellationToken cancellationToken)
    {
        var record = Resolve(replica);
        var status = Inspect(record);
        if (status.State != ReplicaState.Running)
        {
            return status;
        }

        var pid = record.Handle.Pid!.Value;
        Log.Stopping(_options.Logger, replica.ReplicaId, gracePeriod.TotalSeconds);

        // The replica leads its own process group: a shell and what it started get the signal too.
        if (ProcFs.IsAlive(pid, record.Handle.ProcessStartTicks) && !ProcFs.Signal(-pid, ProcFs.SigTerm))
        {
            ProcFs.Signal(pid, ProcFs.SigTerm);
        }

        status = await WaitAsync(record, gracePeriod, cancellationToken).ConfigureAwait(false);
        if (status.State == ReplicaState.Running)
        {
            Log.Killing(_options.Logger, replica.ReplicaId, gracePeriod.TotalSeconds);
            Kill(record);
            status = await WaitAsync(record, TimeSpan.FromSeconds(30), cancellationToken).ConfigureAwait(false);
        }

        return status;
    }

    public async Task RemoveAsync(ReplicaHandle replica, CancellationToken cancellationToken)
    {
        var record = Resolve(replica);
        if (Inspect(record).State == ReplicaState.Running)
        {
            throw new InvalidOperationException($"replica {replica.ReplicaId} is still running; stop it before removing it");
        }

        if (record.CgroupPath is not null)
        {
            // A group whose last process has just died is busy for a moment (the kernel frees it once the task is
            // reaped), which left empty cgroups behind after a churn (issue #14 §9): try again for a while.
            for (var attempt = 0; ; attempt++)
            {
                // Orphans of a replica whose supervisor was killed may still sit in its cgroup.
                KillMembers(_placed, record.CgroupPath);

                if (RemoveCgroup(_placed, record.CgroupPath, record.AppCgroup, log: attempt == CgroupRemoveAttempts - 1) || attempt == CgroupRemoveAttempts - 1)
                {
                    break;
                }

                await Task.Delay(_options.PollInterval, _options.TimeProvider, cancellationToken).ConfigureAwait(false);
            }
        }

        File.Delete(RecordPath(replica.App, replica.ReplicaId));
        _cpuSamples.TryRemove(Key(replica), out _);
        Log.Removed(_options.Logger, replica.ReplicaId);
    }

    /// <summary>How often a busy cgroup's removal is tried: 40 × the poll interval (2 s by default).</summary>
    private const int CgroupRemoveAttempts = 40;

    /// <summary>SIGKILL to every process the kernel has in the cgroup at <paramref name="path"/>.</summary>
    private static void KillMembers(ICgroupHierarchy cgroups, string path)
    {
        foreach (var pid in cgroups.Pids(path).Where(p => ProcFs.InCgroup(p, path)))
        {
            ProcFs.Signal(pid, ProcFs.SigKill);
        }
    }

    /// <summary>The cgroup garbage collection of <c>berth down</c>, as the kubelet's: every cgroup left below the app's folder
    /// (<c>berth/{app}/</c>) is removed, deepest first, then the folder itself. Such leftovers come from a replica whose
    /// group was still busy when it was removed, or a control plane killed between a stop and the removal. Processes are
    /// killed only in the groups named after one of <paramref name="ownReplicaIds"/> (this app's replicas): a same-named
    /// app in another folder shares <c>berth/{app}/</c>, and a group that still holds one of its processes cannot be
    /// removed, so it is left alone. Returns the groups still there (this app's busy ones are retried for
    /// <see cref="CgroupRemoveAttempts"/> poll intervals).</summary>
    public async Task<IReadOnlyList<string>> SweepCgroupsAsync(string app, IReadOnlySet<string> ownReplicaIds, CancellationToken cancellationToken)
    {
        try
        {
            CgroupDetector.ValidatePath(app);
        }
        catch (ArgumentException)
        {
            return []; // no cgroup was ever made for it
        }

        var cgroups = _placed;
        for (var attempt = 0; ; attempt++)
        {
            var left = SweepBelow(cgroups, app, ownReplicaIds);
            // Only this app's own groups are waited for; another app's busy ones will not empty by waiting.
            if (!left.Any(p => ownReplicaIds.Contains(Path.GetFileName(p))) || attempt == CgroupRemoveAttempts - 1)
            {
                foreach (var path in left)
                {
                    Log.CgroupBusy(_options.Logger, path);
                }

                return left;
            }

            await Task.Delay(_options.PollInterval, _options.TimeProvider, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Removes the groups below <paramref name="path"/>, then <paramref name="path"/>; returns those that stayed.</summary>
    private static List<string> SweepBelow(ICgroupHierarchy cgroups, string path, IReadOnlySet<string> ownReplicaIds)
    {
        var left = new List<string>();
        foreach (var child in cgroups.Children(path))
        {
            left.AddRange(SweepBelow(cgroups, $"{path}/{child}", ownReplicaIds));
        }

        if (ownReplicaIds.Contains(Path.GetFileName(path)))
        {
            KillMembers(cgroups, path);
        }

        // Tried even with a child left: on v1 it goes from every controller where it is empty.
        if (!cgroups.Remove(path) && left.Count == 0)
        {
            left.Add(path);
        }

        return left;
    }

    public async Task<ReplicaStatus> InspectAsync(ReplicaHandle replica, CancellationToken cancellationToken)
    {
        var record = Resolve(replica);
        var status = Inspect(record);
        var time = _options.TimeProvider;
        var started = time.GetTimestamp();

        // Between the replica's end and its exit record there are a few milliseconds; answer with the record.
        while (ReferenceEquals(status.Error, Finishing) && time.GetElapsedTime(started) < FinishingWait)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(5), time, cancellationToken).ConfigureAwait(false);
            status = Inspect(record);
        }

        return ReferenceEquals(status.Error, Finishing) ? status with { Error = null } : status;
    }

    public Task<ReplicaStatus> WaitForExitAsync(ReplicaHandle replica, CancellationToken cancellationToken) =>
        WaitAsync(Resolve(replica), Timeout.InfiniteTimeSpan, cancellationToken);

    public async IAsyncEnumerable<LogEntry> GetLogsAsync(ReplicaHandle replica, LogOptions options, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var record = Resolve(replica);
        var dir = record.Handle.StateDirectory!;
        await foreach (var entry in LogFiles.ReadAsync(
            Path.Combine(dir, SupervisorFiles.StdoutFile),
            Path.Combine(dir, SupervisorFiles.StderrFile),
            options,
            () => SupervisorFiles.ReadExit(dir) is not null || Inspect(record).State != ReplicaState.Running,
            _options.PollInterval,
            _options.TimeProvider,
            cancellationToken).ConfigureAwait(false))
        {
            yield return entry;
        }
    }

    public async Task<ReplicaStats> GetStatsAsync(ReplicaHandle replica, CancellationToken cancellationToken)
    {
        var record = Resolve(replica);
        var time = _options.TimeProvider;
        var key = Key(replica);
        var (cpu, memory, limit) = Sample(record);
        var now = time.GetTimestamp();
        if (!_cpuSamples.TryGetValue(key, out var previous) || time.GetElapsedTime(previous.Timestamp, now) > TimeSpan.FromMinutes(1))
        {
            previous = (cpu, now);
            await Task.Delay(_options.StatsSampleWindow, time, cancellationToken).ConfigureAwait(false);
            (cpu, memory, limit) = Sample(record);
            now = time.GetTimestamp();
        }

        _cpuSamples[key] = (cpu, now);
        var elapsed = time.GetElapsedTime(previous.Timestamp, now);
        var percent = elapsed > TimeSpan.Zero ? (cpu - previous.CpuNanos) / (elapsed.TotalMilliseconds * 1_000_000) * 100 : 0;
        return new ReplicaStats
        {
            CpuPercent = Math.Max(0, percent),
            MemoryUsage = new ByteSize(memory),
            MemoryLimit = limit is null ? null : new ByteSize(limit.Value),
            Timestamp = time.GetUtcNow(),
        };
    }

    /// <summary>Runs the command on the host beside the replica (a process replica has no container to enter), in
    /// <paramref name="workingDirectory"/>; cancelling kills it and its children.</summary>
    public async Task<ExecResult> ExecAsync(ReplicaHandle replica, IReadOnlyList<string> command, string? workingDirectory, CancellationToken cancellationToken)
    {
        if (command.Count == 0)
        {
            throw new ArgumentException("the command is empty", nameof(command));
        }

        // A replica in a pod: the command runs in the pod's network and mount namespaces (its loopback, its /etc/hosts).
        var pod = ReadRecord(replica.App, replica.ReplicaId)?.Handle.Pod ?? replica.Pod;
        var info = new ProcessStartInfo { FileName = pod is null ? command[0] : "nsenter", RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (pod is not null)
        {
            var target = pod.NamespacePath.Split('/')[2];
            foreach (var arg in (string[])["--target", target, .. pod.SocketHelper is null ? (string[])[] : ["--user", "--preserve-credentials"], "--net", "--mount", "--"])
            {
                info.ArgumentList.Add(arg);
            }

            info.ArgumentList.Add(command[0]);
        }

        foreach (var arg in command.Skip(1))
        {
            info.ArgumentList.Add(arg);
        }

        if (workingDirectory is not null)
        {
            info.WorkingDirectory = workingDirectory;
        }

        using var process = SysProcess.Start(info) ?? throw new InvalidOperationException($"could not start {command[0]}");
        var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
        try
        {
            await process.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }

        return new ExecResult(process.ExitCode, await stdout.ConfigureAwait(false) + await stderr.ConfigureAwait(false));
    }

    /// <summary>The apps that have replica records under this driver's state root (what 'berth down' stops when the
    /// control plane's own store cannot be read).</summary>
    public IReadOnlyList<string> RecordedApps()
    {
        var dir = Path.Combine(_options.StateRoot, RegistryFolder);
        return Directory.Exists(dir) ? [.. Directory.EnumerateDirectories(dir).Select(Path.GetFileName).OfType<string>().Order(StringComparer.Ordinal)] : [];
    }

    public Task<IReadOnlyList<ReplicaHandle>> ListAsync(string app, CancellationToken cancellationToken)
    {
        var dir = Path.Combine(_options.StateRoot, RegistryFolder, app);
        IReadOnlyList<ReplicaHandle> handles = Directory.Exists(dir)
            ? [.. Directory.EnumerateFiles(dir, "*.json").Order(StringComparer.Ordinal).Select(ReadRecordFile).OfType<ProcessRecord>().Select(r => r.Handle)]
            : [];
        return Task.FromResult(handles);
    }

    public Task<string> EnsureNodeAsync(NodeCgroupSpec node, CancellationToken cancellationToken)
    {
        _cgroups.Ensure(node.Path, new CgroupLimits(node.Cpu, node.Memory, node.CpuSet));
        return Task.FromResult(node.Path);
    }

    public Task RemoveNodeAsync(string path, CancellationToken cancellationToken)
    {
        CgroupDetector.ValidatePath(path);
        if (!_placed.Remove(path))
        {
            throw new InvalidOperationException($"node cgroup '{path}' still holds replicas; remove them first");
        }

        // The app's folder goes too once its last node is gone.
        var parent = Path.GetDirectoryName(path);
        if (!string.IsNullOrEmpty(parent))
        {
            _placed.Remove(parent);
        }

        return Task.CompletedTask;
    }

    private ReplicaStatus Inspect(ProcessRecord record)
    {
        var dir = record.Handle.StateDirectory!;
        var pid = SupervisorFiles.ReadPid(dir);
        var exit = SupervisorFiles.ReadExit(dir);
        if (exit is not null)
        {
            return Exited(pid, exit);
        }

        if (pid is null)
        {
            return new ReplicaStatus { State = ReplicaState.Unknown, Error = $"no record of replica {record.Handle.ReplicaId} in {dir}" };
        }

        if (pid.Pid != record.Handle.Pid)
        {
            return new ReplicaStatus { State = ReplicaState.Unknown, Pid = record.Handle.Pid, Error = $"{dir} now belongs to another run (pid {pid.Pid})" };
        }

        if (ProcFs.IsAlive(pid.Pid, pid.StartTicks))
        {
            return new ReplicaStatus { State = ReplicaState.Running, Pid = pid.Pid, StartedAt = pid.StartedAt };
        }

        // The replica is gone; its supervisor, if alive, is about to write the exit record.
        if (ProcFs.IsAlive(pid.SupervisorPid, pid.SupervisorStartTicks))
        {
            return new ReplicaStatus { State = ReplicaState.Running, Pid = pid.Pid, StartedAt = pid.StartedAt, Error = Finishing };
        }

        if (SupervisorFiles.ReadExit(dir) is { } last)
        {
            return Exited(pid, last);
        }

        return new ReplicaStatus
        {
            State = ReplicaState.Unknown,
            Pid = pid.Pid,
            StartedAt = pid.StartedAt,
            Error = $"process {pid.Pid} is gone and its supervisor left no exit record (the supervisor was killed)",
        };
    }

    private static ReplicaStatus Exited(PidRecord? pid, ExitRecord exit) => new()
    {
        State = ReplicaState.Exited,
        Pid = pid?.Pid,
        ExitCode = exit.Code,
        Signal = exit.Signal == 0 ? null : exit.Signal,
        StartedAt = pid?.StartedAt,
        FinishedAt = exit.FinishedAt,
        OomKilled = exit.OomKills > 0,
        Error = exit.Error,
    };

    private async Task<ReplicaStatus> WaitAsync(ProcessRecord record, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var time = _options.TimeProvider;
        var started = time.GetTimestamp();
        while (true)
        {
            var status = Inspect(record);
            if (status.State != ReplicaState.Running)
            {
                return status;
            }

            if (timeout != Timeout.InfiniteTimeSpan && time.GetElapsedTime(started) >= timeout)
            {
                return ReferenceEquals(status.Error, Finishing) ? status with { Error = null } : status;
            }

            await Task.Delay(_options.PollInterval, time, cancellationToken).ConfigureAwait(false);
        }
    }

    private void Kill(ProcessRecord record)
    {
        var pid = record.Handle.Pid!.Value;
        if (ProcFs.IsAlive(pid, record.Handle.ProcessStartTicks))
        {
            ProcFs.Signal(-pid, ProcFs.SigKill);
            ProcFs.Signal(pid, ProcFs.SigKill);
        }

        if (record.CgroupPath is not null)
        {
            KillMembers(_placed, record.CgroupPath);
        }
    }

    private (long CpuNanos, long Memory, long? Limit) Sample(ProcessRecord record)
    {
        if (record.CgroupPath is not null && _placed.Usage(record.CgroupPath) is { } usage)
        {
            return (usage.CpuNanoseconds, usage.MemoryBytes, usage.MemoryLimitBytes);
        }

        // No cgroup: the main process alone, from /proc.
        var pid = record.Handle.Pid!.Value;
        if (ProcFs.IsAlive(pid, record.Handle.ProcessStartTicks) && ProcFs.ReadStat(pid) is { } stat)
        {
            return (stat.CpuTicks * (1_000_000_000 / UserHz), ProcFs.ResidentBytes(pid) ?? 0, null);
        }

        return (0, 0, null);
    }

    private bool RemoveCgroup(ICgroupHierarchy cgroups, string path, string? appCgroup, bool log = true)
    {
        if (!cgroups.Remove(path))
        {
            if (log)
            {
                Log.CgroupBusy(_options.Logger, path);
            }

            return false;
        }

        if (appCgroup is not null)
        {
            cgroups.Remove(appCgroup); // fails harmlessly while other replicas of the app remain
        }

        return true;
    }

    private static string CgroupPath(ReplicaSpec spec) => spec.Node is null ? $"{spec.App}/{spec.ReplicaId}" : $"{spec.Node}/{spec.ReplicaId}";

    private static List<string> BuildArgv(ReplicaSpec spec)
    {
        List<string> argv = [.. spec.Entrypoint ?? [], .. spec.Command];
        if (argv.Count == 0)
        {
            throw new ReplicaStartException($"replica {spec.ReplicaId} of service {spec.Service} has no command: set 'run' (or 'command') in the spec");
        }

        if (spec.Shell)
        {
            // The spec asked for a shell: hand the words to sh -c as one script, as Compose does for a string command.
            return ["/bin/sh", "-c", string.Join(' ', argv)];
        }

        return argv;
    }

    private Dictionary<string, string> BuildEnvironment(ReplicaSpec spec, IReadOnlyList<(MountedFile File, string HostPath)> files)
    {
        var env = InheritedEnvironment.Select(_options.HostEnvironment(), spec.InheritEnv);

        // One assigned port and no PORT given: the convention most servers read.
        if (spec.Ports.Count == 1 && !spec.Env.ContainsKey("PORT"))
        {
            env["PORT"] = spec.Ports.Values.First().ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        foreach (var (key, value) in spec.Env)
        {
            env[key] = value;
        }

        // A process cannot mount: its secrets and configs are files under its state folder, named in BERTH_SECRET_NAME /
        // BERTH_CONFIG_NAME, and an env value that names the file where a container would see it (the
        // POSTGRES_PASSWORD_FILE=/run/secrets/db-password pattern) is pointed at the real file.
        foreach (var (file, hostPath) in files)
        {
            env[$"BERTH_{(file.Kind == MountedFileKind.Secret ? "SECRET" : "CONFIG")}_{EnvName(file.Name)}"] = hostPath;
            foreach (var key in spec.Env.Where(kv => kv.Value == file.Target).Select(kv => kv.Key))
            {
                env[key] = hostPath;
            }
        }

        // Named volumes are kept folders (under VolumesRoot), so data outlives the replica as a Docker volume's does.
        foreach (var mount in spec.Volumes.Where(v => v.Type == VolumeType.Volume && v.Source is not null && _options.VolumesRoot is not null))
        {
            var folder = Path.Combine(_options.VolumesRoot!, mount.VolumeName ?? mount.Source!);
            Directory.CreateDirectory(folder);
            env[$"BERTH_VOLUME_{EnvName(mount.Source!)}"] = folder;
            foreach (var key in spec.Env.Where(kv => kv.Value == mount.Target).Select(kv => kv.Key))
            {
                env[key] = folder;
            }
        }

        return env;
    }

    private static string EnvName(string name) => new([.. name.ToUpperInvariant().Select(c => char.IsAsciiLetterOrDigit(c) ? c : '_')]);

    private static byte[] EncodeInput(List<string> argv, Dictionary<string, string> env)
    {
        var text = new StringBuilder();
        text.Append(argv.Count).Append('\0');
        foreach (var arg in argv)
        {
            if (arg.Contains('\0', StringComparison.Ordinal))
            {
                throw new ReplicaStartException("a command argument contains a NUL character, which no process can receive");
            }

            text.Append(arg).Append('\0');
        }

        foreach (var (key, value) in env)
        {
            if (!key.Contains('\0', StringComparison.Ordinal) && !value.Contains('\0', StringComparison.Ordinal))
            {
                text.Append(key).Append('=').Append(value).Append('\0');
            }
        }

        return Encoding.UTF8.GetBytes(text.ToString());
    }

    private static async Task<string> ReadAvailableAsync(StreamReader reader)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        try
        {
            return await reader.ReadToEndAsync(cts.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return "";
        }
    }

    private static string InstallSupervisor(string stateRoot)
    {
        using var resource = typeof(ProcessDriver).Assembly.GetManifestResourceStream("berth-supervisor.pl")!;
        using var memory = new MemoryStream();
        resource.CopyTo(memory);
        var bytes = memory.ToArray();

        // Named by content so a newer control plane never rewrites a script that older supervisors run from.
        var hash = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(bytes))[..12];
        var dir = Path.Combine(stateRoot, "bin");
        Directory.CreateDirectory(dir);
        var path = Path.Combine(dir, $"berth-supervisor-{hash}.pl");
        if (!File.Exists(path))
        {
            var temp = $"{path}.{Environment.ProcessId}.tmp";
            File.WriteAllBytes(temp, bytes);
            File.Move(temp, path, overwrite: true);
        }

        return path;
    }

    private ProcessRecord Resolve(ReplicaHandle handle)
    {
        if (ReadRecord(handle.App, handle.ReplicaId) is { } record)
        {
            return record;
        }

        if (handle.StateDirectory is null || handle.Pid is null)
        {
            throw new InvalidOperationException($"replica {handle.ReplicaId} of {handle.App} is not known to the process driver (never started here, or removed)");
        }

        return new ProcessRecord(handle, null, null);
    }

    private static string Key(ReplicaHandle handle) => $"{handle.App}/{handle.ReplicaId}";

    private string RecordPath(string app, string replicaId) => Path.Combine(_options.StateRoot, RegistryFolder, app, replicaId + ".json");

    private ProcessRecord? ReadRecord(string app, string replicaId) => ReadRecordFile(RecordPath(app, replicaId));

    private static ProcessRecord? ReadRecordFile(string path)
    {
        try
        {
            return JsonSerializer.Deserialize<ProcessRecord>(File.ReadAllText(path), Json);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException or JsonException)
        {
            return null;
        }
    }

    private void WriteRecord(ProcessRecord record)
    {
        var path = RecordPath(record.Handle.App, record.Handle.ReplicaId);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var temp = path + ".tmp";
        File.WriteAllText(temp, JsonSerializer.Serialize(record, Json));
        File.Move(temp, path, overwrite: true);
    }

    /// <summary>What the driver keeps per replica so a new control plane can find it: the handle and its cgroup.</summary>
    internal sealed record ProcessRecord(ReplicaHandle Handle, string? CgroupPath, string? AppCgroup);
}
