using System.Collections.Concurrent;
using Berth.Core.Model;
using Berth.Core.Probing;
using Berth.Orchestration.Controllers;

namespace Berth.Testing.ControlPlanes;

/// <summary>Probe results decided by the test per replica port.</summary>
public sealed class ScriptedProber : IProbeExecutor
{
    private int _runs;

    public ConcurrentDictionary<int, bool> Healthy { get; } = new();

    public bool Default { get; set; } = true;

    public int Runs => Volatile.Read(ref _runs);

    public Task<ProbeOutcome> RunAsync(Probe probe, ProbeTarget target, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _runs);
        var ok = target.Port is { } p && Healthy.TryGetValue(p, out var h) ? h : Default;
        return Task.FromResult(new ProbeOutcome(ok, ok ? "HTTP 200" : "HTTP 500"));
    }
}
