using Berth.Core.Routing;

namespace Berth.Orchestration.Controllers;

/// <summary>
/// The control plane's side of draining: a replica that has left the routes is stopped only once the data plane has no
/// request in flight on it, or its stop grace period has passed — as Kubernetes waits for endpoints to drain before
/// SIGTERM reaches a pod only when a preStop hook holds it; here the data plane's own count decides.
/// </summary>
internal static class ReplicaDrain
{
    /// <summary>50ms: a drained replica stops within a poll of its last response, and a long drain costs 20 reads a second.</summary>
    public static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(50);

    /// <summary>Waits while <paramref name="source"/> counts requests in flight on <paramref name="replica"/>, at most <paramref name="grace"/>.</summary>
    public static async Task WaitAsync(IInFlightSource? source, string service, string replica, TimeSpan grace, TimeProvider time, CancellationToken cancellationToken)
    {
        if (source is null)
        {
            return;
        }

        var started = time.GetTimestamp();
        while (source.InFlight(service, replica) > 0 && time.GetElapsedTime(started) < grace)
        {
            await Task.Delay(PollInterval, time, cancellationToken);
        }
    }
}
