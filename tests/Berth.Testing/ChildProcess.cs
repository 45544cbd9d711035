using System.Diagnostics;

namespace Berth.Testing;

/// <summary>Runs a child process to its end within a deadline, collecting stdout and stderr; on the deadline it kills the
/// whole process tree (nothing leaks into the next test) and says which command did not finish and what it printed.</summary>
public static class ChildProcess
{
    /// <summary>A start info for <paramref name="program"/> with <paramref name="args"/>, each passed as one argument.</summary>
    public static ProcessStartInfo Start(string program, IEnumerable<string> args)
    {
        var start = new ProcessStartInfo(program) { UseShellExecute = false };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        return start;
    }

    /// <summary>Starts <paramref name="start"/> with its output read and dropped, so a long-running child never blocks on a
    /// full pipe; the caller ends it.</summary>
    public static Process StartDrained(ProcessStartInfo start)
    {
        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        var process = Process.Start(start) ?? throw new InvalidOperationException($"{start.FileName} did not start");
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    /// <summary>Runs <paramref name="start"/> (its output is redirected here) and returns its exit code and output;
    /// <paramref name="what"/> names the command in the timeout's message.</summary>
    public static async Task<(int Exit, string Stdout, string Stderr)> RunAsync(ProcessStartInfo start, TimeSpan timeout, string what)
    {
        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"{what} did not start");
        // Read without the deadline, so that what it printed is still there to show when the deadline passes; the waits for
        // the output below are bounded, as a process that left the tree (a daemon) may hold the pipes open.
        var stdout = process.StandardOutput.ReadToEndAsync(CancellationToken.None);
        var stderr = process.StandardError.ReadToEndAsync(CancellationToken.None);
        using var deadline = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(deadline.Token);
            return (process.ExitCode, await stdout.WaitAsync(deadline.Token), await stderr.WaitAsync(deadline.Token));
        }
        catch (OperationCanceledException)
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }

            string printed;
            try
            {
                printed = $"stdout so far:\n{await stdout.WaitAsync(OutputGrace)}\nstderr so far:\n{await stderr.WaitAsync(OutputGrace)}";
            }
            catch (TimeoutException)
            {
                printed = "its output is still held open by a process outside its tree";
            }

            throw new TimeoutException($"{what} did not finish (or left its output open) within {timeout}; {printed}");
        }
    }

    // How long the output of a killed process tree may take to reach its end.
    private static readonly TimeSpan OutputGrace = TimeSpan.FromSeconds(10);
}
