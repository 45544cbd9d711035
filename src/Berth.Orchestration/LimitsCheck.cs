using Berth.Core.Model;
using Berth.Core.Routing;
using Berth.Runtime;

namespace Berth.Orchestration;

/// <summary>A service whose CPU or memory limits its driver cannot enforce on this machine; it still runs.</summary>
/// <param name="Service">The service's name.</param>
/// <param name="Driver">The driver it runs on: <c>process</c> or <c>docker</c>.</param>
/// <param name="Message">Said plainly, with the reason and how to fix it.</param>
public sealed record LimitsWarning(string Service, string Driver, string Message);

/// <summary>Says which services ask for limits that are not enforced here (issue #3: where neither cgroup v2 nor v1 is
/// usable the replica runs, and the API and CLI say so).</summary>
public static class LimitsCheck
{
    /// <summary>What to do about a process driver without usable cgroups, where its own reason does not say.</summary>
    public const string ProcessFix = "run the control plane as root, or point BERTH_CGROUP_ROOT at a delegated cgroup v2 subtree";

    public static IReadOnlyList<LimitsWarning> Check(Application app, IEnumerable<IWorkloadDriver> drivers)
    {
        var byKind = drivers.ToDictionary(d => d.Kind);
        var warnings = new List<LimitsWarning>();
        foreach (var service in app.Services)
        {
            // An unavailable driver leaves the service Pending with its own reason; nothing runs unlimited.
            if (!byKind.TryGetValue(service.EffectiveRuntime, out var driver) || !driver.Capabilities.Available)
            {
                continue;
            }

            var caps = driver.Capabilities;
            var missing = new List<string>();
            if (service.Resources.CpuLimit is { } cpu && !caps.CpuLimitsEnforced)
            {
                missing.Add($"cpu {cpu}");
            }

            if (service.Resources.MemoryLimit is { } memory && !caps.MemoryLimitsEnforced)
            {
                missing.Add($"memory {memory}");
            }

            if (missing.Count > 0)
            {
                var kind = service.EffectiveRuntime.ToString().ToLowerInvariant();
                warnings.Add(new LimitsWarning(service.Name, kind, $"limits not enforced for {service.Name} ({string.Join(", ", missing)}): {Reason(driver)}"));
            }
        }

        return warnings;
    }

    private static string Reason(IWorkloadDriver driver)
    {
        var mechanism = driver.Capabilities.LimitsMechanism;
        var reason = mechanism.StartsWith("none: ", StringComparison.Ordinal) ? mechanism["none: ".Length..] : mechanism;
        if (driver.Kind == RuntimeKind.Docker)
        {
            return $"the Docker engine does not enforce them ({reason}); see the warnings of 'docker info'";
        }

        // The driver knows the fix for this user on this machine (root, a delegated scope, a subtree root hands over).
        return driver.Capabilities.LimitsFix is { } fix ? $"{reason}; {fix}"
            : reason.Contains("root", StringComparison.Ordinal) ? reason : $"{reason}; {ProcessFix}";
    }
}

/// <summary>Says which services do not get the network they ask for here: <c>network: isolated</c> where pods cannot be
/// made (they run on the host network), pods asking for <c>egress: true</c> where they get none (no slirp4netns, or a
/// Docker pod), and pods asked to reach the host (<c>extra_hosts: …:host-gateway</c>) without egress: they reach the host's
/// loopback services through the mesh, and nothing beyond.</summary>
public static class PodsCheck
{
    public static IReadOnlyList<LimitsWarning> Check(Application app, OrchestratorOptions options)
    {
        var warnings = new List<LimitsWarning>();
        foreach (var service in app.Services.Where(s => s.EffectiveNetwork == NetworkMode.Isolated))
        {
            var kind = service.EffectiveRuntime.ToString().ToLowerInvariant();
            if (!options.PodRuntimes.Contains(service.EffectiveRuntime))
            {
                var why = options.PodsUnavailable ?? $"{kind} replicas cannot run in pods as this user (the mesh cannot enter a container's namespace without root)";
                warnings.Add(new LimitsWarning(service.Name, kind, $"{service.Name} runs on the host network, not in pods: {why}"));
                continue;
            }

            var getsEgress = service.Egress && service.EffectiveRuntime == RuntimeKind.Process && options.EgressHelper is not null;
            if (service.Egress && !getsEgress)
            {
                warnings.Add(new LimitsWarning(service.Name, kind, NoEgress(service)));
            }
            else if (!getsEgress && Controllers.ReplicaSpecBuilder.ReachesHost(service))
            {
                var names = service.Container.ExtraHosts.Where(h => h.EndsWith(":" + PodDefaults.HostGateway, StringComparison.Ordinal)).Select(h => h[..h.IndexOf(':', StringComparison.Ordinal)]);
                warnings.Add(new LimitsWarning(service.Name, kind,
                    $"{service.Name} has no internet egress: its pods hold only loopback; {string.Join(", ", names)} (host-gateway) reaches the TCP services listening on " +
                    "the host's loopback, forwarded by the mesh; write network_mode: host (network: host) for a service that needs the internet"));
            }
        }

        return warnings;
    }

    /// <summary>What a service asking for <c>egress: true</c> is told where its pods get none.</summary>
    public static string NoEgress(Service service) => service.EffectiveRuntime == RuntimeKind.Process
        ? $"{service.Name} has no egress: its pods hold only loopback, because {Runtime.Process.PodEgress.Program} is not installed " +
          $"(apt-get install {Runtime.Process.PodEgress.Program}); or write network: host for a service that needs the outside world"
        : $"{service.Name} has no egress: its pods hold only loopback (egress: true gives a userspace network to process pods only); " +
          "write network_mode: host (network: host) for a container that needs the outside world";
}
