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
}

/// <summary>Hands each probe to the runner for its kind (HTTP and TCP from Core, shared with the mesh's active checks;
/// exec through the replica's driver), each bounded by the probe's timeout on the injected clock.</summary>
public sealed class ProbeExecutor(TimeProvider? time = null) : IProbeExecutor, IDisposable
{
    private readonly HttpProbeRunner _http = new(time);
    private readonly TcpProbeRunner _tcp = new(time);
    private readonly ExecProbeRunner _exec = new(time);

    public Task<ProbeOutcome> RunAsync(Probe probe, ProbeTarget target, CancellationToken cancellationToken) => probe.Kind switch
    {
        ProbeKind.Http => _http.RunAsync(probe, target.Host, target.Port, cancellationToken, target.Pod),
        ProbeKind.Tcp => _tcp.RunAsync(probe, target.Host, target.Port, cancellationToken, target.Pod),
        ProbeKind.Exec => _exec.RunAsync(probe, target, cancellationToken),
    };

    public void Dispose() => _http.Dispose();
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
