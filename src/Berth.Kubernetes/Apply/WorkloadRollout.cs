using k8s.Models;

namespace Berth.Kubernetes.Apply;

/// <summary>Where a workload's rollout stands: done, still going (with what it waits for), or failed.</summary>
public sealed record WorkloadRolloutState(bool Done, bool Failed, string Message)
{
    public static WorkloadRolloutState Progressing(string message) => new(false, false, message);

    public static WorkloadRolloutState Complete(string message) => new(true, false, message);

    public static WorkloadRolloutState Failure(string message) => new(false, true, message);
}

/// <summary>Reads a workload's status the way <c>kubectl rollout status</c> does.</summary>
public static class WorkloadRollout
{
    /// <summary>Waiting reasons that no amount of waiting fixes without a change: the rollout fails on them at once.</summary>
    public static readonly IReadOnlySet<string> FatalReasons = new HashSet<string>(StringComparer.Ordinal)
    {
        "CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull",
        "CreateContainerConfigError", "CreateContainerError", "RunContainerError",
    };

    public static WorkloadRolloutState Evaluate(V1Deployment deployment)
    {
        var spec = deployment.Spec;
        var status = deployment.Status ?? new V1DeploymentStatus();
        var generation = deployment.Metadata?.Generation ?? 0;
        if ((status.ObservedGeneration ?? 0) < generation)
        {
            return WorkloadRolloutState.Progressing($"waiting for the controller to see generation {generation}");
        }

        var progressing = status.Conditions?.FirstOrDefault(c => c.Type == "Progressing");
        if (progressing?.Reason == "ProgressDeadlineExceeded")
        {
            return WorkloadRolloutState.Failure($"exceeded its progress deadline ({spec?.ProgressDeadlineSeconds ?? 600}s): {progressing.Message}");
        }

        var desired = spec?.Replicas ?? 1;
        var updated = status.UpdatedReplicas ?? 0;
        var total = status.Replicas ?? 0;
        var available = status.AvailableReplicas ?? 0;
        if (updated < desired)
        {
            return WorkloadRolloutState.Progressing($"{updated} of {desired} replicas updated");
        }

        if (total > updated)
        {
            return WorkloadRolloutState.Progressing($"{total - updated} old replicas pending termination");
        }

        if (available < updated)
        {
            return WorkloadRolloutState.Progressing($"{available} of {updated} updated replicas available");
        }

        return WorkloadRolloutState.Complete($"{available} of {desired} replicas updated and available");
    }

    public static WorkloadRolloutState Evaluate(V1StatefulSet set)
    {
        var status = set.Status ?? new V1StatefulSetStatus();
        var generation = set.Metadata?.Generation ?? 0;
        if ((status.ObservedGeneration ?? 0) < generation)
        {
            return WorkloadRolloutState.Progressing($"waiting for the controller to see generation {generation}");
        }

        var desired = set.Spec?.Replicas ?? 1;
        var ready = status.ReadyReplicas ?? 0;
        var updated = status.UpdatedReplicas ?? 0;
        if (ready < desired)
        {
            return WorkloadRolloutState.Progressing($"{ready} of {desired} replicas ready");
        }

        if (status.UpdateRevision is { } update && status.CurrentRevision != update && updated < desired)
        {
            return WorkloadRolloutState.Progressing($"{updated} of {desired} replicas on revision {update}");
        }

        return WorkloadRolloutState.Complete($"{ready} of {desired} replicas updated and ready");
    }

    /// <summary>A Job is done when it has succeeded as many times as it must complete, failed when its Failed condition is set.</summary>
    public static WorkloadRolloutState Evaluate(V1Job job)
    {
        var status = job.Status ?? new V1JobStatus();
        var failed = status.Conditions?.FirstOrDefault(c => c.Type == "Failed" && c.Status == "True");
        if (failed is not null)
        {
            return WorkloadRolloutState.Failure($"job failed: {failed.Reason}{(string.IsNullOrWhiteSpace(failed.Message) ? "" : $": {failed.Message}")}");
        }

        var completions = job.Spec?.Completions ?? 1;
        var succeeded = status.Succeeded ?? 0;
        if (succeeded >= completions)
        {
            return WorkloadRolloutState.Complete($"completed ({succeeded} of {completions} succeeded)");
        }

        return WorkloadRolloutState.Progressing($"running: {status.Active ?? 0} active, {succeeded} of {completions} succeeded, {status.Failed ?? 0} failed");
    }

    /// <summary>Why pods are not running, one line per pod with a reason (<c>pod api-7d9c: api: ImagePullBackOff: …</c>),
    /// and whether any reason is fatal.</summary>
    public static (IReadOnlyList<string> Reasons, bool Fatal) PodProblems(IEnumerable<V1Pod> pods)
    {
        var reasons = new List<string>();
        var fatal = false;
        foreach (var pod in pods.OrderBy(p => p.Metadata?.Name, StringComparer.Ordinal))
        {
            var podName = pod.Metadata?.Name ?? "?";
            var statuses = (pod.Status?.InitContainerStatuses ?? []).Concat(pod.Status?.ContainerStatuses ?? []);
            foreach (var container in statuses)
            {
                if (container.State?.Waiting is { Reason: { } reason } waiting && reason is not "ContainerCreating" and not "PodInitializing")
                {
                    fatal |= FatalReasons.Contains(reason);
                    var last = container.LastState?.Terminated is { } t ? $" (last exit {t.ExitCode}{(t.Reason is null ? "" : $", {t.Reason}")})" : "";
                    reasons.Add($"pod {podName}: {container.Name}: {reason}{Detail(waiting.Message)}{last}");
                }
                else if (container.State?.Terminated is { } terminated && terminated.ExitCode != 0)
                {
                    reasons.Add($"pod {podName}: {container.Name}: exited {terminated.ExitCode}{(terminated.Reason is null ? "" : $" ({terminated.Reason})")}{Detail(terminated.Message)}");
                }
            }

            var scheduled = pod.Status?.Conditions?.FirstOrDefault(c => c.Type == "PodScheduled");
            if (scheduled is { Status: "False" })
            {
                reasons.Add($"pod {podName}: {scheduled.Reason ?? "Unschedulable"}{Detail(scheduled.Message)}");
            }
        }

        return (reasons, fatal);
    }

    private static string Detail(string? message) => string.IsNullOrWhiteSpace(message) ? "" : $": {message.Trim()}";
}
