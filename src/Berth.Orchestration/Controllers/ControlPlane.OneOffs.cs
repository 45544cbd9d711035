using System.Collections.Concurrent;
using System.Collections.Immutable;
using System.Globalization;
using Berth.Core.Model;
using Berth.Orchestration.State;
using Berth.Runtime;

namespace Berth.Orchestration.Controllers;

/// <summary>A one-off replica (<c>berth run</c>): the service's spec, holding still until the CLI runs the command in it.</summary>
/// <param name="Id">Its replica id, <c>SERVICE-run-xxxxx</c>.</param>
/// <param name="Service">Its service.</param>
/// <param name="Pid">The holder's pid (a process service).</param>
/// <param name="ContainerId">The holder's container (a Docker service).</param>
/// <param name="Command">What to run in it: the command given, else the service's own (its secrets left unexpanded).</param>
public sealed record OneOffReplica(string Id, string Service, int? Pid, string? ContainerId, ImmutableArray<string> Command);

public sealed partial class ControlPlane
{
    /// <summary>What a one-off replica runs until the CLI's command is run in it (and what holds its pod, cgroup and
    /// container): a process that sleeps. Perl for a process (the supervisor's own dependency); <c>sleep</c> for a
    /// container, which the image must have (busybox, Debian, Alpine do; a distroless image does not).</summary>
    private static readonly ImmutableArray<string> ProcessHolder = ["perl", "-e", "sleep"];

    private static readonly ImmutableArray<string> ContainerHolder = ["sleep", "2147483647"];

    private readonly ConcurrentDictionary<string, (ReplicaHandle Handle, IWorkloadDriver Driver, ImmutableArray<int> Ports)> _oneOffs = new(StringComparer.Ordinal);

    /// <summary>Starts a one-off replica of <paramref name="service"/> with its spec (environment and secrets, volumes, limits,
    /// working folder, user), on the host network with ports of its own: it is not in the store, so it is never routed to,
    /// never counted by scale or rollouts, and a control plane that restarts removes it when adopting.</summary>
    public async Task<OneOffReplica> StartOneOffAsync(string service, IReadOnlyList<string>? command, CancellationToken cancellationToken)
    {
        var (spec, driver, ports, run) = await _loop.LockedAsync(() =>
        {
            var current = _state.Current ?? throw ControlPlaneMessages.NothingAppliedError();
            var app = current.Application;
            var svc = app.FindService(service) ?? throw ControlPlaneMessages.NoServiceError(app, service);
            var id = $"{service}-run-{_state.Random.Next(0x100000):x5}";
            var ports = svc.Endpoints.ToImmutableSortedDictionary(e => e.Name, _ => _state.Ports.Allocate(), StringComparer.Ordinal);
            var record = new ReplicaRecord { Id = id, Service = service, Revision = current.Number, Ports = ports, CreatedAt = _state.Now };
            var spec = ReplicaSpecBuilder.Build(app, svc, record, _stablePorts.Ports, _state.Options, _stablePorts.Addresses);
            var docker = svc.EffectiveRuntime == RuntimeKind.Docker;
            var visible = spec.Env.RemoveRange(svc.SecretEnv);
            var own = ArgvExpansion.Expand([.. svc.Entrypoint ?? [], .. svc.Command], visible);
            var run = command is { Count: > 0 } given ? [.. given] : svc.Shell ? ["/bin/sh", "-c", string.Join(' ', own)] : own;
            spec = spec with
            {
                Entrypoint = docker ? [ContainerHolder[0]] : null,
                Command = docker ? ContainerHolder[1..] : ProcessHolder,
                Shell = false,
                Labels = spec.Labels.SetItem("berth.oneoff", "true"),
            };
            return (spec, _state.DriverFor(svc.EffectiveRuntime), ports.Values.ToImmutableArray(), run);
        }, cancellationToken);

        ReplicaHandle handle;
        try
        {
            handle = await driver.StartAsync(spec, cancellationToken);
        }
        catch
        {
            await ReleasePortsAsync(ports);
            throw;
        }

        _oneOffs[spec.ReplicaId] = (handle, driver, ports);
        await _loop.LockedAsync(() => _state.Emit(EventTypes.Started, service, spec.ReplicaId, "one-off replica started ('berth run')"), cancellationToken);
        if (run.IsDefaultOrEmpty)
        {
            await RemoveOneOffAsync(spec.ReplicaId, remove: true, cancellationToken);
            throw new ControlPlaneException(ControlPlaneError.Invalid, $"service {service} has no command of its own (its image's is not known to Berth); give one: berth run {service} CMD…");
        }

        var status = await driver.InspectAsync(handle, cancellationToken);
        return new OneOffReplica(spec.ReplicaId, service, handle.Pid ?? status.Pid, handle.ContainerId, run);
    }

    /// <summary>Stops a one-off replica at once (it holds nothing that needs a graceful end) and, with <paramref name="remove"/>,
    /// removes what is left of it (container, cgroup); its ports are freed either way.</summary>
    public async Task RemoveOneOffAsync(string id, bool remove, CancellationToken cancellationToken)
    {
        if (!_oneOffs.TryRemove(id, out var oneOff))
        {
            throw new ControlPlaneException(ControlPlaneError.NotFound, $"no one-off replica '{id}' (a 'berth run' that is still running)");
        }

        await oneOff.Driver.StopAsync(oneOff.Handle, TimeSpan.Zero, cancellationToken);
        if (remove)
        {
            await oneOff.Driver.RemoveAsync(oneOff.Handle, cancellationToken);
        }

        await ReleasePortsAsync(oneOff.Ports);
    }

    /// <summary>The one-off replicas running now (ids).</summary>
    public IReadOnlyCollection<string> OneOffs => [.. _oneOffs.Keys];

    private Task ReleasePortsAsync(ImmutableArray<int> ports) => _loop.LockedAsync(() =>
    {
        foreach (var p in ports)
        {
            _state.Ports.Release(p);
        }
    }, CancellationToken.None);
}
