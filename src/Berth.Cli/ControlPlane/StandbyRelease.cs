using Berth.Core.Diagnostics;
using Berth.Mesh.DataPlane;
using Berth.Orchestration.State;

namespace Berth.Cli.ControlPlane;

/// <summary>
/// Lets the warm standby data plane start once the app is up: when a revision is in force, as many replicas are Ready as it
/// asks for and none is still Pending or Starting (or after <see cref="Limit"/> at the latest, for an app that never gets there). The standby is
/// a second .NET start; on the 2-core machine it took a core from the container starts it was launched beside (issue #21).
/// </summary>
internal sealed class StandbyRelease : IAsyncDisposable
{
    /// <summary>The longest the standby waits for the app: 30s, as the data plane's own connect timeout.</summary>
    public static readonly TimeSpan Limit = TimeSpan.FromSeconds(30);

    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(100);

    private readonly CancellationTokenSource _stop = new();
    private readonly Task _run;

    private StandbyRelease(Orchestration.Controllers.ControlPlane plane, DataPlaneClient client, TimeProvider time) =>
        _run = RunAsync(plane, client, time, _stop.Token);

    public static StandbyRelease Start(Orchestration.Controllers.ControlPlane plane, DataPlaneClient client, TimeProvider time) => new(plane, client, time);

    private static async Task RunAsync(Orchestration.Controllers.ControlPlane plane, DataPlaneClient client, TimeProvider time, CancellationToken ct)
    {
        var started = time.GetTimestamp();
        try
        {
            while (time.GetElapsedTime(started) < Limit && !Up(plane))
            {
                await Task.Delay(Poll, time, ct);
            }
        }
        catch (OperationCanceledException)
        {
            return;
        }

        StartupTrace.Mark("host: standby released");
        client.ReleaseStandby();
    }

    /// <summary>Every replica the revision asks for is Ready (none placed or being started is left): a replica still starting
    /// its own runtime (the shop sample's .NET apps) would share the cores with the standby's start.</summary>
    private static bool Up(Orchestration.Controllers.ControlPlane plane) =>
        plane.View is { Current: { } current } view
        && view.Replicas.Count(r => r.Phase is ReplicaPhase.Ready) >= current.Application.Services.Sum(s => s.Replicas)
        && view.Replicas.All(r => r.Phase is not (ReplicaPhase.Pending or ReplicaPhase.Starting));

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _run.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        _stop.Dispose();
    }
}
