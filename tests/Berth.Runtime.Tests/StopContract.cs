namespace Berth.Runtime.Tests;

/// <summary>What every workload driver promises when a replica ignores SIGTERM, checked the same way for each driver.</summary>
internal static class StopContract
{
    /// <summary>The replica was killed with SIGKILL (exit 137, signal 9), not reported as an OOM kill, and not before
    /// <paramref name="grace"/> had passed (<paramref name="elapsed"/> is how long the stop took).</summary>
    public static void KilledAfterGrace(ReplicaStatus status, TimeSpan elapsed, TimeSpan grace)
    {
        Assert.Equal(ReplicaState.Exited, status.State);
        Assert.Equal(137, status.ExitCode);
        Assert.Equal(9, status.Signal);
        Assert.False(status.OomKilled);
        Assert.True(elapsed >= grace, $"SIGKILL came after {elapsed}, before the {grace} grace period");
    }
}
