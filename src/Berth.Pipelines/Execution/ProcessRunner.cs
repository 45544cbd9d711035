using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;

namespace Berth.Pipelines.Execution;

/// <summary>What to start: argv (no shell), folder and environment additions.</summary>
public sealed record ProcessSpec(IReadOnlyList<string> Argv, string WorkingDirectory, IReadOnlyDictionary<string, string> Environment);

/// <summary>How a process ended: its exit code, and whether it was stopped (cancel or timeout) rather than ending on its own.</summary>
public readonly record struct ProcessOutcome(int ExitCode, bool Stopped);

public enum OutputStream
{
    Stdout,
    Stderr,
}

/// <summary>
/// Runs a command as the leader of a new process group (through setsid), so that stopping it — SIGTERM,
/// a grace period, then SIGKILL, as docker stop — reaches every process it started. Output is masked before
/// it is split into lines, so a secret split across writes never reaches a line.
/// </summary>
public sealed partial class ProcessRunner(TimeProvider time)
{
    private const int SigKill = 9;
    private const int SigTerm = 15;

    /// <summary>Process groups of steps still running, so that <see cref="KillAll"/> can end them when the host exits.</summary>
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<int, byte> LiveGroups = new();

    /// <summary>How long to wait for the output pipes after the process group is gone (a process that left the group may hold them).</summary>
    private static readonly TimeSpan DrainTimeout = TimeSpan.FromSeconds(5);

    public async Task<ProcessOutcome> RunAsync(
        ProcessSpec spec,
        SecretMasker masker,
        Action<OutputStream, string> onLine,
        TimeSpan grace,
        CancellationToken cancellationToken)
    {
        var program = ResolveProgram(spec.Argv[0], spec.Environment, spec.WorkingDirectory)
            ?? throw new StepFailedException($"command '{spec.Argv[0]}' not found on PATH; install it or give its full path");
        if (!Directory.Exists(spec.WorkingDirectory))
        {
            throw new StepFailedException($"working directory '{spec.WorkingDirectory}' does not exist");
        }

        var start = new ProcessStartInfo("setsid")
        {
            WorkingDirectory = spec.WorkingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
        };
        start.ArgumentList.Add(program);
        foreach (var arg in spec.Argv.Skip(1))
        {
            start.ArgumentList.Add(arg);
        }

        foreach (var (name, value) in spec.Environment)
        {
            start.Environment[name] = value;
        }

        using var process = new Process { StartInfo = start };
        process.Start();
        process.StandardInput.Close();
        var group = process.Id;
        LiveGroups[group] = 0;
        var stdout = PumpAsync(process.StandardOutput, masker.Open(), line => onLine(OutputStream.Stdout, line));
        var stderr = PumpAsync(process.StandardError, masker.Open(), line => onLine(OutputStream.Stderr, line));

        var stopped = false;
        var exited = process.WaitForExitAsync(CancellationToken.None);
        var stopRequested = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using (cancellationToken.Register(() => stopRequested.TrySetResult()))
        {
            if (await Task.WhenAny(exited, stopRequested.Task).ConfigureAwait(false) != exited)
            {
                stopped = true;
                Signal(group, SigTerm);
                using var graceCts = new CancellationTokenSource();
                var graceOver = Task.Delay(grace, time, graceCts.Token);
                if (await Task.WhenAny(exited, graceOver).ConfigureAwait(false) != exited)
                {
                    Signal(group, SigKill);
                }

                await graceCts.CancelAsync().ConfigureAwait(false);
                await exited.ConfigureAwait(false);
            }
        }

        // Whatever the step left running in its group ends with it.
        Signal(group, SigKill);
        LiveGroups.TryRemove(group, out _);
        using var drain = new CancellationTokenSource(DrainTimeout);
        try
        {
            await Task.WhenAll(stdout, stderr).WaitAsync(drain.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            onLine(OutputStream.Stderr, "berth: output still open after the step ended (a process left its group); stopped reading it");
        }

        return new ProcessOutcome(process.ExitCode, stopped);
    }

    private static async Task PumpAsync(StreamReader reader, SecretMasker.Stream masker, Action<string> onLine)
    {
        var buffer = new char[4096];
        var line = new StringBuilder();
        void Emit(string masked)
        {
            foreach (var c in masked)
            {
                if (c == '\n')
                {
                    if (line.Length > 0 && line[^1] == '\r')
                    {
                        line.Length--;
                    }

                    onLine(line.ToString());
                    line.Clear();
                }
                else
                {
                    line.Append(c);
                }
            }
        }

        int read;
        while ((read = await reader.ReadAsync(buffer.AsMemory()).ConfigureAwait(false)) > 0)
        {
            Emit(masker.Write(buffer.AsSpan(0, read)));
        }

        Emit(masker.Flush());
        if (line.Length > 0)
        {
            onLine(line.ToString());
        }
    }

    /// <summary>SIGKILLs every step process group still running; for a host that is exiting before its runs finished.</summary>
    public static void KillAll()
    {
        foreach (var group in LiveGroups.Keys)
        {
            Signal(group, SigKill);
        }
    }

    /// <summary>The program's full path: as given when it has a '/', else the first match on the step's PATH.</summary>
    public static string? ResolveProgram(string program, IReadOnlyDictionary<string, string> environment, string workingDirectory)
    {
        if (program.Contains('/'))
        {
            var full = Path.GetFullPath(program, workingDirectory);
            return File.Exists(full) ? full : null;
        }

        var path = environment.TryGetValue("PATH", out var p) ? p : Environment.GetEnvironmentVariable("PATH") ?? "";
        foreach (var dir in path.Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(dir, program);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    }

    /// <summary>Signals the process group; the leader alone when the group is not formed yet.</summary>
    private static void Signal(int group, int signal)
    {
        if (Kill(-group, signal) != 0)
        {
            _ = Kill(group, signal);
        }
    }

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);
}

/// <summary>A step failed for a reason that is the user's to fix (missing program, bad folder, a failed rollout); the message says how.</summary>
public sealed class StepFailedException(string message) : Exception(message);
