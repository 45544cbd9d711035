using System.Diagnostics;
using System.Runtime.InteropServices;
using Berth.Core.Diagnostics;
using Berth.Mesh;
using Berth.Mesh.DataPlane;
using Microsoft.Extensions.Logging;

namespace Berth.Cli.ControlPlane;

/// <summary>
/// The data plane as its own process (issue #13): one per app, the hidden <c>berth __data-plane --state DIR</c>, started
/// detached (its own session, so neither a Ctrl-C in the terminal nor a <c>kill -9</c> of the control plane reaches it),
/// adopted by the next control plane through <c>.berth/data-plane.json</c>, stopped by <c>berth down</c> after the replicas.
/// </summary>
internal static class DataPlaneProcess
{
    /// <summary><c>in-process</c> runs the mesh inside the control plane as before (debugging, or a machine where the
    /// separate process cannot start); anything else (the default) runs the data plane process.</summary>
    public const string ModeVariable = "BERTH_DATA_PLANE";

    /// <summary>What the data plane keeps of the control plane's environment: what the runtime and the logs need. The
    /// rest (a user's tokens, cloud credentials, the app's own variables) never reaches the process that handles traffic.</summary>
    private static readonly string[] KeptVariables = ["PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ", "DOTNET_ROOT", "DOTNET_CLI_HOME", DataPlaneServer.BuildVariable, DataPlaneServer.PassVariable, StartupTrace.Variable,
        Berth.Mesh.MeshHostOptions.EventLoopsVariable];

    /// <summary>Launched data planes, referenced so the runtime reaps them if they exit while this control plane lives.</summary>
    private static readonly List<Process> Launched = [];

    /// <summary><c>0</c>: no warm standby data plane (saves its memory; a lost data plane is then replaced by starting a
    /// new process, about a second instead of milliseconds).</summary>
    public const string StandbyVariable = "BERTH_DATA_PLANE_STANDBY";

    public static bool InProcess => string.Equals(Environment.GetEnvironmentVariable(ModeVariable), "in-process", StringComparison.OrdinalIgnoreCase);

    /// <summary>The connected client, launching a data plane when none answers (and again whenever it dies).</summary>
    public static async Task<DataPlaneClient> ConnectAsync(string stateDirectory, Mesh.Observability.IMeshRequestObserver? observer, CancellationToken ct)
    {
        DataPlaneFiles.EnsureToken(stateDirectory);
        // A fresh start (no data plane, active or standby, lives): launched before anything else, so its .NET start runs
        // beside the client's own first-use costs (its logger, the channel's JSON) instead of after them (issue #21, round 7:
        // 290-470 ms at load 30). One that lives is adopted (or its standby promoted) by the client, as before.
        var launched = DataPlaneFiles.ReadLive(stateDirectory) is null && DataPlaneFiles.ReadLive(stateDirectory, DataPlaneFiles.StandbyFile) is null;
        if (launched)
        {
            await LaunchAsync(stateDirectory, standby: false, ct);
        }

        return await DataPlaneClient.ConnectAsync(new DataPlaneClientOptions(stateDirectory)
        {
            Launched = launched,
            Launch = (standby, launch) => LaunchAsync(stateDirectory, standby, launch),
            Standby = !string.Equals(Environment.GetEnvironmentVariable(StandbyVariable), "0", StringComparison.Ordinal),
            HoldStandby = true, // ControlPlaneHost releases it once the app's replicas have started
            RequestObserver = observer,
            LoggerFactory = ClientLogs.Factory,
        }, ct);
    }

    /// <summary>The channel's warnings (lost, re-established) in the control plane's output: its log when detached. In a
    /// holder of its own, made on first use: as a field of this class its construction (~0.1-0.3 s of logging's first use at
    /// load) ran in the class's initializer, before the first launch (issue #21, round 7).</summary>
    private static class ClientLogs
    {
        public static readonly ILoggerFactory Factory = LoggerFactory.Create(b => b.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "HH:mm:ss ";
        }).SetMinimumLevel(LogLevel.Information).AddFilter("Microsoft", LogLevel.Warning));
    }

    /// <summary>Starts <c>berth __data-plane</c> detached; the client then waits for its channel.</summary>
    public static Task LaunchAsync(string stateDirectory, bool standby, CancellationToken ct)
    {
        ct.ThrowIfCancellationRequested();
        RemoveStaleSockets(stateDirectory);
        var info = new ProcessStartInfo("/bin/sh") { UseShellExecute = false, WorkingDirectory = stateDirectory };
        // setsid: its own session, so a signal to the control plane's group never reaches it; arguments as positional
        // parameters, never interpolated into the script (as the detached control plane is started).
        info.ArgumentList.Add("-c");
        info.ArgumentList.Add("exec setsid \"$0\" \"$@\" >>\"$BERTH_DATA_PLANE_LOG\" 2>&1 </dev/null");
        foreach (var a in Commands.ControlPlaneCommands.SelfCommand())
        {
            info.ArgumentList.Add(a);
        }

        info.ArgumentList.Add(DataPlaneServer.Command);
        info.ArgumentList.Add("--state");
        info.ArgumentList.Add(Path.GetFullPath(stateDirectory));
        if (standby)
        {
            info.ArgumentList.Add("--standby");
        }
        info.Environment.Clear();
        foreach (var name in KeptVariables)
        {
            if (Environment.GetEnvironmentVariable(name) is { } value)
            {
                info.Environment[name] = value;
            }
        }

        foreach (var name in Environment.GetEnvironmentVariables().Keys.OfType<string>().Where(n => n.StartsWith("DOTNET_", StringComparison.Ordinal)))
        {
            info.Environment[name] = Environment.GetEnvironmentVariable(name);
        }

        foreach (var (name, value) in DataPlaneRuntime.Environment)
        {
            info.Environment.TryAdd(name, value);
        }

        info.Environment["BERTH_DATA_PLANE_LOG"] = Path.Combine(stateDirectory, DataPlaneFiles.LogFile);
        StartupTrace.Mark(standby ? "launch data plane (standby)" : "launch data plane");
        lock (Launched)
        {
            Launched.RemoveAll(p => p.HasExited);
            Launched.Add(Process.Start(info)!);
        }

        return Task.CompletedTask;
    }

    /// <summary>Stops a data plane that no control plane is connected to (<c>berth down</c> after a control plane died):
    /// asked over its channel, else SIGTERM. Returns whether one was running.</summary>
    public static async Task<bool> StopOrphanAsync(string stateDirectory, CancellationToken ct)
    {
        if (DataPlaneFiles.ReadLive(stateDirectory, DataPlaneFiles.StandbyFile) is { } standby)
        {
            // A standby serves nothing and keeps nothing: it is simply ended.
            using var process = Process.GetProcessById(standby.Pid);
            process.Kill();
        }

        TryDelete(Path.Combine(stateDirectory, DataPlaneFiles.StandbyFile));
        if (DataPlaneFiles.ReadInfo(stateDirectory) is not { } info)
        {
            TryRemoveStaleSockets(stateDirectory);
            return false;
        }

        try
        {
            await using var client = await DataPlaneClient.ConnectAsync(new DataPlaneClientOptions(stateDirectory) { ConnectTimeout = TimeSpan.FromSeconds(2) }, ct);
            await client.ShutdownAsync(ct);
        }
        catch (Exception e) when (e is IOException or DataPlaneRefusedException)
        {
            if (DataPlaneFiles.IsDataPlaneProcess(info.Pid))
            {
                using var process = Process.GetProcessById(info.Pid);
                process.Kill();
            }
        }

        TryDelete(Path.Combine(stateDirectory, DataPlaneFiles.InfoFile));
        TryDelete(Path.Combine(stateDirectory, DataPlaneFiles.RoutesFile));
        TryRemoveStaleSockets(stateDirectory);
        return true;
    }

    /// <summary>Deletes a file of the state folder if it can: a read-only folder (issue #14 §4) must not stop 'down' from
    /// ending the process itself.</summary>
    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
    }

    private static void TryRemoveStaleSockets(string stateDirectory)
    {
        try
        {
            RemoveStaleSockets(stateDirectory);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
    }

    /// <summary>Channel sockets of data planes that are gone (a <c>kill -9</c> leaves its socket file).</summary>
    private static void RemoveStaleSockets(string stateDirectory)
    {
        foreach (var path in Directory.EnumerateFiles(stateDirectory, "data-plane-*.sock"))
        {
            var name = Path.GetFileNameWithoutExtension(path);
            if (int.TryParse(name.AsSpan("data-plane-".Length), System.Globalization.CultureInfo.InvariantCulture, out var pid) && !DataPlaneFiles.IsDataPlaneProcess(pid))
            {
                File.Delete(path);
            }
        }
    }

    /// <summary>The data plane process's main: serve until a control plane says stop (<c>berth down</c>) or SIGTERM.</summary>
    public static async Task<int> RunAsync(string[] args)
    {
        if (args is not (["--state", _] or ["--state", _, "--standby"]))
        {
            await Console.Error.WriteLineAsync($"usage: berth {DataPlaneServer.Command} --state DIR [--standby] (started by the control plane, not by hand)");
            return ExitCodes.Usage;
        }

        var state = args[1];
        StartupTrace.Mark(args.Length == 3 ? "data plane (standby): main" : "data plane: main");
        using var stop = new CancellationTokenSource();
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c =>
        {
            c.Cancel = true;
            stop.Cancel();
        });
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, c =>
        {
            c.Cancel = true;
            stop.Cancel();
        });
        using var logs = LoggerFactory.Create(b => b.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ ";
            o.UseUtcTimestamp = true;
        }).SetMinimumLevel(LogLevel.Information).AddFilter("Microsoft", LogLevel.Warning));
        DataPlaneServer server;
        try
        {
            server = await DataPlaneServer.StartAsync(new DataPlaneServerOptions(state) { Mesh = new MeshHostOptions { LoggerFactory = logs }, Standby = args.Length == 3 }, stop.Token);
        }
        catch (Exception e) when (e is InvalidOperationException or IOException or MeshListenerException)
        {
            await Console.Error.WriteLineAsync($"berth data plane: {e.Message}");
            return ExitCodes.Failed;
        }

        StartupTrace.Mark(args.Length == 3 ? "data plane (standby): serving" : "data plane: serving");
        await using (server)
        {
            await ((Task)Task.WhenAny(server.ShutdownRequested, Task.Delay(Timeout.Infinite, stop.Token))).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }

        return ExitCodes.Ok;
    }
}
