using Berth.Core.Model;
using Berth.Core.Probing;

namespace Berth.Orchestration.Controllers;

public enum ProbeRole
{
    Startup,
    Liveness,
    Readiness,
}

/// <summary>One probe of one replica: when it is due next and whether its thresholds are met. Kubernetes' prober worker semantics:
/// first run after the initial delay, then every period; a result flips only after threshold consecutive results.</summary>
public sealed class ProbeTracker
{
    /// <summary>Until a readiness probe first passes, a failure is retried after this (or the period, if shorter): a
    /// replica joins routing soon after it starts listening instead of a whole period later. Kubernetes waits the period;
    /// failures before the first pass have no consequence, so probing sooner only shortens time-to-Ready.</summary>
    public static readonly TimeSpan FirstReadyRetry = TimeSpan.FromMilliseconds(200);

    private readonly ProbeThreshold _threshold;
    private bool _everPassed;

    public ProbeTracker(Probe probe, ProbeRole role, DateTimeOffset startedAt, bool initiallyPassing = false)
    {
        Probe = probe;
        Role = role;
        NextDue = startedAt + probe.InitialDelay;
        // Liveness counts as passing until proven otherwise; readiness and startup as not yet passed.
        _threshold = new ProbeThreshold(role == ProbeRole.Liveness || initiallyPassing, failsBeforePassing: role == ProbeRole.Startup);
    }

    public Probe Probe { get; }

    public ProbeRole Role { get; }

    public DateTimeOffset NextDue { get; private set; }

    public bool Passing => _threshold.Passing;

    public bool InFlight { get; set; }

    public string? LastMessage { get; private set; }

    /// <summary>Failed results since the last success (not reset when the threshold flips, unlike the threshold's own count).</summary>
    public int FailuresInARow { get; private set; }

    /// <summary>Whether the probe has passed since the replica started (or was adopted passing).</summary>
    public bool EverPassed => _everPassed || _threshold.Passing;

    public bool IsDue(DateTimeOffset now) => !InFlight && now >= NextDue;

    /// <summary>Records a result taken at <paramref name="now"/> and schedules the next run one period later.</summary>
    public ProbeTransition Record(bool success, string? message, DateTimeOffset now)
    {
        InFlight = false;
        NextDue = now + (!success && Role == ProbeRole.Readiness && !_everPassed && FirstReadyRetry < Probe.Period ? FirstReadyRetry : Probe.Period);
        LastMessage = message;
        FailuresInARow = success ? 0 : FailuresInARow + 1;
        var transition = _threshold.Record(success, Probe.SuccessThreshold, Probe.FailureThreshold);
        _everPassed |= transition == ProbeTransition.Passed;
        return transition;
    }
}
