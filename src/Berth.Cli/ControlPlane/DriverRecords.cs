using Berth.Orchestration.State;
using Berth.Runtime;
using Berth.Runtime.Docker;
using Berth.Runtime.Process;

namespace Berth.Cli.ControlPlane;

/// <summary>One replica as a driver's own records show it, without the control plane's store: the process driver's
/// records in the state folder's <c>runtime/</c>, Docker's containers by their <c>berth.app</c> label.</summary>
internal sealed record DriverReplica(ReplicaHandle Handle, ReplicaStatus Status, IWorkloadDriver Driver)
{
    public bool Running => Status.State is ReplicaState.Running or ReplicaState.Created;
}

/// <summary>The drivers' view of an app's replicas, for when no control plane answers or its store cannot be read:
/// <c>berth down</c> stops what they know of, <c>berth ps</c> shows it (issue #14 §4, §15).</summary>
internal sealed class DriverRecords : IDisposable
{
    private readonly ProcessDriver _process;
    private readonly DockerDriver? _docker;

    private DriverRecords(ProcessDriver process, DockerDriver? docker, string? dockerProblem)
    {
        _process = process;
        _docker = docker;
        DockerProblem = dockerProblem;
    }

    /// <summary>Why Docker's containers could not be looked at (no engine), or null.</summary>
    public string? DockerProblem { get; }

    /// <summary>How long to wait for the Docker engine here: 5 s (down must not hang on a wedged engine; it says so instead).</summary>
    private static readonly TimeSpan DockerConnectTimeout = TimeSpan.FromSeconds(5);

    /// <summary>Opens the drivers of <paramref name="stateDirectory"/>; Docker only when <paramref name="docker"/> and its engine answers.</summary>
    public static async Task<DriverRecords> OpenAsync(string stateDirectory, bool docker, CancellationToken ct)
    {
        var process = new ProcessDriver(ControlPlaneHost.ProcessOptionsFor(stateDirectory));
        if (!docker)
        {
            return new DriverRecords(process, null, null);
        }

        try
        {
            using var connect = CancellationTokenSource.CreateLinkedTokenSource(ct);
            connect.CancelAfter(DockerConnectTimeout);
            // Only this app's containers, not a same-named app's in another folder (issue #14 §6); read-only, as the folder may be.
            var engine = await DockerDriver.ConnectAsync(new DockerDriverOptions { AppId = AppIdentity.TryLoad(stateDirectory) }, connect.Token);
            if (!engine.Capabilities.Available)
            {
                var why = engine.Capabilities.UnavailableReason;
                engine.Dispose();
                return new DriverRecords(process, null, why);
            }

            return new DriverRecords(process, engine, null);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            return new DriverRecords(process, null, $"the Docker engine did not answer within {DockerConnectTimeout.TotalSeconds:0}s");
        }
    }

    /// <summary>Apps with process records in this state folder, plus <paramref name="also"/> (the spec's app name, for Docker).</summary>
    public IReadOnlyList<string> Apps(params string?[] also) =>
        [.. _process.RecordedApps().Concat(also.OfType<string>()).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal)];

    /// <summary>Every replica the drivers know of for <paramref name="apps"/>, with its live status.</summary>
    public async Task<IReadOnlyList<DriverReplica>> ListAsync(IEnumerable<string> apps, CancellationToken ct)
    {
        var found = new List<DriverReplica>();
        foreach (var app in apps)
        {
            foreach (var driver in new IWorkloadDriver?[] { _process, _docker }.OfType<IWorkloadDriver>())
            {
                foreach (var handle in await driver.ListAsync(app, ct))
                {
                    found.Add(new DriverReplica(handle, await driver.InspectAsync(handle, ct), driver));
                }
            }
        }

        return found;
    }

    /// <summary>Stops (SIGTERM, then SIGKILL after <paramref name="grace"/>) and removes every replica the drivers know of for
    /// <paramref name="apps"/>; returns how many were running and the ones still running afterwards.</summary>
    public async Task<(int Stopped, IReadOnlyList<DriverReplica> Left)> StopAllAsync(IReadOnlyList<string> apps, TimeSpan grace, CancellationToken ct)
    {
        var replicas = await ListAsync(apps, ct);
        await Task.WhenAll(replicas.Select(async r =>
        {
            try
            {
                if (r.Running)
                {
                    await r.Driver.StopAsync(r.Handle, grace, ct);
                }

                await r.Driver.RemoveAsync(r.Handle, ct);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // A read-only or full state folder keeps the record; what counts is that the replica stopped (checked below).
            }
        }));
        var left = (await ListAsync(apps, ct)).Where(r => r.Running).ToList();
        return (replicas.Count(r => r.Running), left);
    }

    /// <summary>The cgroup garbage collection after a down (issue #14 §9, as the kubelet's): removes what is left below each
    /// app's cgroup folder, killing processes only in the groups of this state folder's own replicas (their folders in
    /// <c>replicas/</c>, kept ones included, and the ids the records named). Returns this app's groups still there.</summary>
    public async Task<IReadOnlyList<string>> SweepCgroupsAsync(string stateDirectory, IEnumerable<string> apps, IEnumerable<string> recordedIds, CancellationToken ct)
    {
        var replicas = Path.Combine(stateDirectory, "replicas");
        var own = (Directory.Exists(replicas) ? Directory.EnumerateDirectories(replicas).Select(Path.GetFileName).OfType<string>() : [])
            .Concat(recordedIds).ToHashSet(StringComparer.Ordinal);
        var left = new List<string>();
        foreach (var app in apps)
        {
            left.AddRange((await _process.SweepCgroupsAsync(app, own, ct)).Where(p => own.Contains(Path.GetFileName(p))));
        }

        return left;
    }

    public void Dispose() => _docker?.Dispose();
}
