using ProcFs = Berth.Runtime.Process.ProcFs;

namespace Berth.Runtime.Tests.Process;

public sealed class ProcessDriverTests
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task StartAsync_CommandWritingBothStreams_LogsKeptApartAndTimestamped()
    {
        await using var scope = new ProcessDriverScope(useCgroups: false);
        var before = DateTimeOffset.UtcNow.AddSeconds(-1);
        var handle = await scope.StartAsync(scope.Perl("echo", "print qq(out 1\\nout 2\\n); print STDERR qq(err 1\\n); exit 3"));

        var status = await WaitAsync(scope, handle);
        var logs = await scope.Driver.GetLogsAsync(handle, new LogOptions(), CancellationToken.None).ToListAsync();

        Assert.Equal(ReplicaState.Exited, status.State);
        Assert.Equal(3, status.ExitCode);
        Assert.Null(status.Signal);
        Assert.False(status.OomKilled);
        Assert.Equal(["out 1", "out 2"], logs.Texts(LogStream.Stdout));
        Assert.Equal(["err 1"], logs.Texts(LogStream.Stderr));
        Assert.All(logs, e => Assert.InRange(e.Timestamp, before, DateTimeOffset.UtcNow.AddSeconds(1)));
        Assert.NotNull(status.StartedAt);
        Assert.True(status.FinishedAt >= status.StartedAt);
    }

    [Fact]
    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    public async Task StartAsync_SecretsConfigsAndNamedVolumes_AreFilesAndFoldersNamedInTheEnvironment()
    {
        await using var scope = new ProcessDriverScope(useCgroups: false);
        var spec = scope.Spec("files", "sh", "-c", "cat \"$POSTGRES_PASSWORD_FILE\"; echo; cat \"$BERTH_CONFIG_APP_CONFIG\"; echo; echo kept > \"$BERTH_VOLUME_DATA/f\"; cat \"$DATA_DIR/f\"") with
        {
            Env = System.Collections.Immutable.ImmutableSortedDictionary<string, string>.Empty
                .Add("POSTGRES_PASSWORD_FILE", "/run/secrets/db-password").Add("DATA_DIR", "/var/lib/data"),
            Files =
            [
                new MountedFile { Name = "db-password", Kind = MountedFileKind.Secret, Target = "/run/secrets/db-password", Content = "s3cret" },
                new MountedFile { Name = "app-config", Kind = MountedFileKind.Config, Target = "/app-config", Content = "fast" },
            ],
            Volumes = [new VolumeMount { Type = VolumeType.Volume, Source = "data", VolumeName = "app_data", Target = "/var/lib/data" }],
        };
        var handle = await scope.StartAsync(spec);

        var status = await WaitAsync(scope, handle);
        var logs = await scope.Driver.GetLogsAsync(handle, new LogOptions(), CancellationToken.None).ToListAsync();

        Assert.Equal(0, status.ExitCode);
        Assert.Equal(["s3cret", "fast", "kept"], logs.Texts(LogStream.Stdout));
        Assert.Equal("kept\n", File.ReadAllText(Path.Combine(scope.Root, "volumes", "app_data", "f")));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.GroupRead | UnixFileMode.OtherRead,
            File.GetUnixFileMode(Path.Combine(scope.Root, "replicas", "files", "files", "secrets", "db-password")));
    }

    /// <summary>What the operator's shell holds (issue #14 §3 counted 63 variables reaching replicas).</summary>
    private static readonly Dictionary<string, string> OperatorShell = new(StringComparer.Ordinal)
    {
        ["PATH"] = Environment.GetEnvironmentVariable("PATH") ?? InheritedEnvironment.DefaultPath,
        ["HOME"] = "/home/op", ["USER"] = "op", ["LANG"] = "en_US.UTF-8", ["LC_TIME"] = "de_DE.UTF-8", ["TZ"] = "Europe/Berlin",
        ["TMPDIR"] = "/tmp/op", ["DOTNET_ROOT"] = "/opt/dotnet", ["ASPNETCORE_ENVIRONMENT"] = "Development",
        ["https_proxy"] = "http://127.0.0.1:3128", ["NO_PROXY"] = "localhost",
        ["AWS_SECRET_ACCESS_KEY"] = "aws-secret", ["GITHUB_TOKEN"] = "ghp_x", ["SSH_AUTH_SOCK"] = "/tmp/ssh-agent", ["OLDPWD"] = "/home/op/src",
        ["LC_"] = "just-the-prefix",
    };

    private const string PrintEnvironment = "print qq($_=$ENV{$_}\n) for sort keys %ENV";

    [Fact]
    public async Task StartAsync_OperatorEnvironment_ReplicaGetsOnlyTheMinimalSetAndItsSpec()
    {
        await using var scope = new ProcessDriverScope(useCgroups: false, hostEnvironment: OperatorShell);
        var spec = scope.Perl("env", PrintEnvironment) with
        {
            Env = System.Collections.Immutable.ImmutableSortedDictionary<string, string>.Empty.Add("APP_MODE", "test").Add("TZ", "UTC"),
        };
        var handle = await scope.StartAsync(spec);

        Assert.Equal(0, (await WaitAsync(scope, handle)).ExitCode);
        var logs = await scope.Driver.GetLogsAsync(handle, new LogOptions(), CancellationToken.None).ToListAsync();
        var expected = OperatorShell.Where(kv => kv.Key is not ("AWS_SECRET_ACCESS_KEY" or "GITHUB_TOKEN" or "SSH_AUTH_SOCK" or "OLDPWD" or "LC_" or "TZ"))
            .Append(new("APP_MODE", "test")).Append(new("TZ", "UTC"))
            .Select(kv => $"{kv.Key}={kv.Value}").Order(StringComparer.Ordinal);
        Assert.Equal(expected, logs.Texts(LogStream.Stdout));
    }

    [Fact]
    public async Task StartAsync_InheritEnv_ReplicaGetsTheWholeEnvironmentUnderItsSpec()
    {
        await using var scope = new ProcessDriverScope(useCgroups: false, hostEnvironment: OperatorShell);
        var spec = scope.Perl("env", PrintEnvironment) with
        {
            InheritEnv = true,
            Env = System.Collections.Immutable.ImmutableSortedDictionary<string, string>.Empty.Add("GITHUB_TOKEN", "from-the-spec"),
        };
        var handle = await scope.StartAsync(spec);

        Assert.Equal(0, (await WaitAsync(scope, handle)).ExitCode);
        var logs = await scope.Driver.GetLogsAsync(handle, new LogOptions(), CancellationToken.None).ToListAsync();
        var expected = OperatorShell.Where(kv => kv.Key != "GITHUB_TOKEN").Append(new("GITHUB_TOKEN", "from-the-spec"))
            .Select(kv => $"{kv.Key}={kv.Value}").Order(StringComparer.Ordinal);
        Assert.Equal(expected, logs.Texts(LogStream.Stdout));
    }

    [Fact]
    public async Task ExecAsync_Command_RunsInTheWorkingDirectoryWithExitCodeAndOutput()
    {
        await using var scope = new ProcessDriverScope(useCgroups: false);
        var dir = Directory.CreateTempSubdirectory("berth-exec-").FullName;
        try
        {
            var handle = await scope.StartAsync(scope.Spec("exec", "sleep", "30"));

            var result = await scope.Driver.ExecAsync(handle, ["perl", "-e", "use Cwd; print getcwd(), qq(\n); print STDERR qq(err\n); exit 5"], dir, CancellationToken.None);

            Assert.Equal(5, result.ExitCode);
            Assert.Equal($"{dir}\nerr\n", result.Output);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task StartAsync_ArgvWithShellCharacters_PassedLiterallyWithoutShell()
    {
        await using var scope = new ProcessDriverScope(useCgroups: false);
        var handle = await scope.StartAsync(scope.Spec("argv", "perl", "-e", "print join(qq(|), @ARGV), qq(\\n)", "$HOME", "a b", "; rm -rf /", "*"));

        await WaitAsync(scope, handle);
        var logs = await scope.Driver.GetLogsAsync(handle, new LogOptions(), CancellationToken.None).ToListAsync();

        Assert.Equal(["$HOME|a b|; rm -rf /|*"], logs.Texts(LogStream.Stdout));
    }

    [Fact]
    public async Task StartAsync_ShellTrue_RunsThroughShell()
    {
        await using var scope = new ProcessDriverScope(useCgroups: false);
        var spec = scope.Spec("shell", "echo", "$GREETING", "&&", "echo", "two") with { Shell = true, Env = System.Collections.Immutable.ImmutableSortedDictionary<string, string>.Empty.Add("GREETING", "hello") };
        var handle = await scope.StartAsync(spec);

        await WaitAsync(scope, handle);
        var logs = await scope.Driver.GetLogsAsync(handle, new LogOptions(), CancellationToken.None).ToListAsync();

        Assert.Equal(["hello", "two"], logs.Texts(LogStream.Stdout));
    }

    [Fact]
    public async Task StartAsync_EnvWorkingDirAndPort_SeenByReplica()
    {
        await using var scope = new ProcessDriverScope(useCgroups: false);
        var work = Directory.CreateTempSubdirectory("berth-wd").FullName;
        var spec = scope.Perl("env", "use Cwd; print getcwd(), qq(\\n), $ENV{PORT}, qq(\\n), $ENV{SECRET}, qq(\\n)") with
        {
            WorkingDir = work,
            Ports = System.Collections.Immutable.ImmutableSortedDictionary<string, int>.Empty.Add("http", 5123),
            Env = System.Collections.Immutable.ImmutableSortedDictionary<string, string>.Empty.Add("SECRET", "s3cr3t"),
        };
        var handle = await scope.StartAsync(spec);

        await WaitAsync(scope, handle);
        var logs = await scope.Driver.GetLogsAsync(handle, new LogOptions(), CancellationToken.None).ToListAsync();

        Assert.Equal([work, "5123", "s3cr3t"], logs.Texts(LogStream.Stdout));

        // The environment travels over the supervisor's stdin, never through its argv or a file.
        var files = Directory.EnumerateFiles(scope.Root, "*", SearchOption.AllDirectories).Where(f => !f.EndsWith("stdout.log", StringComparison.Ordinal));
        Assert.All(files, f => Assert.DoesNotContain("s3cr3t", File.ReadAllText(f), StringComparison.Ordinal));
        Directory.Delete(work);
    }

    [Fact]
    public async Task StartAsync_CommandNotFound_ThrowsErrorNamingCommand()
    {
        await using var scope = new ProcessDriverScope(useCgroups: false);

        var error = await Assert.ThrowsAsync<ReplicaStartException>(() => scope.Driver.StartAsync(scope.Spec("missing", "no-such-command-xyz", "--flag"), CancellationToken.None));

        Assert.Equal("replica missing of service svc did not start: cannot run 'no-such-command-xyz': No such file or directory", error.Message);
    }

    [Fact]
    public async Task StartAsync_NoCommand_ThrowsErrorSayingWhatToSet()
    {
        await using var scope = new ProcessDriverScope(useCgroups: false);

        var error = await Assert.ThrowsAsync<ReplicaStartException>(() => scope.Driver.StartAsync(scope.Spec("empty"), CancellationToken.None));

        Assert.Equal("replica empty of service svc has no command: set 'run' (or 'command') in the spec", error.Message);
    }

    [Fact]
    public async Task StartAsync_EarlierRunOfSameIdWithoutRecord_EndsItBeforeStartingAndKeepsTheNewRunsStatus()
    {
        // The control plane was SIGKILLed after the supervisor's handshake and before it recorded the handle (issue #5):
        // the restarted control plane starts the replica id again in the same folder and cgroup.
        await using var scope = new ProcessDriverScope(useCgroups: false);
        var lost = await scope.StartAsync(scope.Perl("again", "$| = 1; print qq(first\\n); sleep 1 while 1"));
        await WaitForLineAsync(scope, lost, "first");
        File.Delete(Path.Combine(scope.Root, "runtime", "process", scope.App, "again.json"));

        var handle = await scope.StartAsync(scope.Perl("again", "$| = 1; print qq(second\\n); sleep 1 while 1"));

        Assert.False(ProcFs.IsAlive(lost.Pid!.Value, lost.ProcessStartTicks), "the earlier run is still running beside the new one");
        await WaitForLineAsync(scope, handle, "second");
        var status = await scope.Driver.InspectAsync(handle, CancellationToken.None);
        Assert.Equal(ReplicaState.Running, status.State);
        Assert.Equal(handle.Pid, status.Pid);
    }

    [Fact]
    public async Task Supervisor_FolderTakenByNewerRun_DoesNotWriteItsExitThere()
    {
        await using var scope = new ProcessDriverScope(useCgroups: false);
        var old = await scope.StartAsync(scope.Perl("taken", "$| = 1; print qq(up\\n); sleep 1 while 1"));
        await WaitForLineAsync(scope, old, "up");
        var dir = Path.Combine(scope.Root, "replicas", "taken");
        var supervisor = SupervisorFiles.ReadPid(dir)!;
        SupervisorFiles.ClearRun(dir); // what a newer run of the id does first

        ProcFs.Signal(old.Pid!.Value, ProcFs.SigKill);
        await Poll.UntilAsync(() => !ProcFs.IsAlive(supervisor.SupervisorPid, supervisor.SupervisorStartTicks), Long, "the old supervisor to finish");

        Assert.Null(SupervisorFiles.ReadExit(dir));
    }

    [Fact]
    public async Task StopAsync_ProcessHandlingSigterm_ExitsWithItsOwnCode()
    {
        await using var scope = new ProcessDriverScope(useCgroups: false);
        var handle = await StartPerlUntilAsync(scope, "term", "$| = 1; $SIG{TERM} = sub { print qq(bye\\n); exit 7 }; print qq(ready\\n); sleep 1 while 1", "ready");

        var status = await scope.Driver.StopAsync(handle, TimeSpan.FromSeconds(30), CancellationToken.None);

        Assert.Equal(ReplicaState.Exited, status.State);
        Assert.Equal(7, status.ExitCode);
        Assert.Null(status.Signal);
        var logs = await scope.Driver.GetLogsAsync(handle, new LogOptions(), CancellationToken.None).ToListAsync();
        Assert.Equal(["ready", "bye"], logs.Texts(LogStream.Stdout));
    }

    [Fact]
    public async Task StopAsync_ProcessIgnoringSigterm_KilledAfterGracePeriod()
    {
        await using var scope = new ProcessDriverScope(useCgroups: false);
        var handle = await StartPerlUntilAsync(scope, "stubborn", "$| = 1; $SIG{TERM} = 'IGNORE'; print qq(ready\\n); sleep 1 while 1", "ready");

        var clock = Stopwatch.StartNew();
        var status = await scope.Driver.StopAsync(handle, TimeSpan.FromSeconds(1), CancellationToken.None);

        StopContract.KilledAfterGrace(status, clock.Elapsed, TimeSpan.FromSeconds(1));
    }

    [Fact]
    public async Task StopAsync_ShellWithChildren_WholeProcessGroupStopped()
    {
        await using var scope = new ProcessDriverScope(useCgroups: false);
        var spec = scope.Spec("group", "perl -e 'sleep 300' & echo $!; wait") with { Shell = true };
        var handle = await scope.StartAsync(spec);
        var child = int.Parse((await WaitForLineAsync(scope, handle, null)).Text, System.Globalization.CultureInfo.InvariantCulture);

        await scope.Driver.StopAsync(handle, TimeSpan.FromSeconds(30), CancellationToken.None);

        await Poll.UntilAsync(() => !ProcFs.IsAlive(child, null), Long, $"the shell's child {child} to be stopped with it");
    }

    [Fact]
    public async Task StopAsync_AlreadyExited_ReturnsFinalStatusUnchanged()
    {
        await using var scope = new ProcessDriverScope(useCgroups: false);
        var handle = await RunPerlToExitAsync(scope, "done", "exit 4");

        var status = await scope.Driver.StopAsync(handle, TimeSpan.FromSeconds(1), CancellationToken.None);

        Assert.Equal(4, status.ExitCode);
    }

    [Fact]
    public async Task InspectAsync_ExitCode155_ReportedAsCodeNotSignal()
    {
        await using var scope = new ProcessDriverScope(useCgroups: false);
        var handle = await scope.StartAsync(scope.Perl("exit155", "exit 155"));

        var status = await WaitAsync(scope, handle);

        Assert.Equal(155, status.ExitCode);
        Assert.Null(status.Signal);
    }

    // A process that kills itself: the signal is reported as the signal, and the exit code as a shell would (128 + signal).
    [Theory]
    [InlineData("sigprof", "kill 'PROF', $$; sleep 5", 27, 155)]
    [InlineData("crash", "kill 'SEGV', $$", 11, 139)]
    public async Task InspectAsync_KilledBySignal_ReportsSignalAnd128PlusIt(string id, string script, int signal, int exitCode)
    {
        await using var scope = new ProcessDriverScope(useCgroups: false);
        var handle = await scope.StartAsync(scope.Perl(id, script));

        var status = await WaitAsync(scope, handle);

        Assert.Equal(signal, status.Signal);
        Assert.Equal(exitCode, status.ExitCode);
    }

    [Fact]
    public async Task GetLogsAsync_MegabytesOfOutput_EveryLineInOrder()
    {
        await using var scope = new ProcessDriverScope(useCgroups: false);
        const int lines = 200_000; // ~6 MB on stdout, and a line in 1000 on stderr
        var handle = await RunPerlToExitAsync(scope, "chatty", $"for my $i (1..{lines}) {{ print qq(line $i of the chatty replica\\n); print STDERR qq(err $i\\n) unless $i % 1000 }}");

        var logs = await scope.Driver.GetLogsAsync(handle, new LogOptions(), CancellationToken.None).ToListAsync();
        var stdout = logs.Texts(LogStream.Stdout);
        var stderr = logs.Texts(LogStream.Stderr);

        Assert.Equal(lines, stdout.Length);
        Assert.Equal(Enumerable.Range(1, lines).Select(i => $"line {i} of the chatty replica"), stdout);
        Assert.Equal(Enumerable.Range(1, lines / 1000).Select(i => $"err {i * 1000}"), stderr);
        Assert.True(logs.Zip(logs.Skip(1)).All(p => p.First.Timestamp <= p.Second.Timestamp), "merged entries are in time order");
    }

    [Fact]
    public async Task GetLogsAsync_LineLongerThan16KiB_SplitIntoPieces()
    {
        await using var scope = new ProcessDriverScope(useCgroups: false);
        var handle = await RunPerlToExitAsync(scope, "long", "print q(x) x 40000, qq(\nshort\n)");

        var logs = await scope.Driver.GetLogsAsync(handle, new LogOptions(), CancellationToken.None).ToListAsync();

        Assert.Equal([16384, 16384, 40000 - 32768, 5], logs.Select(e => e.Text.Length));
    }

    [Fact]
    public async Task StartAsync_User_RunsAsThatUserWhenRootElseSaysWhy()
    {
        await using var scope = new ProcessDriverScope(useCgroups: false);
        var spec = scope.Perl("user", "print qq($<\n)") with { User = "nobody" };

        if (Environment.UserName == "root")
        {
            var handle = await scope.StartAsync(spec);
            await WaitAsync(scope, handle);
            var logs = await scope.Driver.GetLogsAsync(handle, new LogOptions(), CancellationToken.None).ToListAsync();
            Assert.Equal(["65534"], logs.Texts(LogStream.Stdout));
        }
        else
        {
            var error = await Assert.ThrowsAsync<ReplicaStartException>(() => scope.Driver.StartAsync(spec, CancellationToken.None));
            Assert.StartsWith("replica user of service svc did not start: cannot switch to user nobody: ", error.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task GetLogsAsync_TailSinceAndStreamFilter_Applied()
    {
        await using var scope = new ProcessDriverScope(useCgroups: false);
        var handle = await RunPerlToExitAsync(scope, "tail", "$| = 1; print qq($_\\n) for 1..5; print STDERR qq(e\\n); sleep 2; print qq(late\\n)");
        var all = await scope.Driver.GetLogsAsync(handle, new LogOptions(), CancellationToken.None).ToListAsync();

        var tail = await scope.Driver.GetLogsAsync(handle, new LogOptions { Tail = 2, Stderr = false }, CancellationToken.None).ToListAsync();
        var since = await scope.Driver.GetLogsAsync(handle, new LogOptions { Since = all.Single(e => e.Text == "late").Timestamp }, CancellationToken.None).ToListAsync();
        var errors = await scope.Driver.GetLogsAsync(handle, new LogOptions { Stdout = false }, CancellationToken.None).ToListAsync();

        Assert.Equal(["5", "late"], tail.Select(e => e.Text));
        Assert.Equal(["late"], since.Select(e => e.Text));
        Assert.Equal(["e"], errors.Select(e => e.Text));
    }

    [Fact]
    public async Task GetLogsAsync_Follow_YieldsLinesAsWrittenAndEndsAtExit()
    {
        await using var scope = new ProcessDriverScope(useCgroups: false);
        var marker = Path.Combine(scope.Root, "go");
        var handle = await scope.StartAsync(scope.Perl("follow", $"$| = 1; print qq(first\\n); sleep 0.05 until -e '{marker}'; print qq(second\\n); exit 0"));
        List<string> seen = [];

        using var timeout = new CancellationTokenSource(Long);
        await foreach (var entry in scope.Driver.GetLogsAsync(handle, new LogOptions { Follow = true }, timeout.Token))
        {
            seen.Add(entry.Text);
            if (entry.Text == "first")
            {
                await File.WriteAllTextAsync(marker, "", timeout.Token); // the replica writes its second line only now
            }
        }

        Assert.Equal(["first", "second"], seen);
    }

    [Fact]
    public async Task GetStatsAsync_RunningProcess_ReportsMemory()
    {
        await using var scope = new ProcessDriverScope(useCgroups: false);
        var handle = await StartPerlUntilAsync(scope, "stats", "$| = 1; my $x = q(a) x (50 * 1024 * 1024); print qq(ready\\n); sleep 1 while 1", "ready");

        var stats = await scope.Driver.GetStatsAsync(handle, CancellationToken.None);

        Assert.InRange(stats.MemoryUsage.Bytes, 50L << 20, 1L << 30);
        Assert.InRange(stats.CpuPercent, 0, 200);
    }

    [Fact]
    public async Task ListAsync_NewDriverOnSameState_AdoptsRunningReplicaAndSeesItsExit()
    {
        await using var scope = new ProcessDriverScope(useCgroups: false);
        var marker = Path.Combine(scope.Root, "exit-now");
        var handle = await StartPerlUntilAsync(scope, "adopt", $"$| = 1; print qq(up\\n); sleep 0.05 until -e '{marker}'; print qq(down\\n); exit 42", "up");

        var restarted = new ProcessDriver(new ProcessDriverOptions { StateRoot = Path.Combine(scope.Root, "runtime"), UseCgroups = false });
        var adopted = Assert.Single(await restarted.ListAsync(scope.App, CancellationToken.None));
        var running = await restarted.InspectAsync(adopted, CancellationToken.None);
        await File.WriteAllTextAsync(marker, "");
        var exited = await restarted.WaitForExitAsync(adopted, new CancellationTokenSource(Long).Token);

        Assert.Equal(handle, adopted);
        Assert.Equal(ReplicaState.Running, running.State);
        Assert.Equal(handle.Pid, running.Pid);
        Assert.Equal(42, exited.ExitCode);
        var logs = await restarted.GetLogsAsync(adopted, new LogOptions(), CancellationToken.None).ToListAsync();
        Assert.Equal(["up", "down"], logs.Texts(LogStream.Stdout));
    }

    [Fact]
    public async Task InspectAsync_PidReusedByAnotherProcess_NotTakenForReplica()
    {
        await using var scope = new ProcessDriverScope(useCgroups: false);
        var handle = await StartPerlUntilAsync(scope, "reuse", "$| = 1; print qq(up\\n); sleep 1 while 1", "up");
        var dir = handle.StateDirectory!;

        // Make the records say the replica is a live process (this test host) that started at another time, as a
        // reused pid would look once the real replica and its supervisor are gone.
        await scope.Driver.StopAsync(handle, TimeSpan.Zero, CancellationToken.None);
        File.Delete(Path.Combine(dir, "exit"));
        var self = Environment.ProcessId;
        var ticks = ProcFs.ReadStat(self)!.Value.StartTicks;
        await File.WriteAllTextAsync(Path.Combine(dir, "pid"), $"pid={self}\nticks={ticks - 1}\nstarted=0\nsupervisor={self}\nsupervisor_ticks={ticks - 1}\n");
        var forged = handle with { Pid = self, ProcessStartTicks = ticks - 1 };

        var status = await new ProcessDriver(new ProcessDriverOptions { StateRoot = Path.Combine(scope.Root, "other"), UseCgroups = false })
            .InspectAsync(forged with { StateDirectory = dir }, CancellationToken.None);

        Assert.Equal(ReplicaState.Unknown, status.State);
        Assert.Equal($"process {self} is gone and its supervisor left no exit record (the supervisor was killed)", status.Error);
    }

    [Fact]
    public async Task RemoveAsync_StoppedReplica_GoneFromListButLogsKept()
    {
        await using var scope = new ProcessDriverScope(useCgroups: false);
        var handle = await RunPerlToExitAsync(scope, "rm", "print qq(kept\\n)");

        await scope.Driver.RemoveAsync(handle, CancellationToken.None);

        Assert.Empty(await scope.Driver.ListAsync(scope.App, CancellationToken.None));
        Assert.Contains(" kept", await File.ReadAllTextAsync(Path.Combine(handle.StateDirectory!, "stdout.log")), StringComparison.Ordinal);
    }

    [Fact]
    public async Task RemoveAsync_RunningReplica_RefusesWithHowToFix()
    {
        await using var scope = new ProcessDriverScope(useCgroups: false);
        var handle = await scope.StartAsync(scope.Perl("busy", "sleep 1 while 1"));

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => scope.Driver.RemoveAsync(handle, CancellationToken.None));

        Assert.Equal("replica busy is still running; stop it before removing it", error.Message);
    }

    [Fact]
    public void Capabilities_CgroupsTurnedOff_SaysLimitsNotEnforced()
    {
        var driver = new ProcessDriver(new ProcessDriverOptions { StateRoot = Path.Combine(Path.GetTempPath(), "berth-runtime-tests", "caps"), UseCgroups = false });

        Assert.False(driver.Capabilities.CpuLimitsEnforced);
        Assert.False(driver.Capabilities.MemoryLimitsEnforced);
        Assert.StartsWith("none: ", driver.Capabilities.LimitsMechanism, StringComparison.Ordinal);
    }

    internal static async Task<ReplicaStatus> WaitAsync(ProcessDriverScope scope, ReplicaHandle handle)
    {
        using var timeout = new CancellationTokenSource(Long);
        return await scope.Driver.WaitForExitAsync(handle, timeout.Token);
    }

    /// <summary>Runs the Perl <paramref name="script"/> as replica <paramref name="id"/> and returns once it has exited.</summary>
    private static async Task<ReplicaHandle> RunPerlToExitAsync(ProcessDriverScope scope, string id, string script)
    {
        var handle = await scope.StartAsync(scope.Perl(id, script));
        await WaitAsync(scope, handle);
        return handle;
    }

    /// <summary>Starts the Perl <paramref name="script"/> as replica <paramref name="id"/> and returns once it has printed the
    /// line <paramref name="ready"/>.</summary>
    private static async Task<ReplicaHandle> StartPerlUntilAsync(ProcessDriverScope scope, string id, string script, string ready)
    {
        var handle = await scope.StartAsync(scope.Perl(id, script));
        await WaitForLineAsync(scope, handle, ready);
        return handle;
    }

    internal static async Task<LogEntry> WaitForLineAsync(ProcessDriverScope scope, ReplicaHandle handle, string? text)
    {
        using var timeout = new CancellationTokenSource(Long);
        await foreach (var entry in scope.Driver.GetLogsAsync(handle, new LogOptions { Follow = true }, timeout.Token))
        {
            if (text is null || entry.Text == text)
            {
                return entry;
            }
        }

        throw new InvalidOperationException($"replica {handle.ReplicaId} exited without printing '{text}'");
    }
}
