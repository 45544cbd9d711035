namespace Berth.Cli.Tests.Shell;

/// <summary>One detached app of process services for <c>berth exec</c>: web (limits, a secret, a working folder), pod
/// (<c>network: isolated</c>) and idle (stopped by the test that needs a stopped service).</summary>
public sealed class ExecApp : IAsyncLifetime
{
    public string Dir { get; } = Directory.CreateTempSubdirectory("berth-cli-exec-").FullName;

    public string WorkDir { get; } = Directory.CreateTempSubdirectory("berth-cli-exec-wd-").FullName;

    public CliResult Up { get; private set; } = new(-1, "", "");

    public BerthCli Cli() => new(Dir) { Environment = { ["XDG_STATE_HOME"] = Path.Combine(Dir, "xdg") } };

    public async Task InitializeAsync()
    {
        await File.WriteAllTextAsync(Path.Combine(Dir, "berth.yaml"), $$"""
            name: exec-{{Guid.NewGuid().ToString("N")[..8]}}
            services:
              web:
                run: [perl, -e, "sleep 3600"]
                working_dir: {{WorkDir}}
                environment: {MODE: prod}
                secrets: {TOKEN: hunter2}
                resources: {limits: {cpu: 500m, memory: 128Mi} }
                stop_grace_period: 1s
              pod:
                run: [perl, -e, "sleep 3600"]
                network: isolated
                stop_grace_period: 1s
              idle:
                run: [perl, -e, "sleep 3600"]
                stop_grace_period: 1s
              db:
                run: [perl, -e, "sleep 3600"]
                stop_grace_period: 1s
              task:
                run: [sh, -c, "echo default $$MODE"]
                replicas: 0
                depends_on: [db]
                environment: {MODE: dev}
                secrets: {TASK_TOKEN: s3cret}
            """);
        Up = await Cli().RunAsync("up", "--wait");
    }

    public async Task DisposeAsync()
    {
        await Cli().DownAsync();
        Directory.Delete(Dir, recursive: true);
        Directory.Delete(WorkDir, recursive: true);
    }
}

[Collection("real processes")]
public sealed class ExecCliTests(ExecApp app) : IClassFixture<ExecApp>
{
    private readonly BerthCli _cli = app.Cli();

    private async Task<int> PidAsync(string service)
    {
        Assert.True(app.Up.Code == 0, app.Up.ToString());
        return (await _cli.PsAsync()).First(r => r.GetProperty("service").GetString() == service).GetProperty("pid").GetInt32();
    }

    [Fact]
    public async Task Exec_Env_IsTheReplicasOwnIncludingSecretsAndWorkingDir()
    {
        var pid = await PidAsync("web");
        var env = await _cli.OkAsync("exec", "web", "env");
        var pwd = await _cli.OkAsync("exec", "web", "pwd");

        var replica = File.ReadAllText($"/proc/{pid}/environ").Split('\0', StringSplitOptions.RemoveEmptyEntries).Order(StringComparer.Ordinal);
        Assert.Equal(replica, env.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries).Order(StringComparer.Ordinal));
        Assert.Contains("TOKEN=hunter2", env.Out.Split('\n'));
        Assert.Contains("MODE=prod", env.Out.Split('\n'));
        Assert.Equal(app.WorkDir + "\n", pwd.Out);
        Assert.DoesNotContain("hunter2", env.Err, StringComparison.Ordinal);
    }

    [CgroupFact]
    public async Task Exec_Cgroup_IsTheReplicasSoItsLimitsHold()
    {
        var pid = await PidAsync("web");
        var result = await _cli.OkAsync("exec", "web", "cat", "/proc/self/cgroup");

        Assert.Equal(File.ReadAllText($"/proc/{pid}/cgroup"), result.Out);
        Assert.NotEqual(File.ReadAllText("/proc/self/cgroup"), result.Out);
    }

    [Fact]
    public async Task Exec_ReplicaInPod_RunsInItsNetworkNamespace()
    {
        var pid = await PidAsync("pod");
        var result = await _cli.OkAsync("exec", "pod", "readlink", "/proc/self/ns/net");
        var hosts = await _cli.OkAsync("exec", "pod", "cat", "/etc/hosts");

        var replicaNet = new FileInfo($"/proc/{pid}/ns/net").LinkTarget;
        Assert.Equal(replicaNet + "\n", result.Out);
        Assert.NotEqual(new FileInfo("/proc/self/ns/net").LinkTarget, replicaNet);
        Assert.Contains("\tweb", hosts.Out, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Exec_CommandExitCodeAndOptions_AreBerthsAndReachTheCommand()
    {
        await PidAsync("web");
        var failed = await _cli.RunAsync("exec", "web", "sh", "-c", "echo out; echo err >&2; exit 7");
        // Options before the service are berth's, after it the command's (ls -d), as in compose.
        var options = await _cli.RunAsync("exec", "-e", "X=from-e", "-w", "/", "web", "sh", "-c", "echo $X $MODE; pwd; ls -d /");
        var byReplica = await _cli.RunAsync("exec", (await _cli.PsAsync()).First(r => r.GetProperty("service").GetString() == "web").GetProperty("id").GetString()!, "true");
        var piped = await _cli.PipeAsync("line one\nline two\n", "exec", "web", "wc", "-l");

        Assert.Equal((7, "out\n", "err\n"), (failed.Code, failed.Out, failed.Err));
        Assert.Equal((0, "from-e prod\n/\n/\n"), (options.Code, options.Out));
        Assert.Equal(0, byReplica.Code);
        Assert.Equal((0, "2"), (piped.Code, piped.Out.Trim()));
    }

    [Fact]
    public async Task Exec_MissingCommand_Exits127()
    {
        await PidAsync("web");
        var result = await _cli.RunAsync("exec", "web", "no-such-program-here");

        Assert.Equal(127, result.Code);
        Assert.Contains("berth exec: cannot run 'no-such-program-here': No such file or directory", result.Err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Exec_UnknownService_SaysDidYouMeanAndExits5()
    {
        await PidAsync("web");
        var result = await _cli.RunAsync("exec", "wbe", "env");

        Assert.Equal(ExitCodes.NotFound, result.Code);
        Assert.Equal("berth: error: no service or replica 'wbe'; did you mean 'web'?\n", result.Err);
        Assert.Equal("", result.Out);
    }

    [Fact]
    public async Task Exec_BadIndexAndBadEnv_SayWhatIsWrong()
    {
        await PidAsync("web");
        var index = await _cli.RunAsync("exec", "--index", "2", "web", "true");
        var env = await _cli.RunAsync("exec", "-e", "NOEQUALS", "web", "true");

        Assert.Equal((ExitCodes.NotFound, "berth: error: --index 2: service web has 1 running replica(s), numbered from 1\n"), (index.Code, index.Err));
        Assert.Equal((ExitCodes.Usage, "berth exec: -e wants KEY=VALUE (e.g. -e DEBUG=1), not 'NOEQUALS'\nRun 'berth exec --help' for usage.\n"), (env.Code, env.Err));
    }

    [Fact]
    public async Task Exec_StoppedService_SaysHowToStartItAndExits3()
    {
        await PidAsync("idle");
        await _cli.OkAsync("stop", "idle");
        try
        {
            var result = await _cli.RunAsync("exec", "idle", "true");

            Assert.Equal(ExitCodes.Failed, result.Code);
            Assert.Equal("berth: error: service idle is stopped, so no replica runs; 'berth start idle' starts it\n", result.Err);
        }
        finally
        {
            await _cli.OkAsync("start", "idle");
        }
    }

    [Fact]
    public async Task Exec_OnATerminal_CommandGetsATtyUnlessDashT()
    {
        await PidAsync("web");
        var tty = await InTerminalAsync(app.Dir, "exec", "web", "tty");
        var noTty = await InTerminalAsync(app.Dir, "exec", "-T", "web", "tty");

        Assert.Matches(@"^/dev/pts/\d+\r?\n$", tty);
        Assert.Equal("not a tty", noTty.Trim());
    }

    [Fact]
    public async Task Exec_OnATerminal_CommandGetsAPtyOfItsOwnLeadingItsSessionWithTheWindowSize()
    {
        await PidAsync("web");
        // berth runs on script's pty (33 rows, 101 columns); the command must get another pty, as its controlling terminal
        // in a session it leads (what job control needs), with that size; berth's exit code is the command's.
        var (code, output) = await InTerminalShellAsync(app.Dir,
            "stty rows 33 cols 101; echo outer $(tty); BERTH exec web sh -c 'echo inner $(tty); test -t 0 && test -t 1 && echo all-tty; echo size $(stty size); echo stat $(cat /proc/$$/stat); exit 7'");

        var lines = output.Split('\n').Select(l => l.TrimEnd('\r')).ToList();
        string Line(string prefix) => lines.SingleOrDefault(l => l.StartsWith(prefix + " ", StringComparison.Ordinal))?[(prefix.Length + 1)..] ?? throw new Xunit.Sdk.XunitException($"no '{prefix} …' line in:\n{output}");
        Assert.Equal(7, code);
        Assert.Matches(@"^/dev/pts/\d+$", Line("outer"));
        Assert.Matches(@"^/dev/pts/\d+$", Line("inner"));
        Assert.NotEqual(Line("outer"), Line("inner"));
        Assert.Contains("all-tty", lines);
        Assert.Equal("33 101", Line("size"));
        // /proc/PID/stat: pid (comm) state ppid pgrp session tty_nr tpgid …
        var stat = Line("stat");
        var pid = int.Parse(stat.Split(' ')[0], CultureInfo.InvariantCulture);
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        var (pgrp, session, ttyNr, tpgid) = (int.Parse(fields[2], CultureInfo.InvariantCulture), int.Parse(fields[3], CultureInfo.InvariantCulture),
            int.Parse(fields[4], CultureInfo.InvariantCulture), int.Parse(fields[5], CultureInfo.InvariantCulture));
        Assert.Equal(pid, session);
        Assert.NotEqual(0, ttyNr);
        Assert.Equal(pgrp, tpgid);
    }

    [Fact]
    public async Task Exec_OnATerminalInAPod_CommandGetsItsOwnPtyAndItsExitCodeIsBerths()
    {
        await PidAsync("pod");
        var (code, output) = await InTerminalShellAsync(app.Dir, "echo outer $(tty); BERTH exec pod sh -c 'echo inner $(tty); exit 3'");

        var lines = output.Split('\n').Select(l => l.TrimEnd('\r')).ToList();
        Assert.Equal(3, code);
        var outer = lines.Single(l => l.StartsWith("outer ", StringComparison.Ordinal));
        var inner = lines.Single(l => l.StartsWith("inner ", StringComparison.Ordinal));
        Assert.Matches(@"^inner /dev/pts/\d+$", inner);
        Assert.NotEqual(outer[6..], inner[6..]);
    }

    [CgroupFact]
    public async Task Top_Service_ListsTheReplicaAndWhatExecStartedInIt()
    {
        var pid = await PidAsync("web");
        await using var exec = _cli.Start("exec", "web", "sleep", "127");
        List<JsonElement> processes = [];
        await Poll.UntilAsync(async () =>
        {
            var top = JsonDocument.Parse((await _cli.OkAsync("top", "web", "-o", "json")).Out).RootElement;
            processes = [.. top.EnumerateArray().Single().GetProperty("processes").EnumerateArray().Select(p => p.Clone())];
            return processes.Any(p => p.GetProperty("command").GetString() == "sleep 127");
        }, TimeSpan.FromSeconds(60), "the command 'berth exec web sleep 127' runs to show in 'berth top web' (it joins the replica's cgroup)");
        var table = await _cli.OkAsync("top", "web");

        Assert.Contains(processes, p => p.GetProperty("pid").GetInt32() == pid && p.GetProperty("command").GetString() == "perl -e sleep 3600");
        Assert.All(processes, p => Assert.Equal("root", p.GetProperty("user").GetString()));
        var lines = table.Out.Split('\n');
        Assert.StartsWith("web-", lines[0], StringComparison.Ordinal);
        Assert.Matches(@"^PID +PPID +USER +%CPU +RSS +TIME +COMMAND$", lines[1]);
        Assert.Contains(lines, l => l.StartsWith(pid.ToString(CultureInfo.InvariantCulture) + " ", StringComparison.Ordinal) && l.EndsWith("perl -e sleep 3600", StringComparison.Ordinal));
    }

    [CgroupFact]
    public async Task Stats_NoStream_ReportsCpuMemoryAgainstTheLimitAndPids()
    {
        await PidAsync("web");
        var json = await _cli.OkAsync("stats", "--no-stream", "-o", "json", "web");
        var table = await _cli.OkAsync("stats", "--no-stream", "web");

        var web = JsonDocument.Parse(json.Out).RootElement.EnumerateArray().Single();
        Assert.Equal("web", web.GetProperty("service").GetString());
        Assert.Equal(128L << 20, web.GetProperty("memoryLimitBytes").GetInt64());
        Assert.InRange(web.GetProperty("memoryBytes").GetInt64(), 1, 128L << 20);
        Assert.InRange(web.GetProperty("cpuPercent").GetDouble(), 0, 100);
        Assert.Equal(1, web.GetProperty("pids").GetInt32());
        var lines = table.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(2, lines.Length);
        Assert.Matches(@"^REPLICA +SERVICE +CPU % +MEM USAGE / LIMIT +MEM % +PIDS +RESTARTS +REQ/S +SERVICE REQ/S$", lines[0]);
        // web has no endpoint, so the mesh counts no requests for it: '-', and no rate in the JSON.
        Assert.Matches(@"^web-\w+ +web +\d+\.\d\d% +[\d.]+(B|KiB|MiB) / 128MiB +\d+\.\d\d% +1 +0 +- +-$", lines[1]);
        Assert.False(web.TryGetProperty("requestsPerSecond", out _), web.ToString());
    }

    [Fact]
    public async Task Stats_Streaming_PrintsAgainUntilCtrlC()
    {
        await PidAsync("web");
        await using var stats = _cli.Start("stats", "-o", "json", "web", "pod");
        await Poll.UntilAsync(() => stats.OutLines.Count >= 2, TimeSpan.FromSeconds(90), "two refreshes of 'berth stats -o json' (one compact line each)");
        await stats.InterruptAsync();
        var result = await stats.WaitAsync(TimeSpan.FromSeconds(60), "it to end on Ctrl-C");

        Assert.Equal(ExitCodes.Cancelled, result.Code);
        Assert.All(stats.OutLines, l => Assert.Equal(["pod", "web"], JsonDocument.Parse(l).RootElement.EnumerateArray().Select(r => r.GetProperty("service").GetString()).Order()));
    }

    [Fact]
    public async Task TopAndStats_UnknownService_SayDidYouMean()
    {
        await PidAsync("web");
        var top = await _cli.RunAsync("top", "wbe");
        var stats = await _cli.RunAsync("stats", "--no-stream", "wbe");

        Assert.Equal((ExitCodes.NotFound, "berth: error: no service 'wbe'; did you mean 'web'?\n"), (top.Code, top.Err));
        Assert.Equal((ExitCodes.NotFound, "berth: error: no service 'wbe'; did you mean 'web'?\n"), (stats.Code, stats.Err));
    }

    [Fact]
    public async Task Run_ServiceWithNoReplicas_RunsItsCommandWithItsEnvironmentAndReturnsTheExitCode()
    {
        await PidAsync("web");
        var own = await _cli.RunAsync("run", "task");
        var given = await _cli.RunAsync("run", "--rm", "-e", "EXTRA=x", "task", "sh", "-c", "echo $TASK_TOKEN $EXTRA $BERTH_REPLICA; exit 4");
        var piped = await _cli.PipeAsync("a\nb\n", "run", "--rm", "task", "wc", "-l");

        Assert.Equal((0, "default dev\n"), (own.Code, own.Out));
        Assert.Matches(@"^berth: task-run-[0-9a-f]{5}: one-off replica of task started$", own.Err.Split('\n')[^2]);
        Assert.Equal(4, given.Code);
        Assert.Matches(@"^s3cret x task-run-[0-9a-f]{5}\n$", given.Out);
        Assert.Equal((0, "2"), (piped.Code, piped.Out.Trim()));
    }

    [CgroupFact]
    public async Task Run_OneOff_HasItsOwnCgroupAndIsNeitherListedNorCounted()
    {
        await PidAsync("web");
        await using var run = _cli.Start("run", "--rm", "web", "sh", "-c", "echo $BERTH_REPLICA; grep memory /proc/self/cgroup; sleep 6");
        await Poll.UntilAsync(() => run.OutLines.Count >= 2, TimeSpan.FromSeconds(90), "the one-off to print its replica id and cgroup");
        var id = run.OutLines[0];
        var replicas = await _cli.PsAsync();
        var result = await run.WaitAsync(TimeSpan.FromSeconds(90), "the one-off's command to end");

        Assert.Equal(0, result.Code);
        Assert.Matches("^web-run-[0-9a-f]{5}$", id);
        Assert.EndsWith("/" + id, run.OutLines[1], StringComparison.Ordinal);
        Assert.DoesNotContain(replicas, r => r.GetProperty("id").GetString() == id);
        Assert.Single(replicas, r => r.GetProperty("service").GetString() == "web");
    }

    [Fact]
    public async Task Run_StoppedDependency_IsStartedUnlessNoDeps()
    {
        await PidAsync("db");
        async Task<bool> DbStoppedAsync() => (await _cli.PsAsync()).All(r => r.GetProperty("service").GetString() != "db");
        await _cli.OkAsync("stop", "db");
        var noDeps = await _cli.RunAsync("run", "--rm", "--no-deps", "task", "true");
        var stillStopped = await DbStoppedAsync();
        var withDeps = await _cli.RunAsync("run", "--rm", "task", "true");
        var db = (await _cli.PsAsync()).Where(r => r.GetProperty("service").GetString() == "db").Select(r => r.GetProperty("phase").GetString()).ToList();

        Assert.Equal(0, noDeps.Code);
        Assert.True(stillStopped, "run --no-deps left db stopped");
        Assert.Equal(0, withDeps.Code);
        Assert.Contains("berth: db: started (a dependency of task)", withDeps.Err.Split('\n'));
        Assert.Equal(["ready"], db);
    }

    [Fact]
    public async Task Run_UnknownService_SaysDidYouMean()
    {
        await PidAsync("web");
        var result = await _cli.RunAsync("run", "tsak", "true");

        Assert.Equal((ExitCodes.NotFound, "berth: error: no service 'tsak'; did you mean 'task'?\n"), (result.Code, result.Err));
    }

    [Fact]
    public async Task Completion_NewCommands_AreSuggested()
    {
        var ex = await _cli.OkAsync("[suggest:8]", "berth ex");
        var st = await _cli.OkAsync("[suggest:9]", "berth sta");
        var to = await _cli.OkAsync("[suggest:8]", "berth to");
        var ru = await _cli.OkAsync("[suggest:8]", "berth ru");

        Assert.Equal(["exec"], ex.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains("stats", st.Out.Split('\n'));
        Assert.Equal(["top", "stop"], to.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Equal(["run"], ru.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    /// <summary>Runs <paramref name="line"/> with <c>sh</c> on a pty made by <c>script</c>, BERTH standing for berth; its exit code and output.
    /// script's stdin stays open until it ends: at its end script writes a NUL into its pty, which berth would pass on to the
    /// command's own pty as a key (echoed "^@").</summary>
    internal static async Task<(int Code, string Output)> InTerminalShellAsync(string dir, string line)
    {
        var berth = "dotnet '" + Path.Combine(AppContext.BaseDirectory, "berth.dll") + "'";
        var info = new ProcessStartInfo("script", ["-qec", line.Replace("BERTH", berth, StringComparison.Ordinal), "/dev/null"])
        {
            WorkingDirectory = dir, RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        info.Environment["NO_COLOR"] = "1";
        info.Environment["SHELL"] = "/bin/sh";
        info.Environment["XDG_STATE_HOME"] = Path.Combine(dir, "xdg");
        using var process = Process.Start(info)!;
        var output = process.StandardOutput.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(BerthCli.DefaultTimeout);
        await process.WaitForExitAsync(timeout.Token);
        process.StandardInput.Close();
        return (process.ExitCode, (await output).Replace("\0", "", StringComparison.Ordinal));
    }

    /// <summary>Runs <c>berth args…</c> on a terminal of its own (util-linux <c>script</c> makes a pty; bsdutils is Essential
    /// on Debian) and returns what it printed there.</summary>
    internal static async Task<string> InTerminalAsync(string dir, params string[] args)
    {
        static string Quote(string s) => "'" + s.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
        return (await InTerminalShellAsync(dir, "BERTH " + string.Join(' ', args.Select(Quote)))).Output;
    }
}
