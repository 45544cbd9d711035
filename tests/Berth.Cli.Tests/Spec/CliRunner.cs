using System.Diagnostics;

namespace Berth.Cli.Tests.Spec;

/// <summary>Runs the real <c>berth</c> program (the built berth.dll beside the tests) as a child process.</summary>
internal static class CliRunner
{
    public sealed record Run(int ExitCode, string Stdout, string Stderr);

    public static async Task<Run> RunAsync(string workingDirectory, params string[] args)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "berth.dll"));
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        start.Environment["NO_COLOR"] = "1";
        start.Environment["DOTNET_NOLOGO"] = "1";
        start.Environment.Remove("COMPOSE_PROFILES");

        // Generous: the machine running the tests may be busy.
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync(timeout.Token);
        var stderr = process.StandardError.ReadToEndAsync(timeout.Token);
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"berth {string.Join(' ', args)} did not exit within 120s");
        }

        return new Run(process.ExitCode, await stdout, await stderr);
    }

    public static string Repo(string relative)
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Berth.slnx")))
        {
            dir = dir.Parent;
        }

        return Path.GetFullPath(Path.Combine(dir?.FullName ?? throw new InvalidOperationException("Berth.slnx not found"), relative));
    }
}
