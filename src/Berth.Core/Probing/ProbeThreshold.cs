namespace Berth.Core.Probing;

/// <summary>What one probe result changed.</summary>
public enum ProbeTransition
{
    None,

    /// <summary>Reached the success threshold from failing (or unknown).</summary>
    Passed,

    /// <summary>Reached the failure threshold from passing (or unknown).</summary>
    Failed,
}

/// <summary>One probe's verdict over time, Kubernetes' prober semantics: the state flips only after SuccessThreshold
/// passes or FailureThreshold failures in a row. The one threshold counter for the orchestrator's probes and the mesh's
/// active health checks; thread-safe.</summary>
/// <param name="initiallyPassing">Liveness and the mesh's checks start passing; readiness and startup do not.</param>
/// <param name="failsBeforePassing">A startup probe fails after FailureThreshold failures even though it never passed.</param>
public sealed class ProbeThreshold(bool initiallyPassing, bool failsBeforePassing = false)
{
    private readonly Lock _lock = new();
    private int _successes;
    private int _failures;
    private volatile bool _passing = initiallyPassing;

    public bool Passing => _passing;

    /// <summary>Records a result; the thresholds are passed each time because a route update may change them.</summary>
    public ProbeTransition Record(bool success, int successThreshold, int failureThreshold)
    {
        lock (_lock)
        {
            if (success)
            {
                _failures = 0;
                _successes++;
                if (!_passing && _successes >= Math.Max(1, successThreshold))
                {
                    _passing = true;
                    return ProbeTransition.Passed;
                }
            }
            else
            {
                _successes = 0;
                _failures++;
                if ((_passing || failsBeforePassing) && _failures >= Math.Max(1, failureThreshold))
                {
                    _passing = false;
                    _failures = 0;
                    return ProbeTransition.Failed;
                }
            }

            return ProbeTransition.None;
        }
    }
}
