using Berth.Core.Model;

namespace Berth.Orchestration.Controllers;

/// <summary>The crash-loop back-off curve: the first restart is immediate, then <see cref="RestartPolicy.InitialBackoff"/>
/// doubling up to <see cref="RestartPolicy.MaxBackoff"/> — the kubelet's curve (0, 10s, 20s, … 5m) started at 1s as this is local.</summary>
public static class RestartBackoff
{
    /// <summary>How long to wait before restart number <paramref name="consecutiveFailures"/> + 1 of a replica that
    /// has failed <paramref name="consecutiveFailures"/> times in a row before this exit.</summary>
    public static TimeSpan Delay(RestartPolicy policy, int consecutiveFailures)
    {
        if (consecutiveFailures <= 0)
        {
            return TimeSpan.Zero;
        }

        // Doubling past ~40 steps would overflow long ticks; the cap is reached long before.
        var exponent = Math.Min(consecutiveFailures - 1, 40);
        var ticks = policy.InitialBackoff.Ticks * Math.Pow(2, exponent);
        return ticks >= policy.MaxBackoff.Ticks ? policy.MaxBackoff : TimeSpan.FromTicks((long)ticks);
    }

    /// <summary>Whether an exit calls for a restart under the policy (before counting attempts).</summary>
    public static bool ShouldRestart(RestartMode mode, bool failed) => mode switch
    {
        RestartMode.Always => true,
        RestartMode.OnFailure => failed,
        RestartMode.Never => false,
    };

    /// <summary>The failure streak to count from: a run of <see cref="RestartPolicy.ResetAfter"/> or longer clears it, as Kubernetes.</summary>
    public static int StreakAfterRun(RestartPolicy policy, int streak, TimeSpan ran) => ran >= policy.ResetAfter ? 0 : streak;
}
