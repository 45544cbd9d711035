using Berth.Core.Model;
using Berth.Core.Probing;
using Berth.Core.Routing;
using Berth.Runtime;

namespace Berth.Orchestration.Controllers;

/// <summary>Where a probe is aimed: the replica's host and port, and for exec probes the replica and its driver.</summary>
public sealed record ProbeTarget(string Host, int? Port)
{
    public string? ContainerId { get; init; }

    /// <summary>The replica's pod: HTTP and TCP probes connect inside it. Null: the host network.</summary>
    public PodNetwork? Pod { get; init; }

    /// <summary>The replica's handle: exec probes run through its driver.</summary>
    public ReplicaHandle? Replica { get; init; }

    /// <summary>The driver that runs the replica (exec probes call its <see cref="IWorkloadDriver.ExecAsync"/>).</summary>
    public IWorkloadDriver? Driver { get; init; }

    public string? WorkingDirectory { get; init; }
}

/// <summary>Runs one probe once. The real one does HTTP, TCP and exec; tests of the controllers use a scripted one.</summary>
public interface IProbeExecutor
{
    Task<ProbeOutcome> RunAsync(Probe probe, ProbeTarget target, CancellationToken cancellationToken);

    /// <summary>Returns once the target's port accepts a connection, or after <paramref name="limit"/> (false), so a readiness probe
    /// that has not passed yet runs the moment the replica listens. The default (a scripted prober) does not wait.</summary>
    Task<bool> WaitForPortAsync(ProbeTarget target, TimeSpan limit, CancellationToken cancellationToken) => Task.FromResult(true);
}

/// <summary>Hands each probe to the runner for its kind (HTTP and TCP from Core, shared with the mesh's active checks;
/// exec through the replica's driver), each bounded by the probe's timeout on the injected clock.</summary>
public sealed class ProbeExecutor(TimeProvider? time = null) : IProbeExecutor, IDisposable
{
    private readonly TimeProvider _time = time ?? TimeProvider.System;
    private readonly HttpProbeRunner _http = new(time);
    private readonly TcpProbeRunner _tcp = new(time);
    private readonly ExecProbeRunner _exec = new(time);

    public Task<ProbeOutcome> RunAsync(Probe probe, ProbeTarget target, CancellationToken cancellationToken) => probe.Kind switch
    {
        ProbeKind.Http => _http.RunAsync(probe, target.Host, target.Port, cancellationToken, target.Pod),
        ProbeKind.Tcp => _tcp.RunAsync(probe, target.Host, target.Port, cancellationToken, target.Pod),
        ProbeKind.Exec => _exec.RunAsync(probe, target, cancellationToken),
    };

    /// <summary>A replica in a pod is not watched (its port is inside the pod's namespace, where only the probe itself
    /// connects): it keeps the 200 ms first-pass retry.</summary>
    public Task<bool> WaitForPortAsync(ProbeTarget target, TimeSpan limit, CancellationToken cancellationToken) =>
        target.Port is { } port && target.Pod is null ? PortWatch.WaitOpenAsync(target.Host, port, limit, _time, cancellationToken) : Task.FromResult(true);

    public void Dispose() => _http.Dispose();
}

/// <summary>Waits for a port to accept a connection, trying every <see cref="Interval"/>: on loopback a closed port refuses at
/// once, so a try costs microseconds, and the one connection that succeeds is closed unused (as a kubelet TCP probe's).</summary>
public static class PortWatch
{
    /// <summary>10 ms between tries: a replica is probed within 10 ms of listening instead of up to the 200 ms retry later.</summary>
    public static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(10);

    /// <summary>True once <paramref name="host"/>:<paramref name="port"/> accepts a connection; false after <paramref name="limit"/>.</summary>
    public static async Task<bool> WaitOpenAsync(string host, int port, TimeSpan limit, TimeProvider time, CancellationToken cancellationToken)
    {
        using var deadline = new CancellationTokenSource(limit, time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, deadline.Token);
        try
        {
            while (true)
            {
                try
                {
                    using var socket = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
                    await socket.ConnectAsync(host, port, linked.Token);
                    return true;
                }
                catch (System.Net.Sockets.SocketException)
                {
                    // Not listening yet.
                }

                await Task.Delay(Interval, time, linked.Token);
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return false;
        }
    }
}

/// <summary>Exec: runs the probe's command where the replica runs (inside a container, as Kubernetes' exec probes) through
/// the replica's driver; exit code 0 passes.</summary>
public sealed class ExecProbeRunner(TimeProvider? time = null)
{
    private readonly TimeProvider _time = time ?? TimeProvider.System;

    public Task<ProbeOutcome> RunAsync(Probe probe, ProbeTarget target, CancellationToken cancellationToken) =>
        ProbeRun.BoundedAsync(probe, _time, async ct =>
        {
            if (probe.Command.IsDefaultOrEmpty)
            {
                return new ProbeOutcome(false, "exec probe has no command");
            }

            if (target.Driver is not { } driver || target.Replica is not { } replica)
            {
                return new ProbeOutcome(false, "exec probe has no running replica to run in");
            }

            var result = await driver.ExecAsync(replica, probe.Command, target.ContainerId is null ? target.WorkingDirectory : null, ct);
            return new ProbeOutcome(result.ExitCode == 0, $"exit code {result.ExitCode}");
        }, cancellationToken);
}
