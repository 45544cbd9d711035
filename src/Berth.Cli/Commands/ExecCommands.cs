using System.CommandLine;
using System.Globalization;
using System.Runtime.InteropServices;
using Berth.Cli.ControlPlane;
using Berth.Cli.Shell;
using Berth.Core.Contracts;
using Berth.Core.Loading;
using Berth.Runtime.Docker;
using Berth.Runtime.Process;
using static Berth.Cli.Commands.ControlPlaneCommands;

namespace Berth.Cli.Commands;

/// <summary><c>exec</c>: a command in a running replica, as <c>docker compose exec</c> — in the container through the
/// engine's exec API, or for a process replica in its environment, folder, cgroups and pod (<see cref="ReplicaExecContext"/>).
/// The command's exit code is berth's.</summary>
internal static class ExecCommands
{
    /// <summary>Phases in which a replica has a process to run a command beside.</summary>
    private static readonly string[] LivePhases = ["starting", "running", "ready", "terminating"];

    /// <summary>The commands whose arguments after the target are the command to run (options stop there, as in compose).</summary>
    public static readonly string[] CommandTaking = ["exec", "run"];

    public static IEnumerable<Command> Create() => [Exec(), Run(), Top(), Stats()];

    // ---- run ----------------------------------------------------------------------------------------------------

    private static Command Run()
    {
        var file = SpecFile.CreateFileOption();
        var target = new Argument<string>("SERVICE") { Description = "The service whose spec the one-off replica gets." };
        var argv = new Argument<string[]>("COMMAND") { Description = "The command and its arguments, without a shell (default: the service's own).", Arity = ArgumentArity.ZeroOrMore };
        var rm = new Option<bool>("--rm") { Description = "Remove the one-off replica (container, cgroup, bookkeeping) when the command ends (as docker compose run --rm); without it it is stopped and kept." };
        var noDeps = new Option<bool>("--no-deps") { Description = "Do not start the services it depends on (default: start any that are stopped and wait for them, as compose run)." };
        var noTty = new Option<bool>("--no-TTY", "-T") { Description = "Do not allocate a TTY (default: one when stdin is a terminal)." };
        var env = EnvOption();
        var workdir = new Option<string?>("--workdir", "-w") { Description = "Run in this folder (default: the service's working directory).", HelpName = "DIR" };
        var user = new Option<string?>("--user", "-u") { Description = "Run as this user: name, uid, name:group or uid:gid (default: the service's user).", HelpName = "USER" };
        var command = new Command("run", "Run a one-off command in a new replica of a service (as docker compose run): the service's environment and secrets, volumes, "
            + "limits and working directory, stdin and stdout attached, the command's exit code as berth's. The replica is not routed to and not counted by scale.")
        {
            file, target, argv, rm, noDeps, noTty, env, workdir, user,
        };
        command.SetAction((parse, ct) => WithClientAsync(parse.GetValue(file), async client =>
        {
            if (ParseEnv(parse.GetValue(env) ?? [], "run") is not { } extra)
            {
                return ExitCodes.Usage;
            }

            var name = parse.GetValue(target)!;
            var services = await client.GetAsync("/v1/services", ApiJson.Default.IReadOnlyListServiceInfo, ct);
            if (services.All(s => s.Name != name))
            {
                Error(ServiceCommands.NoService(name, services));
                return ExitCodes.NotFound;
            }

            if (!parse.GetValue(noDeps) && await StartDependenciesAsync(client, name, services, ct) is var deps and not ExitCodes.Ok)
            {
                return deps;
            }

            var given = parse.GetValue(argv) ?? [];
            var run = await client.PostAsync($"/v1/services/{Uri.EscapeDataString(name)}/run",
                System.Text.Json.JsonSerializer.Serialize(new RunRequest(given.Length > 0 ? given : null), ApiJson.Default.RunRequest), ApiJson.Default.RunResponse, ct);
            Status($"{run.Replica}: one-off replica of {name} started");
            try
            {
                var replica = new ReplicaInfo { Id = run.Replica, Service = name, Phase = "running", Pid = run.Pid, ContainerId = run.ContainerId };
                return await ExecAsync(replica, run.Command, extra, parse.GetValue(workdir), parse.GetValue(user), !parse.GetValue(noTty) && Terminal.StdinIsTerminal, ct);
            }
            finally
            {
                // Always ended (it would hold still forever); --rm also removes what is left of it.
                await client.SendAsync(HttpMethod.Delete, $"/v1/runs/{Uri.EscapeDataString(run.Replica)}{(parse.GetValue(rm) ? "?remove=true" : "")}", null, CancellationToken.None);
            }
        }, ct));
        return command;
    }

    /// <summary>Starts the stopped services <paramref name="service"/> depends on (and theirs), then waits until they are Ready.</summary>
    private static async Task<int> StartDependenciesAsync(ApiClient client, string service, IReadOnlyList<ServiceInfo> services, CancellationToken ct)
    {
        var needed = new List<string>();
        var queue = new Queue<string>([service]);
        while (queue.TryDequeue(out var next))
        {
            var detail = await client.GetAsync($"/v1/services/{Uri.EscapeDataString(next)}", ApiJson.Default.ServiceInfo, ct);
            foreach (var dep in detail.Spec?["dependsOn"]?.AsArray().Select(d => d?["service"]?.GetValue<string>()).OfType<string>() ?? [])
            {
                if (!needed.Contains(dep) && services.Any(s => s.Name == dep))
                {
                    needed.Add(dep);
                    queue.Enqueue(dep);
                }
            }
        }

        var stopped = needed.Where(d => services.First(s => s.Name == d).Stopped).ToList();
        foreach (var dep in stopped)
        {
            await client.PostAsync($"/v1/services/{Uri.EscapeDataString(dep)}/start", null, ct);
            Status($"{dep}: started (a dependency of {service})");
        }

        // Already Ready: nothing to wait for (and nothing printed); else until each is, as compose run waits for its dependencies.
        return stopped.Count == 0 && needed.All(d => services.First(s => s.Name == d) is var s && s.Ready >= s.Desired)
            ? ExitCodes.Ok
            : await AppStatus.WaitReadyAsync(client, needed, null, DateTimeOffset.MinValue, ct);
    }

    // ---- top, stats ---------------------------------------------------------------------------------------------

    /// <summary>How often <c>stats</c> refreshes: docker stats' pace is about a second; the process driver samples CPU over
    /// its own window on top, so 2s keeps the API from being asked faster than it answers on a loaded machine.</summary>
    private static readonly TimeSpan StatsRefresh = TimeSpan.FromSeconds(2);

    private static Command Top()
    {
        var file = SpecFile.CreateFileOption();
        var services = new Argument<string[]>("SERVICE") { Description = "Services; none: every service.", Arity = ArgumentArity.ZeroOrMore };
        var output = Output.CreateOption("table", "json", "yaml");
        var command = new Command("top", "Show the processes of each running replica: pid, parent, user, %CPU (over the process's life, as ps), resident memory, "
            + "CPU time and command (as docker compose top). A replica's processes are its cgroup's, so commands run by 'berth exec' show too.") { file, services, output };
        command.SetAction((parse, ct) => WithClientAsync(parse.GetValue(file), async client =>
        {
            if (await CheckServicesAsync(client, parse.GetValue(services)!, ct) is not { } names)
            {
                return ExitCodes.NotFound;
            }

            var top = new List<ReplicaTopInfo>();
            foreach (var name in names)
            {
                top.AddRange(await client.GetAsync(name is null ? "/v1/top" : $"/v1/top?service={Uri.EscapeDataString(name)}", ApiJson.Default.IReadOnlyListReplicaTopInfo, ct));
            }

            if (Output.TryWrite(System.Text.Json.JsonSerializer.SerializeToNode<IReadOnlyList<ReplicaTopInfo>>(top, Output.Json.IReadOnlyListReplicaTopInfo), parse.GetValue(output)!, null, Console.Out))
            {
                return ExitCodes.Ok;
            }

            foreach (var (replica, i) in top.Select((r, i) => (r, i)))
            {
                Console.Out.Write(i > 0 ? "\n" : "");
                Console.Out.WriteLine(replica.Replica);
                Output.Table(["PID", "PPID", "USER", "%CPU", "RSS", "TIME", "COMMAND"], [.. replica.Processes.Select(p => (string[])[
                    p.Pid.ToString(CultureInfo.InvariantCulture), p.ParentPid.ToString(CultureInfo.InvariantCulture), p.User,
                    p.CpuPercent.ToString("0.0", CultureInfo.InvariantCulture), Bytes(p.ResidentBytes), p.CpuTime, p.Command])], Console.Out);
            }

            return ExitCodes.Ok;
        }, ct));
        return command;
    }

    private static Command Stats()
    {
        var file = SpecFile.CreateFileOption();
        var services = new Argument<string[]>("SERVICE") { Description = "Services; none: every service.", Arity = ArgumentArity.ZeroOrMore };
        var output = Output.CreateOption("table", "json", "yaml");
        output.Description = "Output format: table, json (with --no-stream one document; streaming one compact line per refresh, as docker stats --format json), yaml.";
        var noStream = new Option<bool>("--no-stream") { Description = "Print once and exit (default: refresh every 2s until Ctrl-C, as docker stats)." };
        var command = new Command("stats", "Live resource use of each running replica: CPU % (of one core, as docker stats), memory used / limit, "
            + "processes, restarts, and requests per second from the mesh (REQ/S: sent to the replica; SERVICE REQ/S: answered by its service's listeners; "
            + "'-' for a service without an HTTP endpoint); refreshes until Ctrl-C unless --no-stream.") { file, services, output, noStream };
        command.SetAction((parse, ct) => WithClientAsync(parse.GetValue(file), async client =>
        {
            if (await CheckServicesAsync(client, parse.GetValue(services)!, ct) is not { } names)
            {
                return ExitCodes.NotFound;
            }

            var format = parse.GetValue(output)!;
            var once = parse.GetValue(noStream);
            var clear = !once && format == "table" && !Console.IsOutputRedirected;
            for (var first = true; ; first = false)
            {
                var stats = new List<ReplicaStatsInfo>();
                foreach (var name in names)
                {
                    stats.AddRange(await client.GetAsync(name is null ? "/v1/stats" : $"/v1/stats?service={Uri.EscapeDataString(name)}", ApiJson.Default.IReadOnlyListReplicaStatsInfo, ct));
                }

                var node = System.Text.Json.JsonSerializer.SerializeToNode<IReadOnlyList<ReplicaStatsInfo>>(stats, Output.Json.IReadOnlyListReplicaStatsInfo);
                if (format == "json" && !once)
                {
                    Console.Out.WriteLine(node!.ToJsonString(Output.JsonLines.Options));
                }
                else if (!Output.TryWrite(node, format, null, Console.Out))
                {
                    // A terminal is redrawn in place (as docker stats); anything else gets one table after another.
                    Console.Out.Write(clear ? "\u001b[H\u001b[2J" : first ? "" : "\n");
                    Output.Table(["REPLICA", "SERVICE", "CPU %", "MEM USAGE / LIMIT", "MEM %", "PIDS", "RESTARTS", "REQ/S", "SERVICE REQ/S"], [.. stats.Select(s => (string[])[
                        s.Replica, s.Service, s.CpuPercent.ToString("0.00", CultureInfo.InvariantCulture) + "%",
                        $"{Bytes(s.MemoryBytes)} / {(s.MemoryLimitBytes is { } limit ? Bytes(limit) : "-")}",
                        s.MemoryLimitBytes is > 0 and var l ? (100.0 * s.MemoryBytes / l).ToString("0.00", CultureInfo.InvariantCulture) + "%" : "-",
                        s.Pids.ToString(CultureInfo.InvariantCulture), s.Restarts.ToString(CultureInfo.InvariantCulture),
                        PerSecond(s.RequestsPerSecond), PerSecond(s.ServiceRequestsPerSecond)])], Console.Out);
                }

                await Console.Out.FlushAsync(ct);
                if (once)
                {
                    return ExitCodes.Ok;
                }

                await Task.Delay(StatsRefresh, ct);
            }
        }, ct));
        return command;
    }

    /// <summary>The services named (each checked, with "did you mean"), or one null for all; null when one is unknown.</summary>
    private static async Task<IReadOnlyList<string?>?> CheckServicesAsync(ApiClient client, string[] names, CancellationToken ct)
    {
        if (names.Length == 0)
        {
            return [null];
        }

        var services = await client.GetAsync("/v1/services", ApiJson.Default.IReadOnlyListServiceInfo, ct);
        var unknown = names.Where(n => services.All(s => s.Name != n)).ToList();
        unknown.ForEach(n => Error(ServiceCommands.NoService(n, services)));
        return unknown.Count > 0 ? null : names;
    }

    /// <summary>A request rate with one decimal; "-" where the mesh counts none (no HTTP endpoint, or no data plane).</summary>
    private static string PerSecond(double? rate) => rate is { } r ? r.ToString("0.0", CultureInfo.InvariantCulture) : "-";

    /// <summary>Binary units as docker stats prints them: 12.5MiB, 1.944GiB.</summary>
    internal static string Bytes(long bytes)
    {
        string[] units = ["B", "KiB", "MiB", "GiB", "TiB"];
        double value = bytes;
        var unit = 0;
        while (value >= 1024 && unit < units.Length - 1)
        {
            value /= 1024;
            unit++;
        }

        return (unit == 0 ? value.ToString("0", CultureInfo.InvariantCulture) : value.ToString(value < 10 ? "0.##" : value < 100 ? "0.#" : "0", CultureInfo.InvariantCulture)) + units[unit];
    }

    private static Command Exec()
    {
        var file = SpecFile.CreateFileOption();
        var target = new Argument<string>("SERVICE|REPLICA") { Description = "A service (its first running replica, or --index) or one replica's id." };
        var argv = new Argument<string[]>("COMMAND") { Description = "The command and its arguments, run without a shell (write 'sh -c \"…\"' for one).", Arity = ArgumentArity.OneOrMore };
        var index = new Option<int?>("--index") { Description = "Which replica of the service, 1 for the first (as docker compose exec --index; replicas in 'berth ps' order).", HelpName = "N" };
        var noTty = new Option<bool>("--no-TTY", "-T") { Description = "Do not allocate a TTY (default: one when stdin is a terminal)." };
        var env = EnvOption();
        var workdir = new Option<string?>("--workdir", "-w") { Description = "Run in this folder (default: the replica's working directory).", HelpName = "DIR" };
        var user = new Option<string?>("--user", "-u") { Description = "Run as this user: name, uid, name:group or uid:gid (default: the replica's user).", HelpName = "USER" };
        var command = new Command("exec", "Run a command in a running replica (as docker compose exec): in its container, or for a process replica "
            + "with its environment, working directory, cgroups (its limits hold) and pod namespaces. The command's exit code is berth's.")
        {
            file, target, argv, index, noTty, env, workdir, user,
        };
        command.SetAction((parse, ct) => WithClientAsync(parse.GetValue(file), async client =>
        {
            if (ParseEnv(parse.GetValue(env) ?? [], "exec") is not { } extra)
            {
                return ExitCodes.Usage;
            }

            var replica = await FindReplicaAsync(client, parse.GetValue(target)!, parse.GetValue(index), ct);
            if (replica.Error is { } error)
            {
                Error(error.Message);
                return error.Code;
            }

            var tty = !parse.GetValue(noTty) && Terminal.StdinIsTerminal;
            return await ExecAsync(replica.Found!, [.. parse.GetValue(argv)!], extra, parse.GetValue(workdir), parse.GetValue(user), tty, ct);
        }, ct));
        return command;
    }

    internal static Option<string[]> EnvOption() => new("--env", "-e")
    {
        Description = "Set a variable for the command: KEY=VALUE (repeat for more), over the replica's own.",
        HelpName = "KEY=VALUE",
        AllowMultipleArgumentsPerToken = false,
    };

    /// <summary><c>KEY=VALUE</c> pairs; a bad one is a usage error (null) with what to write.</summary>
    internal static Dictionary<string, string>? ParseEnv(IEnumerable<string> pairs, string verb)
    {
        var env = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var pair in pairs)
        {
            var eq = pair.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0)
            {
                Console.Error.WriteLine($"berth {verb}: -e wants KEY=VALUE (e.g. -e DEBUG=1), not '{pair}'");
                Console.Error.WriteLine($"Run 'berth {verb} --help' for usage.");
                return null;
            }

            env[pair[..eq]] = pair[(eq + 1)..];
        }

        return env;
    }

    internal sealed record Lookup(ReplicaInfo? Found, (string Message, int Code)? Error, ServiceInfo? Service);

    /// <summary>The replica <paramref name="name"/> names (a replica id, or a service and its <paramref name="index"/>th
    /// replica), which must be running; otherwise what is wrong, with "did you mean" for a typo.</summary>
    internal static async Task<Lookup> FindReplicaAsync(ApiClient client, string name, int? index, CancellationToken ct)
    {
        var services = await client.GetAsync("/v1/services", ApiJson.Default.IReadOnlyListServiceInfo, ct);
        var replicas = await client.GetAsync("/v1/replicas", ApiJson.Default.IReadOnlyListReplicaInfo, ct);
        if (replicas.FirstOrDefault(r => r.Id == name) is { } byId)
        {
            if (index is not null)
            {
                return new Lookup(null, ($"--index picks a replica of a service; '{name}' is a replica already", ExitCodes.Usage), null);
            }

            return LivePhases.Contains(byId.Phase)
                ? new Lookup(byId, null, services.FirstOrDefault(s => s.Name == byId.Service))
                : new Lookup(null, ($"replica {name} is {byId.Phase}{(byId.Reason is { Length: > 0 } why ? $" ({why})" : "")}, so there is nothing to run a command in; see 'berth ps'", ExitCodes.Failed), null);
        }

        if (services.FirstOrDefault(s => s.Name == name) is not { } service)
        {
            return new Lookup(null, ($"no service or replica '{name}'" + (Suggestions.Closest(name, services.Select(s => s.Name).Concat(replicas.Select(r => r.Id))) is { } close
                ? $"; did you mean '{close}'?"
                : $"; the services are {string.Join(", ", services.Select(s => s.Name))}"), ExitCodes.NotFound), null);
        }

        var mine = replicas.Where(r => r.Service == name).ToList();
        var live = mine.Where(r => LivePhases.Contains(r.Phase)).ToList();
        if (service.Stopped || live.Count == 0)
        {
            return new Lookup(null, (service.Stopped
                ? $"service {name} is stopped, so no replica runs; 'berth start {name}' starts it"
                : $"service {name} has no running replica ({(mine.Count == 0 ? "none yet" : string.Join(", ", mine.Select(r => $"{r.Id} {r.Phase}")))}); see 'berth ps'", ExitCodes.Failed), null);
        }

        var n = index ?? 1;
        if (n < 1 || n > live.Count)
        {
            return new Lookup(null, ($"--index {n.ToString(CultureInfo.InvariantCulture)}: service {name} has {live.Count.ToString(CultureInfo.InvariantCulture)} running replica(s), numbered from 1", ExitCodes.NotFound), null);
        }

        return new Lookup(live[n - 1], null, service);
    }

    /// <summary>Runs <paramref name="argv"/> in <paramref name="replica"/> with stdio attached; the command's exit code.</summary>
    internal static async Task<int> ExecAsync(ReplicaInfo replica, IReadOnlyList<string> argv, IReadOnlyDictionary<string, string> env, string? workdir, string? user, bool tty, CancellationToken ct)
    {
        if (replica.ContainerId is { } container)
        {
            return await DockerExecAsync(container, argv, env, workdir, user, tty, ct);
        }

        if (replica.Pid is not { } pid)
        {
            Error($"replica {replica.Id} has no process yet ({replica.Phase}); try again when 'berth ps' shows it running");
            return ExitCodes.Failed;
        }

        ReplicaExecContext context;
        System.Diagnostics.ProcessStartInfo start;
        // With a TTY the command gets a pseudo-terminal of its own, as docker exec -t gives a container command: its own
        // session with the pty as controlling terminal (a shell gets job control), berth's terminal settings and window
        // size (resized on SIGWINCH), and berth's terminal raw in between so every key (Ctrl-C, Ctrl-Z too) reaches it.
        using var pty = tty ? Terminal.OpenPty() : null;
        if (tty && pty is null)
        {
            Status("warning: no pseudo-terminal could be opened (/dev/pts); the command shares berth's terminal");
        }

        try
        {
            context = ReplicaExecContext.Read(pid);
            var withTerm = pty is not null && !env.ContainsKey("TERM") && !context.Environment.ContainsKey("TERM") && Environment.GetEnvironmentVariable("TERM") is { } term
                ? new Dictionary<string, string>(env) { ["TERM"] = term }
                : env;
            start = context.StartInfo(argv, withTerm, workdir, user, terminal: pty?.SlavePath);
        }
        catch (InvalidOperationException e)
        {
            Error($"replica {replica.Id}: {e.Message}");
            return ExitCodes.Failed;
        }

        foreach (var missing in context.CgroupsNotFound)
        {
            Status($"warning: replica {replica.Id}'s cgroup {missing} is not mounted here; the command runs outside it (its limits do not apply)");
        }

        // Without a TTY, pipes, so the command sees no terminal even when berth has one (-T), as in a container. Ctrl-C
        // reaches the command (same process group, or through its pty); berth waits for it to end and reports its code.
        start.RedirectStandardInput = start.RedirectStandardOutput = start.RedirectStandardError = !tty;
        using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => c.Cancel = true);
        using var quit = PosixSignalRegistration.Create(PosixSignal.SIGQUIT, c => c.Cancel = true);
        if (pty is not null)
        {
            return await RunOnPtyAsync(start, pty);
        }

        using var process = System.Diagnostics.Process.Start(start)!;
        if (!tty)
        {
            using var stdout = Terminal.Open(1);
            using var stderr = Terminal.Open(2);
            var output = Task.WhenAll(process.StandardOutput.BaseStream.CopyToAsync(stdout, CancellationToken.None), process.StandardError.BaseStream.CopyToAsync(stderr, CancellationToken.None));
            _ = PumpStdinAsync(process.StandardInput.BaseStream);
            await process.WaitForExitAsync(CancellationToken.None);
            await output;
        }
        else
        {
            await process.WaitForExitAsync(CancellationToken.None);
        }

        return process.ExitCode;
    }

    /// <summary>How long the command's last output may take to drain from its pty after it exits (a background job that
    /// keeps the pty open is not waited for beyond it).</summary>
    private static readonly TimeSpan PtyDrain = TimeSpan.FromSeconds(2);

    /// <summary>Runs the launcher with <paramref name="pty"/>'s slave as the command's terminal, copies berth's stdin to the
    /// master and the master to berth's stdout, with berth's terminal raw meanwhile; the command's exit code.</summary>
    private static async Task<int> RunOnPtyAsync(System.Diagnostics.ProcessStartInfo start, Terminal.Pty pty)
    {
        using var raw = Terminal.Raw();
        using var resize = OperatingSystem.IsWindows() ? null : PosixSignalRegistration.Create(PosixSignal.SIGWINCH, c =>
        {
            c.Cancel = true;
            pty.Resize();
        });
        using var process = System.Diagnostics.Process.Start(start)!;
        using var stdout = Terminal.Open(1);
        var output = Task.Run(async () =>
        {
            var buffer = new byte[16 * 1024];
            try
            {
                int n;
                while ((n = await pty.Master.ReadAsync(buffer)) > 0)
                {
                    await stdout.WriteAsync(buffer.AsMemory(0, n));
                    await stdout.FlushAsync();
                }
            }
            catch (IOException)
            {
                // EIO: every holder of the slave has closed it (the command and what it started ended).
            }
        });
        _ = Task.Run(async () =>
        {
            try
            {
                using var stdin = Terminal.Open(0);
                await stdin.CopyToAsync(pty.Master);
            }
            catch (Exception e) when (e is IOException or ObjectDisposedException)
            {
                // The command ended and the pty went with it.
            }
        });
        await process.WaitForExitAsync(CancellationToken.None);
        // The launcher opened the slave by path before anything ran; berth's end is not needed to keep the pty alive now.
        pty.CloseSlave();
        await Task.WhenAny(output, Task.Delay(PtyDrain));
        return process.ExitCode;
    }

    /// <summary>Copies berth's stdin into the command's until either ends (a command that does not read it is not held up).</summary>
    private static async Task PumpStdinAsync(Stream to)
    {
        try
        {
            using var stdin = Terminal.Open(0);
            await stdin.CopyToAsync(to);
        }
        catch (IOException)
        {
            // The command exited and closed its end.
        }
        finally
        {
            try
            {
                to.Dispose();
            }
            catch (IOException)
            {
            }
        }
    }

    private static async Task<int> DockerExecAsync(string container, IReadOnlyList<string> argv, IReadOnlyDictionary<string, string> env, string? workdir, string? user, bool tty, CancellationToken ct)
    {
        DockerExecSession session;
        try
        {
            session = await DockerExecSession.StartAsync(container, new DockerExecRequest(argv, tty, AttachStdin: true,
                [.. env.Select(e => $"{e.Key}={e.Value}")], workdir, user), ct);
        }
        catch (DockerUnavailableException e)
        {
            Error($"docker exec in {container[..Math.Min(12, container.Length)]}: {e.Message}");
            return ExitCodes.Unavailable;
        }

        await using (session)
        {
            using var raw = tty ? Terminal.Raw() : null;
            using var resize = tty && !OperatingSystem.IsWindows() ? PosixSignalRegistration.Create(PosixSignal.SIGWINCH, _ => ResizeAsync(session, CancellationToken.None).GetAwaiter()) : null;
            if (tty)
            {
                await ResizeAsync(session, ct);
            }

            using var stdin = Terminal.Open(0);
            using var stdout = Terminal.Open(1);
            using var stderr = Terminal.Open(2);
            return await session.RunAsync(stdin, stdout, stderr, ct);
        }
    }

    private static async Task ResizeAsync(DockerExecSession session, CancellationToken ct)
    {
        if (Terminal.Size() is { } size)
        {
            try
            {
                await session.ResizeAsync(size.Columns, size.Rows, ct);
            }
            catch (Exception e) when (e is global::Docker.DotNet.DockerApiException or HttpRequestException or OperationCanceledException)
            {
                // The exec ended between the signal and the call: nothing left to resize.
            }
        }
    }
}
