using System.Diagnostics;
using System.Text.Json;

namespace Berth.EndToEnd.Tests.Support;

/// <summary>Runs the real <c>berth</c> program (the berth.dll built beside the tests) in an app folder, as a user would.</summary>
internal sealed class BerthCli(string directory)
{
    public sealed record Result(int Code, string Out, string Err)
    {
        public override string ToString() => $"exit {Code}\nstdout:\n{Out}\nstderr:\n{Err}";
    }

    public string Directory => directory;

    public string State => Path.Combine(directory, ".berth");

    /// <summary>Runs berth to its end; generous limit, the machine may be busy.</summary>
    public async Task<Result> RunAsync(params string[] args)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = directory, UseShellExecute = false };
        info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "berth.dll"));
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        info.Environment["NO_COLOR"] = "1";
        info.Environment["DOTNET_NOLOGO"] = "1";
        info.Environment.Remove("COMPOSE_PROFILES");
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(4));
        using var p = Process.Start(info)!;
        var stdout = p.StandardOutput.ReadToEndAsync(timeout.Token);
        var stderr = p.StandardError.ReadToEndAsync(timeout.Token);
        try
        {
            await p.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"berth {string.Join(' ', args)} did not finish in 4 minutes");
        }

        return new Result(p.ExitCode, await stdout, await stderr);
    }

    public async Task<List<JsonElement>> EventsAsync()
    {
        var r = await RunAsync("events", "-o", "json");
        Assert.True(r.Code == 0, $"berth events failed: {r}");
        return [.. r.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement)];
    }

    /// <summary>The detached control plane's pid from api.json, or null when it is not there.</summary>
    public int? ControlPlanePid()
    {
        var file = Path.Combine(State, "api.json");
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(file));
            return doc.RootElement.GetProperty("pid").GetInt32();
        }
        catch (Exception e) when (e is IOException or JsonException or KeyNotFoundException)
        {
            return null;
        }
    }

    /// <summary>Stops the app whatever state the test left it in: berth down, then SIGKILL to a control plane that is still
    /// there, then berth down again (which adopts and stops replicas left behind).</summary>
    public async Task DownAsync()
    {
        var pid = ControlPlanePid();
        try
        {
            await RunAsync("down");
        }
        finally
        {
            if (pid is { } id && System.IO.Directory.Exists($"/proc/{id}"))
            {
                try
                {
                    Process.GetProcessById(id).Kill();
                }
                catch (Exception e) when (e is ArgumentException or InvalidOperationException)
                {
                }

                await RunAsync("down");
            }
        }
    }
}
