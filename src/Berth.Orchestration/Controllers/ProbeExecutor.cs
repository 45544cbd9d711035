using System.Diagnostics;
using System.Net.Sockets;
using Berth.Core.Model;

namespace Berth.Orchestration.Controllers;

/// <summary>Where a probe is aimed: the replica's host and port, and for exec probes the container to run in.</summary>
public sealed record ProbeTarget(string Host, int? Port)
{
    public string? ContainerId { get; init; }

    /// <summary>The replica's handle: exec probes run through its driver.</summary>
    public Berth.Runtime.ReplicaHandle? Replica { get; init; }

    public string? WorkingDirectory { get; init; }
}

public readonly record struct ProbeOutcome(bool Success, string Message);

/// <summary>Runs one probe once. The real one does HTTP, TCP and exec; tests of the controllers use a scripted one.</summary>
public interface IProbeExecutor
{
    Task<ProbeOutcome> RunAsync(Probe probe, ProbeTarget target, CancellationToken cancellationToken);
}

/// <summary>HTTP GET (200–399 passes, redirects not followed), TCP connect, or exec (exit 0 passes), each bounded by the probe's timeout.</summary>
public sealed class ProbeExecutor : IProbeExecutor, IDisposable
{
    private readonly HttpClient _http = new(new SocketsHttpHandler
    {
        AllowAutoRedirect = false,
        UseProxy = false,
        PooledConnectionLifetime = TimeSpan.FromMinutes(1),
    })
    {
        Timeout = Timeout.InfiniteTimeSpan,
    };

    public async Task<ProbeOutcome> RunAsync(Probe probe, ProbeTarget target, CancellationToken cancellationToken)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        cts.CancelAfter(probe.Timeout);
        try
        {
            return probe.Kind switch
            {
                ProbeKind.Http => await HttpAsync(probe, target, cts.Token),
                ProbeKind.Tcp => await TcpAsync(target, cts.Token),
                _ => await ExecAsync(probe, target, cts.Token),
            };
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return new ProbeOutcome(false, $"timed out after {Durations.Format(probe.Timeout)}");
        }
        catch (Exception e) when (e is HttpRequestException or SocketException or IOException or System.ComponentModel.Win32Exception)
        {
            return new ProbeOutcome(false, e.Message);
        }
    }

    public void Dispose() => _http.Dispose();

    private async Task<ProbeOutcome> HttpAsync(Probe probe, ProbeTarget target, CancellationToken ct)
    {
        if (target.Port is null)
        {
            return new ProbeOutcome(false, "no port to probe: give the service an endpoint or the probe a port");
        }

        var path = probe.Path.StartsWith('/') ? probe.Path : "/" + probe.Path;
        using var request = new HttpRequestMessage(HttpMethod.Get, $"http://{target.Host}:{target.Port}{path}");
        foreach (var (name, value) in probe.Headers)
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }

        using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
        var code = (int)response.StatusCode;
        return new ProbeOutcome(code is >= 200 and < 400, $"HTTP {code} from GET {path}");
    }

    private static async Task<ProbeOutcome> TcpAsync(ProbeTarget target, CancellationToken ct)
    {
        if (target.Port is null)
        {
            return new ProbeOutcome(false, "no port to probe: give the service an endpoint or the probe a port");
        }

        using var client = new TcpClient();
        await client.ConnectAsync(target.Host, target.Port.Value, ct);
        return new ProbeOutcome(true, $"connected to port {target.Port}");
    }

    private static async Task<ProbeOutcome> ExecAsync(Probe probe, ProbeTarget target, CancellationToken ct)
    {
        if (probe.Command.IsDefaultOrEmpty)
        {
            return new ProbeOutcome(false, "exec probe has no command");
        }

        // A container's probe runs inside it, as Kubernetes' exec probes do.
        IEnumerable<string> argv = target.ContainerId is null ? probe.Command : ["docker", "exec", target.ContainerId, .. probe.Command];
        var info = new ProcessStartInfo { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        var list = argv.ToList();
        info.FileName = list[0];
        foreach (var arg in list.Skip(1))
        {
            info.ArgumentList.Add(arg);
        }

        if (target.WorkingDirectory is not null && target.ContainerId is null)
        {
            info.WorkingDirectory = target.WorkingDirectory;
        }

        using var process = Process.Start(info)!;
        var drainOut = process.StandardOutput.ReadToEndAsync(ct);
        var drainErr = process.StandardError.ReadToEndAsync(ct);
        try
        {
            await process.WaitForExitAsync(ct);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }

        await Task.WhenAll(drainOut, drainErr);
        return new ProbeOutcome(process.ExitCode == 0, $"exit code {process.ExitCode}");
    }
}
