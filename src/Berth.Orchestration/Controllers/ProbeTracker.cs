using Berth.Core.Model;

namespace Berth.Orchestration.Controllers;

public enum ProbeRole
{
    Startup,
    Liveness,
    Readiness,
}

/// <summary>What a probe result changed.</summary>
public enum ProbeTransition
{
    None,

    /// <summary>Reached the success threshold from failing (or unknown).</summary>
    Passed,

    /// <summary>Reached the failure threshold from passing (or unknown).</summary>
    Failed,
}

/// <summary>One probe of one replica: when it is due next and whether its thresholds are met. Kubernetes' prober worker semantics:
/// first run after the initial delay, then every period; a result flips only after threshold consecutive results.</summary>
public sealed class ProbeTracker
{
    /// <summary>Until a readiness probe first passes, a failure is retried after this (or the period, if shorter): a
    /// replica joins routing soon after it starts listening instead of a whole period later. Kubernetes waits the period;
    /// failures before the first pass have no consequence, so probing sooner only shortens time-to-Ready.</summary>
    public static readonly TimeSpan FirstReadyRetry = TimeSpan.FromMilliseconds(200);

    private int _successes;
    private int _failures;
    private bool _everPassed;

    public ProbeTracker(Probe probe, ProbeRole role, DateTimeOffset startedAt, bool initiallyPassing = false)
    {
        Probe = probe;
        Role = role;
        NextDue = startedAt + probe.InitialDelay;
        // Liveness counts as passing until proven otherwise; readiness and startup as not yet passed.
        Passing = role == ProbeRole.Liveness || initiallyPassing;
    }

    public Probe Probe { get; }

    public ProbeRole Role { get; }

    public DateTimeOffset NextDue { get; private set; }

    public bool Passing { get; private set; }

    public bool InFlight { get; set; }

    public string? LastMessage { get; private set; }

    public bool IsDue(DateTimeOffset now) => !InFlight && now >= NextDue;

    /// <summary>Records a result taken at <paramref name="now"/> and schedules the next run one period later.</summary>
    public ProbeTransition Record(bool success, string? message, DateTimeOffset now)
    {
        InFlight = false;
        NextDue = now + (!success && Role == ProbeRole.Readiness && !_everPassed && FirstReadyRetry < Probe.Period ? FirstReadyRetry : Probe.Period);
        LastMessage = message;
        if (success)
        {
            _failures = 0;
            _successes++;
            if (!Passing && _successes >= Math.Max(1, Probe.SuccessThreshold))
            {
                Passing = true;
                _everPassed = true;
                return ProbeTransition.Passed;
            }
        }
        else
        {
            _successes = 0;
            _failures++;
            if ((Passing || Role == ProbeRole.Startup) && _failures >= Math.Max(1, Probe.FailureThreshold))
            {
                Passing = false;
                _failures = 0;
                return ProbeTransition.Failed;
            }
        }

        return ProbeTransition.None;
    }
}
