using System.Collections.Concurrent;
using System.Diagnostics;
using Berth.Core.Routing;

namespace Berth.Mesh.Tests.Support;

/// <summary>A replica as a real child process (Berth.Mesh.TestUpstream), so tests can SIGKILL it.</summary>
internal sealed class UpstreamProcess : IDisposable
{
    private readonly Process _process;

    private UpstreamProcess(string name, int port, Process process)
    {
        Name = name;
        Port = port;
        _process = process;
    }

    public string Name { get; }

    public int Port { get; }

    public Upstream Upstream => new(Name, "127.0.0.1", Port, 1);

    /// <summary>Lines the process printed after "ready" (e.g. "delivered /poison").</summary>
    public ConcurrentQueue<string> Output { get; } = new();

    public bool HasExited => _process.HasExited;

    /// <summary>How many requests for <paramref name="path"/> reached this replica (with <c>--exit-on</c>).</summary>
    public int Deliveries(string path) => Output.Count(l => l == "delivered " + path);

    /// <summary>Waits for the process to exit (after a query of death), up to <paramref name="timeout"/>.</summary>
    public bool WaitForExit(TimeSpan timeout) => _process.WaitForExit(timeout);

    public static async Task<UpstreamProcess> StartAsync(string name, string? exitOn = null)
    {
        var port = Ports.Free();
        var dll = Path.Combine(AppContext.BaseDirectory, "Berth.Mesh.TestUpstream.dll");
        var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[] { dll, "--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--name", name })
        {
            start.ArgumentList.Add(arg);
        }

        if (exitOn is not null)
        {
            start.ArgumentList.Add("--exit-on");
            start.ArgumentList.Add(exitOn);
        }

        var process = Process.Start(start) ?? throw new InvalidOperationException("could not start the test upstream");
        var self = new UpstreamProcess(name, port, process);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        try
        {
            while (await process.StandardOutput.ReadLineAsync(cts.Token) is { } line)
            {
                if (line == "ready")
                {
                    _ = Task.Run(async () =>
                    {
                        while (await process.StandardOutput.ReadLineAsync() is { } more)
                        {
                            self.Output.Enqueue(more);
                        }
                    });
                    return self;
                }
            }
        }
        catch (OperationCanceledException)
        {
        }

        self.Dispose();
        throw new InvalidOperationException($"test upstream {name} did not print 'ready' within 60s: {await process.StandardError.ReadToEndAsync()}");
    }

    /// <summary>SIGKILL: no graceful shutdown, open connections are reset by the kernel.</summary>
    public void Kill()
    {
        _process.Kill();
        _process.WaitForExit(10_000);
    }

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            _process.Kill();
            _process.WaitForExit(10_000);
        }

        _process.Dispose();
    }
}
