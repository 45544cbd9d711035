
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

    public static async Task<UpstreamProcess> StartAsync(string name)
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

        var process = Process.Start(start) ?? throw new InvalidOperationException("could not start the test upstream");
        var self = new UpstreamProcess(name, port, process);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        try
        {
            while (await process.StandardOutput.ReadLineAsync(cts.Token) is { } line)
            {
                if (line == "ready")
                {
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
