using System.Globalization;
using Berth.Core.Model;
using Berth.Orchestration.State;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Berth.Orchestration.Controllers;

/// <summary>Autoscaler defaults, each named after the peer it follows.</summary>
public static class AutoscalerDefaults
{
    /// <summary>15s, as the HPA controller's --horizontal-pod-autoscaler-sync-period.</summary>
    public static readonly TimeSpan SyncPeriod = TimeSpan.FromSeconds(15);
}

public sealed record AutoscalerOptions
{
    /// <summary>See <see cref="AutoscalerDefaults.SyncPeriod"/>.</summary>
    public TimeSpan SyncPeriod { get; init; } = AutoscalerDefaults.SyncPeriod;
}

/// <summary>Where the autoscaler reads its metrics: CPU from the driver's stats, requests/s from the mesh.</summary>
public interface IAutoscaleMetrics
{
    /// <summary>A Ready replica's CPU use in percent of one core (as <c>docker stats</c>); null when unknown.</summary>
    Task<double?> CpuPercentAsync(ReplicaRecord replica, CancellationToken cancellationToken);

    /// <summary>Requests per second the mesh sent to the service lately (all replicas together); null when unknown.</summary>
    Task<double?> RequestsPerSecondAsync(string service, CancellationToken cancellationToken);
}

/// <summary>The HPA formula as pure functions.</summary>
public static class AutoscaleMath
{
    /// <summary>ceil(current × metric / target), unless the ratio is within the tolerance of 1 (no change), clamped to
    /// [min, max] — Kubernetes' replica calculator.</summary>
    public static int Desired(int current, double metric, double target, double tolerance, int min, int max)
    {
        var ratio = metric / target;
        var desired = Math.Abs(ratio - 1) <= tolerance ? current : (int)Math.Ceiling(current * ratio);
        return Math.Clamp(desired, Math.Max(0, min), Math.Max(min, max));
    }
}

/// <summary>One decision with the numbers behind it (also the <c>autoscaled</c> event's message).</summary>
public sealed record AutoscaleDecision(string Service, int From, int To, string Metric, double Value, double Target, string Message);

/// <summary>Scales services with an <c>autoscale:</c> policy to hold a target CPU utilization (of the CPU request) or
/// requests/s per replica. Scale-up is immediate; scale-down takes the highest recommendation of the stabilization window
/// (Kubernetes' behavior.scaleDown.stabilizationWindowSeconds, 5 min by default), so a short lull does not shed replicas.</summary>
public sealed class Autoscaler(ControlPlane plane, IAutoscaleMetrics metrics, TimeProvider? time = null, AutoscalerOptions? options = null,
    ILogger<Autoscaler>? logger = null)
{
    private readonly TimeProvider _time = time ?? TimeProvider.System;
    private readonly AutoscalerOptions _options = options ?? new AutoscalerOptions();
    private readonly ILogger _logger = logger ?? NullLogger<Autoscaler>.Instance;
    private readonly Dictionary<string, List<(DateTimeOffset At, int Replicas)>> _recommendations = new(StringComparer.Ordinal);

    /// <summary>Evaluates every autoscaled service every <see cref="AutoscalerOptions.SyncPeriod"/> until cancelled.</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await EvaluateAsync(cancellationToken);
                await Task.Delay(_options.SyncPeriod, _time, cancellationToken);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
#pragma warning disable CA1031 // one failed pass (a metric source down) must not stop autoscaling; the next pass retries
            catch (Exception e)
#pragma warning restore CA1031
            {
                Log.AutoscaleFailed(_logger, e);
                await Task.Delay(_options.SyncPeriod, _time, cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            }
        }
    }

    /// <summary>One pass: a decision per autoscaled service whose replica count changes.</summary>
    public async Task<IReadOnlyList<AutoscaleDecision>> EvaluateAsync(CancellationToken cancellationToken)
    {
        var current = plane.Current;
        if (current is null)
        {
            return [];
        }

        var decisions = new List<AutoscaleDecision>();
        foreach (var service in current.Application.Services.Where(s => s.Autoscale is not null && !current.Stopped.Contains(s.Name)))
        {
            var decision = await DecideAsync(service, service.Autoscale!, cancellationToken);
            if (decision is not null)
            {
                await plane.AutoscaleAsync(service.Name, decision.To, decision.Message, cancellationToken);
                decisions.Add(decision);
            }
        }

        return decisions;
    }

    private async Task<AutoscaleDecision?> DecideAsync(Service service, AutoscalePolicy policy, CancellationToken ct)
    {
        var ready = plane.Replicas.Where(r => r.Service == service.Name && r.Phase == ReplicaPhase.Ready).ToList();
        var current = service.Replicas;
        if (ready.Count == 0)
        {
            // Nothing measurable (starting, or scaled to zero): only bring the count inside [min, max].
            var clamped = Math.Clamp(current, policy.Min, Math.Max(policy.Min, policy.Max));
            return clamped == current ? null : new AutoscaleDecision(service.Name, current, clamped, "bounds", current, clamped,
                $"{current} → {clamped} replicas to stay within min {policy.Min}, max {policy.Max}");
        }

        string metric;
        double value, target;
        if (policy.TargetCpuPercent is { } cpuTarget)
        {
            var request = service.Resources.EffectiveCpuRequest.MilliCores;
            if (request <= 0)
            {
                return null; // the loader requires a CPU request or limit with target_cpu; a model built in code may lack one
            }

            var samples = new List<double>();
            foreach (var r in ready)
            {
                if (await metrics.CpuPercentAsync(r, ct) is { } p)
                {
                    samples.Add(p * 1000 / request); // percent of one core → percent of the request
                }
            }

            if (samples.Count == 0)
            {
                return null;
            }

            (metric, value, target) = ("cpu", samples.Average(), cpuTarget);
        }
        else if (policy.TargetRequestsPerSecond is { } rpsTarget && await metrics.RequestsPerSecondAsync(service.Name, ct) is { } rps)
        {
            (metric, value, target) = ("requests/s per replica", rps / ready.Count, rpsTarget);
        }
        else
        {
            return null;
        }

        // The formula works on the replicas measured (Ready ones), as the HPA's; unready ones are not assumed busy.
        var recommended = AutoscaleMath.Desired(ready.Count, value, target, policy.Tolerance, policy.Min, policy.Max);
        var now = _time.GetUtcNow();
        var history = _recommendations.TryGetValue(service.Name, out var h) ? h : _recommendations[service.Name] = [];
        history.Add((now, recommended));
        history.RemoveAll(x => x.At < now - policy.ScaleDownStabilization);
        var stabilized = recommended >= current ? recommended : Math.Min(current, history.Max(x => x.Replicas));
        if (stabilized == current)
        {
            return null;
        }

        var unit = metric == "cpu" ? "% of the CPU request" : "";
        var values = string.Create(CultureInfo.InvariantCulture, $"{metric} {value:0.#}{unit} across {ready.Count} ready, target {target:0.#}{unit}");
        var formula = string.Create(CultureInfo.InvariantCulture, $"ceil({ready.Count} × {value:0.#} / {target:0.#}) = {recommended}");
        var message = stabilized > current
            ? $"{current} → {stabilized} replicas: {values}; {formula} (min {policy.Min}, max {policy.Max})"
            : $"{current} → {stabilized} replicas: {values}; {formula}; highest recommendation over the last {Durations.Format(policy.ScaleDownStabilization)}: {stabilized}";
        return new AutoscaleDecision(service.Name, current, stabilized, metric, value, target, message);
    }
}
