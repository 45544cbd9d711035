using System.Globalization;
using global::Docker.DotNet;

namespace Berth.Chaos.Tests;

/// <summary>A Docker engine of the test's own, beside the machine's (which is never touched): its own socket, data root, exec
/// root and pid file in a folder of its own, no bridge and no iptables (containers use the host network), vfs storage (no
/// mounts to leave behind). Killing it is safe; disposing it stops it, its containerd and their containers, and deletes
/// the folder.</summary>
internal sealed class OwnDockerd : IAsyncDisposable
{
    private readonly string _root;
    private readonly bool _liveRestore;
    private Process? _dockerd;

    private OwnDockerd(string root, bool liveRestore)
    {
        _root = root;
        _liveRestore = liveRestore;
        File.WriteAllText(Path.Combine(root, "daemon.json"), "{}");
    }

    /// <summary>The engine's address, for DOCKER_HOST.</summary>
    public string Host => $"unix://{Path.Combine(_root, "docker.sock")}";

    public int Pid => _dockerd?.Id ?? throw new InvalidOperationException("dockerd is not running");

    /// <summary>dockerd's log (every start appends).</summary>
    public string Log => File.Exists(LogFile) ? File.ReadAllText(LogFile) : "";

    private string LogFile => Path.Combine(_root, "dockerd.log");

    /// <summary>Starts an engine in a fresh folder (a short path: the sockets below it must fit a unix address) and waits until it answers.</summary>
    public static async Task<OwnDockerd> StartAsync(bool liveRestore)
    {
        var root = Path.Combine("/tmp", "bcd-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(root);
        var engine = new OwnDockerd(root, liveRestore);
        await engine.StartAgainAsync();
        return engine;
    }

    /// <summary>
    /// Starts dockerd on the same folders (after a kill) and waits until it answers a ping. A dockerd that exits while
    /// starting is started again, at most 3 times, as docker.service's <c>Restart=always</c> does: after a SIGKILL its
    /// managed containerd may still hold its state, and the new one then fails with "timeout waiting for containerd to
    /// start" (seen in a CI run); the stale containerd is stopped first, as systemd stops the unit's leftovers.
    /// </summary>
    public async Task StartAgainAsync()
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await StartOnceAsync();
                return;
            }
            catch (DockerdExitedException) when (attempt < 3)
            {
                foreach (var pid in ProcessesUsing(_root).Where(p => Path.GetFileName(File.ReadAllText($"/proc/{p}/cmdline").Split('\0')[0]) == "containerd"))
                {
                    try
                    {
                        Process.GetProcessById(pid).Kill();
                    }
                    catch (Exception e) when (e is ArgumentException or InvalidOperationException)
                    {
                    }
                }

                File.AppendAllText(LogFile, $"== dockerd exited while starting (attempt {attempt}); started again\n");
            }
        }
    }

    private sealed class DockerdExitedException(string message) : Exception(message);

    private async Task StartOnceAsync()
    {
        var info = new ProcessStartInfo("dockerd") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in new[]
        {
            "--host", Host, "--data-root", Path.Combine(_root, "data"), "--exec-root", Path.Combine(_root, "exec"),
            "--pidfile", Path.Combine(_root, "docker.pid"), "--config-file", Path.Combine(_root, "daemon.json"),
            "--bridge=none", "--iptables=false", "--ip6tables=false", "--storage-driver=vfs", "--cgroup-parent=berth-chaos-dockerd",
            $"--live-restore={(_liveRestore ? "true" : "false")}",
        })
        {
            info.ArgumentList.Add(arg);
        }

        _dockerd = Process.Start(info)!;
        var log = File.AppendText(LogFile);
        log.AutoFlush = true;
        _dockerd.OutputDataReceived += (_, e) => Append(log, e.Data);
        _dockerd.ErrorDataReceived += (_, e) => Append(log, e.Data);
        _dockerd.BeginOutputReadLine();
        _dockerd.BeginErrorReadLine();
        await Poll.UntilAsync(async () =>
        {
            if (_dockerd.HasExited)
            {
                throw new DockerdExitedException($"dockerd exited with {_dockerd.ExitCode}:\n{Log}");
            }

            return await PingsAsync();
        }, TimeSpan.FromSeconds(90), $"the test's own dockerd answering on {Host}");
    }

    private static void Append(StreamWriter log, string? line)
    {
        if (line is not null)
        {
            lock (log)
            {
                log.WriteLine(line);
            }
        }
    }

    /// <summary>Whether the engine answers a ping within 5 s.</summary>
    public async Task<bool> PingsAsync()
    {
        try
        {
            using var client = new DockerClientConfiguration(new Uri(Host)).CreateClient();
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await client.System.PingAsync(timeout.Token);
            return true;
        }
        catch (Exception e) when (e is HttpRequestException or IOException or OperationCanceledException or System.Net.Sockets.SocketException or DockerApiException)
        {
            return false;
        }
    }

    /// <summary>SIGKILL to dockerd alone (its containerd and the containers' shims live on, as after a crash of the daemon).</summary>
    public async Task KillAsync()
    {
        var pid = Pid;
        _dockerd!.Kill();
        await _dockerd.WaitForExitAsync();
        await Poll.UntilAsync(() => !Directory.Exists($"/proc/{pid}"), TimeSpan.FromSeconds(20), "dockerd gone after SIGKILL");
    }

    public async ValueTask DisposeAsync()
    {
        if (_dockerd is { HasExited: false } dockerd)
        {
            // SIGTERM: dockerd stops its containers (without live restore) and its containerd.
            using (Process.Start("kill", ["-TERM", dockerd.Id.ToString(CultureInfo.InvariantCulture)]))
            {
            }

            if (!dockerd.WaitForExit(TimeSpan.FromSeconds(60)))
            {
                dockerd.Kill();
            }
        }

        // Whatever still runs from this engine's folders (its containerd, shims, container processes of a live-restored
        // engine): by pid, found by the folder in its command line.
        foreach (var pid in ProcessesUsing(_root))
        {
            try
            {
                Process.GetProcessById(pid).Kill(entireProcessTree: true);
            }
            catch (Exception e) when (e is ArgumentException or InvalidOperationException)
            {
            }
        }

        // dockerd bind-mounts its data root and pins a network namespace under its exec root: unmounted deepest first.
        var mounts = File.ReadAllLines("/proc/self/mountinfo").Select(l => l.Split(' ')[4]).Where(m => m.StartsWith(_root + "/", StringComparison.Ordinal))
            .OrderByDescending(m => m.Length).ToList();
        foreach (var mount in mounts)
        {
            using var umount = Process.Start(new ProcessStartInfo("umount", ["-l", mount]) { UseShellExecute = false })!;
            await umount.WaitForExitAsync();
        }

        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A mount left by the engine; /tmp is cleaned with the machine.
        }
    }

    /// <summary>Processes whose command line names <paramref name="folder"/>.</summary>
    private static List<int> ProcessesUsing(string folder)
    {
        var found = new List<int>();
        foreach (var proc in Directory.EnumerateDirectories("/proc"))
        {
            if (int.TryParse(Path.GetFileName(proc), NumberStyles.None, CultureInfo.InvariantCulture, out var pid) && pid != Environment.ProcessId)
            {
                try
                {
                    if (File.ReadAllText(Path.Combine(proc, "cmdline")).Contains(folder, StringComparison.Ordinal))
                    {
                        found.Add(pid);
                    }
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                }
            }
        }

        return found;
    }
}
