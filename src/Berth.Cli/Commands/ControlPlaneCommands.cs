using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;
using Berth.Cli.ControlPlane;
using Berth.Cli.Shell;
using Berth.Core.Contracts;
using Berth.Core.Diagnostics;
using Berth.Core.Loading;
using Berth.Core.Model;
using Berth.Orchestration.State;
using Berth.Runtime;

namespace Berth.Cli.Commands;

/// <summary>up, down, ps, logs, scale, events, restart (orchestrator).</summary>
internal static class ControlPlaneCommands
{
    /// <summary>The hidden subcommand a detached <c>berth up -d</c> re-executes itself as.</summary>
    internal const string DaemonCommand = "__control-plane";

    /// <summary>The detached control plane's log, in the state folder.</summary>
    internal const string DaemonLogFile = "control-plane.log";

    public static IEnumerable<Command> Create() => [Up(), Down(), Logs(), Dashboard(), Daemon()];

    // ---- up -----------------------------------------------------------------------------------------------------

    private static Command Up()
    {
        var file = SpecFile.CreateFilesOption();
        var envFile = SpecFile.CreateEnvFileOption();
        var profiles = SpecFile.CreateProfileOption();
        var detach = new Option<bool>("--detach", "-d") { Description = "Run the control plane in the background and return once it is listening." };
        var noBuild = new Option<bool>("--no-build") { Description = "Skip the build commands and image builds (as docker compose up --no-build)." };
        var prune = CreatePruneOption();
        var wait = new Option<bool>("--wait") { Description = "Return once every service has its replicas Ready (exit 3 with the reasons if one cannot get there); implies --detach, as docker compose up --wait." };
        var waitTimeout = AppStatus.WaitTimeoutOption();
        var build = new Option<bool>("--build") { Description = "With a control plane already running: run the builds and roll out each service whose build changed something (as docker compose up --build). A new control plane always builds (unless --no-build)." };
        var watch = new Option<bool>("--watch") { Description = "Then rebuild and roll out a service when a file in its build folder changes, until Ctrl-C ('berth watch'); implies --wait. Ctrl-C stops the watch, not the app ('berth down' does)." };
        var command = new Command("up", "Bring the app to its desired state and keep it there: schedule, start, probe, restart, route.") { file, envFile, profiles, detach, noBuild, prune, wait, waitTimeout, build, watch };
        command.SetAction(async (parse, ct) =>
        {
            var outcome = SpecFile.Load(parse.GetValue(file), parse.GetValue(envFile), parse.GetValue(profiles), Console.Error);
            if (!outcome.Succeeded)
            {
                return outcome.ExitCode;
            }

            StartupTrace.Mark("spec loaded");
            var app = outcome.Application!;
            var state = ControlPlaneHost.StateDirectoryFor(outcome.Path!);
            using (var running = ApiClient.TryOpen(state))
            {
                if (running is not null && await running.AliveAsync(ct))
                {
                    Status("control plane already running");
                    var code = await RolloutCommands.ApplyAndReportAsync(running, app, outcome.Path!, parse.GetValue(build) && !parse.GetValue(noBuild), parse.GetValue(prune), ct);
                    if (code != ExitCodes.Ok)
                    {
                        return code;
                    }

                    await PrintDashboardLinkAsync(running, ct);
                    await WarnLimitsAsync(running, TimeSpan.Zero, everyCapability: true, ct);
                    await AppStatus.PrintAddressesAsync(running, ct);
                    if (await PortConflictsAsync(running, ct))
                    {
                        return ExitCodes.Failed;
                    }

                    var ready = parse.GetValue(wait) || parse.GetValue(watch) ? await AppStatus.WaitReadyAsync(running, null, parse.GetValue(waitTimeout), DateTimeOffset.MinValue, ct) : ExitCodes.Ok;
                    return ready == ExitCodes.Ok && parse.GetValue(watch) ? await WatchCommand.RunAsync(app, outcome.Path!, ct) : ready;
                }
            }

            var buildError = parse.GetValue(noBuild) ? null : await ControlPlaneHost.BuildAsync(app, Console.Error, ct) ?? await ImageBuilds.BuildAsync(app, Console.Error, ct);
            if (buildError is not null)
            {
                Error(buildError);
                return ExitCodes.Failed;
            }

            app = BuildStamp.Stamp(app);
            if (parse.GetValue(detach) || parse.GetValue(wait) || parse.GetValue(watch))
            {
                var started = await StartDetachedAsync(
                    // The files as loaded: the default file's compose.override.yaml too, which -f alone would not bring.
                    outcome.OverridePath is { } overrideFile ? [outcome.Path!, overrideFile] : [outcome.Path!, .. (parse.GetValue(file) ?? []).Skip(1)],
                    parse.GetValue(envFile) ?? [], parse.GetValue(profiles) ?? [], state, parse.GetValue(prune), ct);
                if (started != ExitCodes.Ok || !(parse.GetValue(wait) || parse.GetValue(watch)))
                {
                    return started;
                }

                using var client = ApiClient.TryOpen(state);
                var ready = client is null ? ExitCodes.Failed : await AppStatus.WaitReadyAsync(client, null, parse.GetValue(waitTimeout), DateTimeOffset.MinValue, ct);
                return ready == ExitCodes.Ok && parse.GetValue(watch) ? await WatchCommand.RunAsync(app, outcome.Path!, ct) : ready;
            }

            return await RunForegroundAsync(app, outcome.Path!, state, parse.GetValue(prune), ct);
        });
        return command;
    }

    private static Option<bool> CreatePruneOption() => new("--prune")
    {
        Description = "Allow an apply that renames the app or removes every service (its replicas all go), as kubectl apply --prune.",
    };

    /// <summary>How long a second <c>berth up</c> or <c>down</c> waits for the control plane holding the state folder's lock to answer or
    /// let go: as long as <c>up -d</c> waits for its own control plane to listen.</summary>
    private static readonly TimeSpan LockWait = TimeSpan.FromSeconds(60);

    /// <summary>Takes the state folder's lock (one control plane per app), or, when another control plane holds it, waits until that
    /// one answers (its client is returned, to talk to it) or lets go. Both null: it neither answered nor let go in time.</summary>
    private static async Task<(StateLock? Lock, ApiClient? Running)> LockOrRunningAsync(string state, CancellationToken ct)
    {
        var waited = Stopwatch.StartNew();
        while (true)
        {
            if (StateLock.TryAcquire(state) is { } held)
            {
                return (held, null);
            }

            var client = ApiClient.TryOpen(state);
            if (client is not null && await client.AliveAsync(ct))
            {
                return (null, client);
            }

            client?.Dispose();
            if (waited.Elapsed > LockWait)
            {
                Error($"another control plane holds {Path.Combine(state, StateLock.FileName)} but has not answered for {LockWait.TotalSeconds:0}s; " +
                    $"'flock -n {Path.Combine(state, StateLock.FileName)} true' fails while it runs — stop it ('berth down', or kill the process named in {Path.Combine(state, DaemonLogFile)})");
                return (null, null);
            }

            await Task.Delay(100, ct);
        }
    }

    /// <summary>Applies to the control plane that won the lock, as <c>berth up</c> does when one is already running.</summary>
    private static async Task<int> ApplyToRunningAsync(ApiClient running, Application app, string specPath, bool prune, CancellationToken ct)
    {
        var applied = await running.ApplyAsync(app, ct, prune);
        Status($"control plane already running at {running.Url}; applied {specPath} as revision {applied.Revision}");
        return await PortConflictsAsync(running, ct) ? ExitCodes.Failed : ExitCodes.Ok;
    }

    private static async Task<int> RunForegroundAsync(Application app, string specPath, string state, bool prune, CancellationToken ct)
    {
        var (held, running) = await LockOrRunningAsync(state, ct);
        using var stateLock = held;
        if (held is null)
        {
            using (running)
            {
                return running is null ? ExitCodes.Failed : await ApplyToRunningAsync(running, app, specPath, prune, ct);
            }
        }

        using var stop = new CancellationTokenSource();
        ConsoleCancelEventHandler onCancel = (_, e) =>
        {
            e.Cancel = true;
            stop.Cancel();
        };
        Console.CancelKeyPress += onCancel;
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c =>
        {
            c.Cancel = true;
            stop.Cancel();
        });
        try
        {
            var warm = WarmSerializersAsync(app, stop.Token);
            await using var host = await ControlPlaneHost.StartAsync(state, NeedsDocker(app), api: true, stop.Token, app.Telemetry);
            foreach (var w in host.Warnings.Concat(await host.EnsureNodesAsync(app, stop.Token)))
            {
                Warn(w);
            }

            AppRegistry.Record(app.Name, specPath, state);

            Status($"dashboard: {host.Api.CreateLoginUrl()} (one-time link; 'berth dashboard' prints a new one)");

            var since = host.Plane.Store.ListEvents(0, int.MaxValue).LastOrDefault()?.Id ?? 0;
            var started = Stopwatch.StartNew();
            using var watching = CancellationTokenSource.CreateLinkedTokenSource(stop.Token);
            var printer = new LivePrinter(host, app);
            var watch = printer.RunAsync(since, watching.Token);
            await warm.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            try
            {
                await host.Plane.ApplyAsync(app, "up", stop.Token, prune);
            }
            catch (Orchestration.ControlPlaneException e)
            {
                // Refused (a rename or no services without --prune): what ran before keeps running, adopted by the next control plane.
                Error(e.Message);
                await watching.CancelAsync();
                await watch.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                return ExitCodes.Failed;
            }

            if (host.Plane.PortConflicts is { Count: > 0 } conflicts)
            {
                // As 'docker compose up' fails when a published port is taken: say who holds it, stop what started, exit non-zero.
                foreach (var c in conflicts)
                {
                    Error($"{c.Service}: {c.Message}");
                }

                using var stopping = new CancellationTokenSource(TimeSpan.FromMinutes(2));
                await host.Plane.DownAsync(stopping.Token);
                await watching.CancelAsync();
                await watch.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                return ExitCodes.Failed;
            }

            Status($"control plane for '{app.Name}' running (state {state}); Ctrl-C stops everything");
            foreach (var c in host.Capabilities())
            {
                Capability(c.Usable, c.Message, usableToo: true);
            }

            foreach (var w in host.Plane.LimitWarnings)
            {
                Warn(w.Message);
            }

            _ = ReportWhenReadyAsync(host, app, started, watching.Token);
            await ((Task)Task.WhenAny(Task.Delay(Timeout.Infinite, stop.Token), host.Api.ShutdownRequested)).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);

            Status("stopping every replica (out of routing first)…");
            using var grace = new CancellationTokenSource(TimeSpan.FromMinutes(2));
            await host.Plane.DownAsync(grace.Token);
            await host.RemoveNodesAsync(grace.Token);
            await host.StopDataPlaneAsync(grace.Token);
            await watching.CancelAsync();
            await watch.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            Status($"'{app.Name}' stopped");
            return stop.IsCancellationRequested ? ExitCodes.Cancelled : ExitCodes.Ok;
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            return ExitCodes.Cancelled;
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
        }
    }

    private static async Task ReportWhenReadyAsync(ControlPlaneHost host, Application app, Stopwatch started, CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            var current = host.Plane.Current;
            var want = current?.Application.Services.Where(s => !current.Stopped.Contains(s.Name)).Sum(s => s.Replicas) ?? 0;
            var ready = host.Plane.Replicas.Count(r => r.Phase is ReplicaPhase.Ready or ReplicaPhase.Completed);
            if (current is not null && ready >= want)
            {
                var urls = host.Plane.StablePorts.Select(kv =>
                    $"{kv.Key.Service} {(current.Application.FindService(kv.Key.Service)?.Endpoints.FirstOrDefault(e => e.Name == kv.Key.Endpoint)?.Protocol == EndpointProtocol.Tcp ? "tcp" : "http")}://127.0.0.1:{kv.Value}");
                Status($"'{app.Name}' is up: {ready}/{want} replicas ready in {started.Elapsed.TotalSeconds:0.0}s — {string.Join(", ", urls)}");
                return;
            }

            await Task.Delay(100, ct).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
    }

    private static async Task<int> StartDetachedAsync(string[] specPaths, string[] envFiles, string[] profiles, string state, bool prune, CancellationToken ct)
    {
        Directory.CreateDirectory(state);
        var address = Path.Combine(state, Server.ApiServerOptions.AddressFileName);
        using (var probe = StateLock.TryAcquire(state))
        {
            // A stale address only while no control plane holds the lock: a running one (another 'up -d' won) keeps its own.
            if (probe is not null)
            {
                try
                {
                    File.Delete(address);
                }
                catch (Exception e) when (StateStoreException.From(e, address) is { } fault)
                {
                    throw fault;
                }

                // A damaged or read-only store is said here, plainly, rather than as the detached control plane's exit code.
                StateStore.Open(state).Dispose();
            }
        }

        var log = Path.Combine(state, DaemonLogFile);
        var info = new ProcessStartInfo("/bin/sh") { UseShellExecute = false, WorkingDirectory = Environment.CurrentDirectory };
        // A new session so Ctrl-C in this terminal and its exit do not reach the control plane; the arguments travel as
        // positional parameters, never interpolated into the script.
        info.ArgumentList.Add("-c");
        info.ArgumentList.Add("exec setsid \"$0\" \"$@\" >>\"$BERTH_CONTROL_PLANE_LOG\" 2>&1 </dev/null");
        foreach (var a in SelfCommand())
        {
            info.ArgumentList.Add(a);
        }

        info.ArgumentList.Add(DaemonCommand);
        foreach (var specPath in specPaths)
        {
            info.ArgumentList.Add("-f");
            info.ArgumentList.Add(Path.GetFullPath(specPath));
        }

        foreach (var envFile in envFiles)
        {
            info.ArgumentList.Add("--env-file");
            info.ArgumentList.Add(Path.GetFullPath(envFile));
        }
        if (prune)
        {
            info.ArgumentList.Add("--prune");
        }

        foreach (var p in profiles)
        {
            info.ArgumentList.Add("--profile");
            info.ArgumentList.Add(p);
        }

        if (GlobalOptions.ProjectName is { Length: > 0 } project)
        {
            info.ArgumentList.Add("--project-name");
            info.ArgumentList.Add(project);
        }

        info.Environment["BERTH_CONTROL_PLANE_LOG"] = log;
        using var child = Process.Start(info)!;
        StartupTrace.Mark("control plane spawned");
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < TimeSpan.FromSeconds(60))
        {
            // Exit 0 before listening: another 'berth up -d' won the state folder's lock and this spec was applied to it.
            if (child.HasExited && child.ExitCode != 0)
            {
                Error($"the control plane exited with code {child.ExitCode} before it was listening; its log ({log}) ends with:\n{Tail(log, 20)}");
                return ExitCodes.Failed;
            }

            using (var client = ApiClient.TryOpen(state))
            {
                if (client is not null && await client.AliveAsync(ct))
                {
                    StartupTrace.Mark("control plane answers");
                    Status($"control plane running in the background (pid {child.Id}); log {log}; 'berth down' stops it");
                    await PrintDashboardLinkAsync(client, ct);
                    await WarnLimitsAsync(client, TimeSpan.FromSeconds(30), everyCapability: true, ct);
                    await AppStatus.PrintAddressesAsync(client, ct);
                    StartupTrace.Mark("up -d returns");
                    return await PortConflictsAsync(client, ct) ? ExitCodes.Failed : ExitCodes.Ok;
                }
            }

            await Task.Delay(100, ct);
        }

        Error($"the control plane did not start listening within 60s; see {log}");
        return ExitCodes.Failed;
    }

    /// <summary>How to run this same berth again: the apphost, or <c>dotnet berth.dll</c>.</summary>
    internal static IEnumerable<string> SelfCommand()
    {
        var exe = Environment.ProcessPath!;
        // Under 'dotnet berth.dll' the dll sits in the base directory; a single-file or tool apphost is the process itself.
        var dll = Path.Combine(AppContext.BaseDirectory, "berth.dll");
        return Path.GetFileNameWithoutExtension(exe) == "dotnet" ? [exe, dll] : [exe];
    }

    private static Command Daemon()
    {
        var file = SpecFile.CreateFilesOption();
        var envFile = SpecFile.CreateEnvFileOption();
        var profiles = SpecFile.CreateProfileOption();
        var prune = CreatePruneOption();
        var command = new Command(DaemonCommand, "Runs a detached control plane (used by 'berth up -d').") { file, envFile, profiles, prune };
        command.Hidden = true;
        command.SetAction(async (parse, ct) =>
        {
            var outcome = SpecFile.Load(parse.GetValue(file), parse.GetValue(envFile), parse.GetValue(profiles), Console.Error);
            if (!outcome.Succeeded)
            {
                return outcome.ExitCode;
            }

            StartupTrace.Mark("daemon: spec loaded");
            // 'berth up -d' built before starting this; the stamp is the build folder's digest, as the foreground 'up' stamps it.
            var app = BuildStamp.Stamp(outcome.Application!);
            using var stop = new CancellationTokenSource();
            using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c =>
            {
                c.Cancel = true;
                stop.Cancel();
            });
            var state = ControlPlaneHost.StateDirectoryFor(outcome.Path!);
            var (held, running) = await LockOrRunningAsync(state, stop.Token);
            using var stateLock = held;
            if (held is null)
            {
                // Another 'berth up -d' started first: this one's spec goes to it, as a second 'up' does.
                using (running)
                {
                    return running is null ? ExitCodes.Failed : await ApplyToRunningAsync(running, app, outcome.Path!, parse.GetValue(prune), stop.Token);
                }
            }

            StartupTrace.Mark("daemon: state folder locked");
            var warm = WarmSerializersAsync(app, stop.Token);
            Task watch = Task.CompletedTask;
            // The spec is applied as soon as the controllers have adopted, before the API's Kestrel starts: the first pass's
            // creates go to the engine while the API starts (issue #21, round 6). 'up -d' waits for the API either way.
            await using var host = await ControlPlaneHost.StartAsync(state, NeedsDocker(app), api: true, stop.Token, app.Telemetry, async host =>
            {
                foreach (var w in host.Warnings.Concat(await host.EnsureNodesAsync(app, stop.Token)))
                {
                    Console.Error.WriteLine($"warning: {w}");
                }

                AppRegistry.Record(app.Name, outcome.Path!, state);

                // The detached control plane's log says once what it may and may not do here (berth up -d prints it from the API).
                foreach (var c in host.Capabilities())
                {
                    Console.Error.WriteLine(c.Usable ? c.Message : $"warning: {c.Message}");
                }

                var printer = new LivePrinter(host, app, colors: false, logs: false);
                watch = printer.RunAsync(host.Plane.Store.ListEvents(0, int.MaxValue).LastOrDefault()?.Id ?? 0, stop.Token);
                await warm.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                StartupTrace.Mark("daemon: applying");
                await host.Plane.ApplyAsync(app, "up", stop.Token, parse.GetValue(prune));
                StartupTrace.Mark("daemon: applied");
            });
            await ((Task)Task.WhenAny(Task.Delay(Timeout.Infinite, stop.Token), host.Api.ShutdownRequested)).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            if (host.Api.ShutdownRequested.IsCompletedSuccessfully && host.Api.ShutdownRequested.Result)
            {
                using var grace = new CancellationTokenSource(TimeSpan.FromMinutes(2));
                await host.Plane.DownAsync(grace.Token);
                await host.RemoveNodesAsync(grace.Token);
                await host.StopDataPlaneAsync(grace.Token);
            }

            // On SIGTERM the replicas keep running: the next control plane adopts them.
            await stop.CancelAsync();
            await watch.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            return ExitCodes.Ok;
        });
        return command;
    }

    /// <summary>How long <c>up</c> waits for every stable port to be listened on or found taken: 15 s (the listeners open
    /// right after the revision is in force; a loaded machine may take seconds).</summary>
    private static readonly TimeSpan ListenerWait = TimeSpan.FromSeconds(15);

    /// <summary>Prints each stable port another program holds (with the holder) as an error; true when there is one. The
    /// control plane keeps running the other services, and starts these once their port is free.</summary>
    private static async Task<bool> PortConflictsAsync(ApiClient client, CancellationToken ct)
    {
        AppInfo app;
        var deadline = Stopwatch.StartNew();
        try
        {
            // The listeners open right after the revision is in force; wait (briefly) until each has opened or been refused.
            while (!(app = await client.GetAsync("/v1/app", ApiJson.Default.AppInfo, ct)).ListenersSettled && deadline.Elapsed < ListenerWait)
            {
                await Task.Delay(50, ct);
            }
        }
        catch (ApiException)
        {
            return false;
        }

        foreach (var c in app.PortConflicts)
        {
            Error($"{c.Service}: {c.Message}");
        }

        return app.PortConflicts.Count > 0;
    }

    /// <summary>The first apply writes the whole app as JSON and the first pass each replica's record; building the serializers
    /// for the model's types costs ~0.3 s of one core (generic converters over the model's structs and enums are compiled at run
    /// time, ReadyToRun or not). Done on another core while the mesh and the API start rather than after them (issue #21).</summary>
    private static Task WarmSerializersAsync(Application app, CancellationToken ct) => Task.Run(() =>
    {
        JsonSerializer.Serialize(new RevisionRecord { Number = 0, CreatedAt = DateTimeOffset.UnixEpoch, Cause = "warm-up", Application = app }, StateJson.Options);
        JsonSerializer.Serialize(new ReplicaRecord { Id = "warm-up", Service = "warm-up" }, StateJson.Options);
    }, ct);

    internal static async Task PrintDashboardLinkAsync(ApiClient client, CancellationToken ct)
    {
        try
        {
            var link = await client.PostAsync("/v1/dashboard/login", null, ApiJson.Default.DashboardLink, ct);
            Status($"dashboard: {link.Url} (one-time link; 'berth dashboard' prints a new one)");
        }
        catch (ApiException e)
        {
            Warn($"no dashboard link: {e.Message}");
        }
    }

    // ---- dashboard ----------------------------------------------------------------------------------------------

    private static Command Dashboard()
    {
        var file = SpecFile.CreateFileOption();
        var open = new Option<bool>("--open") { Description = "Open the link in the default browser (xdg-open) as well." };
        var command = new Command("dashboard", "Print a one-time sign-in link to the running control plane's dashboard.") { file, open };
        command.SetAction(async (parse, ct) =>
        {
            var state = StateFor(parse.GetValue(file));
            if (state is null)
            {
                return ExitCodes.NotFound;
            }

            using var client = ApiClient.TryOpen(state);
            if (client is null || !await client.AliveAsync(ct))
            {
                Error($"no control plane is running for {state}; 'berth up' starts one (and prints the dashboard link)");
                return ExitCodes.Failed;
            }

            var url = (await client.PostAsync("/v1/dashboard/login", null, ApiJson.Default.DashboardLink, ct)).Url;
            Console.WriteLine(url);
            if (parse.GetValue(open))
            {
                try
                {
                    using var browser = Process.Start(new ProcessStartInfo("xdg-open") { ArgumentList = { url }, UseShellExecute = false });
                }
                catch (System.ComponentModel.Win32Exception e)
                {
                    Warn($"could not open a browser ({e.Message}); open the link above");
                }
            }

            return ExitCodes.Ok;
        });
        return command;
    }

    private static bool NeedsDocker(Application app) => app.Services.Any(s => s.EffectiveRuntime == RuntimeKind.Docker);

    // ---- down ---------------------------------------------------------------------------------------------------

    private static Command Down()
    {
        var file = SpecFile.CreateFileOption();
        var volumes = new Option<bool>("--volumes", "-v") { Description = "Also remove the app's named volumes (as docker compose down -v); external volumes are kept." };
        var command = new Command("down", "Stop every replica gracefully and the control plane.") { file, volumes };
        command.SetAction(async (parse, ct) =>
        {
            var specPath = SpecPathFor(parse.GetValue(file));
            if (specPath is null)
            {
                return ExitCodes.NotFound;
            }

            var state = ControlPlaneHost.StateDirectoryFor(specPath);
            var code = await StopAsync(state, specPath, ct);
            if (code == ExitCodes.Ok && parse.GetValue(volumes) && await ControlPlaneHost.RemoveVolumesAsync(state, Console.Error, ct) is { } problem)
            {
                Error(problem);
                return ExitCodes.Failed;
            }

            return code;
        });
        return command;
    }

    private static async Task<int> StopAsync(string state, string? specPath, CancellationToken ct)
    {
        if (!Directory.Exists(state))
        {
            Status("nothing to stop: no control plane has run here");
            return ExitCodes.Ok;
        }

        var (held, running) = await LockOrRunningAsync(state, ct);
        using var stateLock = held;
        if (held is null && running is null)
        {
            return ExitCodes.Failed;
        }

        using (var client = running)
        {
            if (client is not null)
            {
                try
                {
                    await client.PostAsync("/v1/shutdown", null, ct);
                }
                catch (HttpRequestException)
                {
                    // It stopped answering between the check and the request: another 'down' (or a Ctrl-C) is already
                    // stopping it. Wait for it to go, as if this request had asked.
                }

                var deadline = Stopwatch.StartNew();
                while (await client.AliveAsync(ct))
                {
                    if (deadline.Elapsed > TimeSpan.FromMinutes(3))
                    {
                        Error("the control plane is still running 3 minutes after it was asked to stop");
                        return ExitCodes.Failed;
                    }

                    await Task.Delay(100, ct);
                }

                Status("stopped");
                return await SweepAsync(state, AppNameOf(specPath), docker: false, ct);
            }
        }

        // No control plane answers (never detached, or killed): adopt what is left and stop it. When the store cannot be
        // read, stop what the drivers know of from their own records instead (issue #14 §4).
        string? app = AppNameOf(specPath);
        var storeReadable = true;
        if (File.Exists(Path.Combine(state, StateStore.FileName)))
        {
            try
            {
                await using var host = await ControlPlaneHost.StartAsync(state, ControlPlaneHost.RecordedAppNeedsDocker(state), api: false, ct);
                app = host.Plane.Current?.Application.Name ?? app;
                var count = host.Plane.Replicas.Length;
                await host.Plane.DownAsync(ct);
                await host.RemoveNodesAsync(ct);
                await host.StopDataPlaneAsync(ct);
                Status(count == 0 ? "nothing was running" : $"stopped {count} replica{(count == 1 ? "" : "s")} left by a control plane that is gone");
            }
            catch (StateStoreException e)
            {
                Error(e.Problem);
                Console.Error.WriteLine($"berth: fix: {e.Fix}");
                Status("stopping every replica the drivers know of instead (process records in .berth/runtime, Docker containers by their berth.app label)");
                storeReadable = false;
            }
        }

        var code = await SweepAsync(state, app, docker: !storeReadable, ct);
        // Last, once no replica is left: the data plane (and its standby) a killed control plane left running.
        try
        {
            await DataPlaneProcess.StopOrphanAsync(state, ct);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Error($"the data plane could not be stopped from its record in {state} ({e.Message}); stop it by the pid in {Path.Combine(state, "data-plane.json")}");
            return ExitCodes.Failed;
        }

        return code;
    }

    /// <summary>After a down: stops whatever the drivers still know of (a replica the store lost, or all of them when the
    /// store could not be read) and fails, naming each, if anything is left running. Docker is swept by label only when
    /// the store could not be read: a label names the app, not this copy of it (two folders may run a same-named app).</summary>
    private static async Task<int> SweepAsync(string state, string? app, bool docker, CancellationToken ct)
    {
        using var drivers = await DriverRecords.OpenAsync(state, docker, ct);
        var apps = drivers.Apps(docker ? app : null);
        var recorded = (await drivers.ListAsync(apps, ct)).Select(r => r.Handle.ReplicaId).ToList();
        var (stopped, left) = await drivers.StopAllAsync(apps, StopGrace, ct);
        if (stopped > 0)
        {
            Status($"stopped {stopped} replica{(stopped == 1 ? "" : "s")} the drivers still ran ({string.Join(", ", apps)})");
        }

        // Last, the cgroups left below the app's folder (a killed control plane's, a group busy when its replica went).
        var busy = await drivers.SweepCgroupsAsync(state, drivers.Apps(app), recorded, ct);
        if (busy.Count > 0)
        {
            Warn($"cgroups of this app still busy after down: {string.Join(", ", busy)}; they go with their last process ('berth down' again removes them)");
        }

        if (docker && drivers.DockerProblem is { } problem)
        {
            Warn($"Docker containers not checked: {problem}; when the engine is back, 'berth down' again (or 'docker ps --filter label=berth.app={app ?? "APP"}')");
        }

        if (left.Count > 0)
        {
            Error($"still running after down: {string.Join(", ", left.Select(r => $"{r.Handle.ReplicaId} ({r.Handle.Kind.ToString().ToLowerInvariant()}{(r.Status.Pid is { } pid ? $" pid {pid}" : "")})"))}; stop them by hand (kill PID / docker rm -f)");
            return ExitCodes.Failed;
        }

        return ExitCodes.Ok;
    }

    /// <summary>How long a replica stopped by <c>down</c>'s sweep gets after SIGTERM: 10 s, as <c>docker stop</c>.</summary>
    private static readonly TimeSpan StopGrace = TimeSpan.FromSeconds(10);

    /// <summary>The app's name from its spec, quietly (null when the spec is missing or does not load): what Docker's labels are matched on.</summary>
    private static string? AppNameOf(string? specPath)
    {
        if (specPath is null || !File.Exists(specPath))
        {
            return null;
        }

        try
        {
            return SpecLoader.LoadFile(specPath).Application?.Name;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>What <c>ps</c> tells when no control plane answers (killed, say): the replicas the drivers' own records show
    /// still running, as unmanaged, and how to resume (issue #14 §15). Exits 4 (no control plane) either way; null when a
    /// control plane answers (the caller asks it).</summary>
    internal static async Task<int?> TryPsUnmanagedAsync(string? file, string output, string? template, CancellationToken ct)
    {
        var specPath = SpecPathFor(file);
        if (specPath is null)
        {
            return ExitCodes.NotFound;
        }

        var state = ControlPlaneHost.StateDirectoryFor(specPath);
        using (var client = ApiClient.TryOpen(state))
        {
            if (client is not null && await client.AliveAsync(ct))
            {
                return null;
            }
        }

        var json = output != "table" && output != "wide";
        var spec = File.Exists(specPath) ? SpecLoader.LoadFile(specPath).Application : null;
        IReadOnlyList<DriverReplica> running = [];
        if (Directory.Exists(state))
        {
            using var drivers = await DriverRecords.OpenAsync(state, docker: spec is not null && NeedsDocker(spec), ct);
            running = [.. (await drivers.ListAsync(drivers.Apps(spec?.Name), ct)).Where(r => r.Running)];
        }

        if (running.Count == 0)
        {
            Error($"no control plane is running for this app (state folder {state}); start one with 'berth up' or 'berth up -d'");
            if (json)
            {
                Console.Out.WriteLine("[]");
            }

            return ExitCodes.Unavailable;
        }

        Warn($"no control plane is running for this app (state folder {state}): {running.Count} replica{(running.Count == 1 ? "" : "s")} still run{(running.Count == 1 ? "s" : "")} unmanaged " +
            "(nothing restarts, probes or routes them); 'berth up -d' resumes managing them without restarting them, 'berth down' stops them");
        IReadOnlyList<ReplicaInfo> replicas = [.. running.Select(r => new ReplicaInfo
        {
            Id = r.Handle.ReplicaId,
            Service = r.Handle.Service,
            Revision = r.Handle.Revision,
            Phase = "running",
            Reason = $"unmanaged: no control plane; 'berth up -d' resumes",
            Pid = r.Status.Pid ?? r.Handle.Pid,
            ContainerId = r.Handle.ContainerId,
            StartedAt = r.Status.StartedAt,
        })];
        if (!Output.TryWrite(JsonSerializer.SerializeToNode(replicas, Output.Json.IReadOnlyListReplicaInfo), output, template, Console.Out))
        {
            Output.Table(["REPLICA", "SERVICE", "PHASE", "PORTS", "REV", "REASON"],
                [.. replicas.Select(r => new[] { r.Id, r.Service, r.Phase, string.Join(",", r.Ports.Select(x => $"{x.Key}:{x.Value.ToString(CultureInfo.InvariantCulture)}")), r.Revision.ToString(CultureInfo.InvariantCulture), r.Reason ?? "" })],
                Console.Out);
        }

        return ExitCodes.Unavailable;
    }

    // ---- logs ---------------------------------------------------------------------------------------------------

    private static Command Logs()
    {
        var file = FileOptionWithoutShortAlias();
        var follow = new Option<bool>("--follow", "-f") { Description = "Keep printing new lines, also of replicas that start later (scale, rollout, restart)." };
        var targets = new Argument<string[]>("SERVICE|REPLICA") { Description = "Services (all their replicas) or replicas; none: every service.", Arity = ArgumentArity.ZeroOrMore };
        var tail = new Option<int?>("--tail", "-n") { Description = "Only the last N lines of each replica.", HelpName = "N" };
        var previous = new Option<bool>("--previous", "-p") { Description = "What ran before, as kubectl: a restarted replica's earlier runs, a removed replica's kept logs, or a service's replica removed last. (After logs, -p is --previous; the app's name is --project-name here.)" };
        var timestamps = new Option<bool>("--timestamps", "-t") { Description = "Show each line's time (as docker compose logs -t)." };
        var since = new Option<string?>("--since") { Description = "Only lines since this time: RFC 3339 (2026-01-02T15:04:05Z) or a duration back from now (10m), as docker compose logs --since.", HelpName = "TIME" };
        var command = new Command("logs", "Print services' or replicas' logs, several merged by time, prefixed by replica.") { file, follow, tail, previous, timestamps, since, targets };
        command.SetAction((parse, ct) => WithClientAsync(parse.GetValue(file), async client =>
        {
            DateTimeOffset? from = null;
            if (parse.GetValue(since) is { } sinceText)
            {
                if (Core.Model.Durations.TryParse(sinceText, out var back, out _))
                {
                    from = DateTimeOffset.UtcNow - back;
                }
                else if (DateTimeOffset.TryParse(sinceText, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var at))
                {
                    from = at;
                }
                else
                {
                    Error($"--since: '{sinceText}' is neither a time (2026-01-02T15:04:05Z) nor a duration (10m, 1h30m)");
                    return ExitCodes.Usage;
                }
            }

            var services = await client.GetAsync("/v1/services", ApiJson.Default.IReadOnlyListServiceInfo, ct);
            var names = parse.GetValue(targets) is { Length: > 0 } t ? t : [.. services.Select(s => s.Name)];
            var replicas = await client.GetAsync("/v1/replicas", ApiJson.Default.IReadOnlyListReplicaInfo, ct);
            // Every name checked first: a typo fails before anything is printed.
            var unknown = names.Where(n => services.All(s => s.Name != n) && replicas.All(r => r.Id != n) && !parse.GetValue(previous)).ToList();
            if (unknown.Count > 0)
            {
                unknown.ForEach(n => Error($"no service or replica '{n}'" + (Suggestions.Closest(n, services.Select(s => s.Name).Concat(replicas.Select(r => r.Id))) is { } close ? $"; did you mean '{close}'?" : "; see 'berth ps'")));
                return ExitCodes.NotFound;
            }

            var query = (parse.GetValue(tail) is { } n ? $"&tail={n}" : "") + (parse.GetValue(previous) ? "&previous=true" : "");
            string PathOf(string name, bool followNow, bool fromNow) =>
                (services.Any(s => s.Name == name) ? $"/v1/services/{Uri.EscapeDataString(name)}/logs" : $"/v1/replicas/{Uri.EscapeDataString(name)}/logs")
                + $"?follow={(followNow ? "true" : "false")}" + (fromNow ? "&tail=0" : query);
            var colors = ColorsOn(Console.Out);
            var (showTime, width) = (parse.GetValue(timestamps), Math.Max(14, replicas.Select(r => r.Id.Length).DefaultIfEmpty(0).Max()));
            void Print(LogLine entry)
            {
                if (from is { } f && entry.Time < f)
                {
                    return;
                }

                var time = showTime ? entry.Time.ToString("yyyy-MM-ddTHH:mm:ss.fffzzz ", CultureInfo.InvariantCulture) : "";
                Console.Out.WriteLine($"{Paint(entry.Replica.PadRight(width), ColorFor(entry.Replica), colors)} | {time}{entry.Text}");
            }

            if (!parse.GetValue(follow))
            {
                // Several targets: every line read, then printed in time order (as docker compose logs merges).
                var lines = new List<LogLine>();
                foreach (var name in names)
                {
                    await foreach (var line in client.StreamLinesAsync(PathOf(name, followNow: false, fromNow: false), null, ct))
                    {
                        lines.Add(JsonSerializer.Deserialize(line, ApiJson.Default.LogLine)!);
                    }
                }

                foreach (var entry in names.Length == 1 ? (IEnumerable<LogLine>)lines : lines.OrderBy(l => l.Time))
                {
                    Print(entry);
                }

                return ExitCodes.Ok;
            }

            // Following: one stream per replica, printed as lines come. The replicas of the named services are looked up
            // again every second, so replicas that start later (scale, rollout, restart) are followed from their first line.
            var gate = new object();
            var followed = new HashSet<string>(StringComparer.Ordinal);
            var streams = new List<Task>();
            async Task FollowAsync(string replica, string path)
            {
                try
                {
                    await foreach (var line in client.StreamLinesAsync(path, null, ct))
                    {
                        var entry = JsonSerializer.Deserialize(line, ApiJson.Default.LogLine)!;
                        lock (gate)
                        {
                            Print(entry);
                        }
                    }
                }
                catch (ApiException e) when (e.Status == 404)
                {
                    // Gone between the listing and the request.
                }
            }

            var initial = true;
            try
            {
                while (!ct.IsCancellationRequested)
                {
                    var now = await client.GetAsync("/v1/replicas", ApiJson.Default.IReadOnlyListReplicaInfo, ct);
                    foreach (var r in now.Where(r => names.Contains(r.Service) || names.Contains(r.Id)))
                    {
                        if (followed.Add(r.Id))
                        {
                            // Replicas there at the start honour --tail; later ones are new, so every line of theirs is printed.
                            var tailPart = initial && parse.GetValue(tail) is { } count ? $"&tail={count}" : "";
                            streams.Add(FollowAsync(r.Id, $"/v1/replicas/{Uri.EscapeDataString(r.Id)}/logs?follow=true{tailPart}"));
                        }
                    }

                    initial = false;
                    if (names.All(n => services.All(s => s.Name != n)) && streams.All(t => t.IsCompleted))
                    {
                        break; // only replicas named, and their streams ended
                    }

                    await Task.Delay(TimeSpan.FromSeconds(1), ct);
                }
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
            }
            catch (HttpRequestException)
            {
                // The control plane went away: what was printed stays printed.
            }

            await Task.WhenAll(streams).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            return ExitCodes.Ok;
        }, ct));
        return command;
    }

    // ---- helpers ------------------------------------------------------------------------------------------------

    /// <summary>For logs and events, where <c>-f</c> means follow (as docker compose logs -f).</summary>
    internal static Option<string?> FileOptionWithoutShortAlias() => new("--file")
    {
        Description = $"The spec file. Default: the first of {string.Join(", ", SpecLoader.DefaultFileNames)} in the current folder.",
        HelpName = "FILE",
    };

    private static string? StateFor(string? file) => SpecPathFor(file) is { } path ? ControlPlaneHost.StateDirectoryFor(path) : null;

    /// <summary>The spec file <c>-f</c> names (a folder: its default file), else the default one here; null (after saying so) when there is none.</summary>
    private static string? SpecPathFor(string? file)
    {
        if (file is null && GlobalOptions.ProjectName is { Length: > 0 } project)
        {
            var apps = AppRegistry.List().Where(a => a.Name == project).ToList();
            switch (apps.Count)
            {
                case 1:
                    return apps[0].State;
                case 0:
                    Error($"no app named '{project}' has run on this machine; 'berth ls' lists them");
                    return null;
                default:
                    Error($"{apps.Count} apps are named '{project}' ({string.Join(", ", apps.Select(a => a.Spec))}); pick one with -f FILE");
                    return null;
            }
        }

        var path = file ?? SpecLoader.FindDefaultFile(Environment.CurrentDirectory);
        if (path is null)
        {
            Error($"no spec file here; looked for {string.Join(", ", SpecLoader.DefaultFileNames)} in {Environment.CurrentDirectory}. Pass -f FILE.");
            return null;
        }

        if (Directory.Exists(path))
        {
            path = SpecLoader.FindDefaultFile(path) ?? Path.Combine(path, "berth.yaml");
        }

        return path;
    }

    internal static async Task<int> WithClientAsync(string? file, Func<ApiClient, Task<int>> action, CancellationToken ct)
    {
        var state = StateFor(file);
        if (state is null)
        {
            return ExitCodes.NotFound;
        }

        using var client = ApiClient.TryOpen(state);
        if (client is null || !await client.AliveAsync(ct))
        {
            Error($"no control plane is running for this app (state folder {state}); start one with 'berth up' or 'berth up -d'");
            return ExitCodes.Unavailable;
        }

        try
        {
            return await action(client);
        }
        catch (ApiException e)
        {
            Error(e.Message);
            return e.Status == 404 ? ExitCodes.NotFound : ExitCodes.Failed;
        }
        catch (HttpRequestException e)
        {
            Error($"the control plane stopped answering: {e.Message}");
            return ExitCodes.Unavailable;
        }
    }

    /// <summary>Prints, on stderr, what the control plane may and may not do here as its user (GET /v1/app's capabilities:
    /// every one for <c>up</c>, the unusable ones for <c>ps</c>) and each service whose CPU or memory limits are not
    /// enforced (its warnings). <paramref name="wait"/>: how long to wait for a just-started control plane to apply the spec.</summary>
    internal static async Task WarnLimitsAsync(ApiClient client, TimeSpan wait, bool everyCapability, CancellationToken ct)
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                var app = await client.GetAsync("/v1/app", ApiJson.Default.AppInfo, ct);
                foreach (var c in app.Capabilities)
                {
                    Capability(c.Usable, c.Message, everyCapability);
                }

                foreach (var w in app.Warnings)
                {
                    Warn(w.Message);
                }

                return;
            }
            catch (ApiException e) when (e.Status == 409)
            {
                // Nothing applied yet: a detached control plane applies the spec right after its API answers.
                if (deadline.Elapsed >= wait)
                {
                    return;
                }

                await Task.Delay(100, ct);
            }
        }
    }

    internal static string FormatEvent(EventInfo e)
    {
        var time = e.Time.ToLocalTime().ToString("HH:mm:ss.fff", CultureInfo.InvariantCulture);
        var who = e.Replica is { Length: > 0 } r ? r : e.Service ?? "";
        return $"{time}  {e.Type,-12} {who,-16} {e.Message}";
    }

    internal static void Status(string message) => Console.Error.WriteLine($"berth: {message}");

    /// <summary>One capability line: a warning when it cannot be used, else (with <paramref name="usableToo"/>) a status line.</summary>
    private static void Capability(bool usable, string message, bool usableToo)
    {
        if (!usable)
        {
            Warn(message);
        }
        else if (usableToo)
        {
            Status(message);
        }
    }

    internal static void Warn(string message) => Console.Error.WriteLine($"berth: {Paint("warning", "\u001b[33m", ColorsOn(Console.Error))}: {message}");

    internal static void Error(string message) => Console.Error.WriteLine($"berth: {Paint("error", "\u001b[31m", ColorsOn(Console.Error))}: {message}");

    internal static string Paint(string text, string color, bool on) => on ? $"{color}{text}\u001b[0m" : text;

    internal static bool ColorsOn(TextWriter writer) =>
        Environment.GetEnvironmentVariable("NO_COLOR") is null
        && (writer == Console.Out ? !Console.IsOutputRedirected : writer == Console.Error && !Console.IsErrorRedirected);

    private static readonly string[] Palette = ["\u001b[36m", "\u001b[32m", "\u001b[35m", "\u001b[34m", "\u001b[33m", "\u001b[96m", "\u001b[92m", "\u001b[95m"];

    internal static string ColorFor(string replica)
    {
        var service = replica.LastIndexOf('-') is var i and > 0 ? replica[..i] : replica;
        var hash = 0;
        foreach (var c in service)
        {
            hash = (hash * 31) + c;
        }

        return Palette[(hash & 0x7fffffff) % Palette.Length];
    }

    private static string Tail(string path, int lines) =>
        File.Exists(path) ? string.Join('\n', File.ReadLines(path).TakeLast(lines)) : "(no log)";
}
