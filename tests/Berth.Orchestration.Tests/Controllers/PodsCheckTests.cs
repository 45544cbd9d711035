using Berth.Core.Model;
using Berth.Orchestration.Controllers;

namespace Berth.Orchestration.Tests.Controllers;

/// <summary>Isolated services that do not get pods here, or that ask pods for egress they cannot have, are said plainly.</summary>
public sealed class PodsCheckTests
{
    private static readonly OrchestratorOptions Root = new() { StateDirectory = "/x", PodRuntimes = new HashSet<RuntimeKind> { RuntimeKind.Process, RuntimeKind.Docker } };

    private static Application App(params Service[] services) => HarnessApps.Shop(services);

    [Fact]
    public void Check_PodsNotPermitted_IsolatedServicesSayTheyRunOnTheHostNetworkWithTheReason()
    {
        var options = new OrchestratorOptions { StateDirectory = "/x", PodsUnavailable = "network-namespaces: not usable: …; fix: allow user namespaces" };
        var app = App(new Service { Name = "db", Image = "pg" }, new Service { Name = "api", Command = ["api"], Network = NetworkMode.Isolated },
            new Service { Name = "tool", Command = ["tool"] });

        var warnings = PodsCheck.Check(app, options);

        Assert.Equal(
        [
            new LimitsWarning("db", "docker", "db runs on the host network, not in pods: network-namespaces: not usable: …; fix: allow user namespaces"),
            new LimitsWarning("api", "process", "api runs on the host network, not in pods: network-namespaces: not usable: …; fix: allow user namespaces"),
        ], warnings);
    }

    [Fact]
    public void Check_NormalUserWithDocker_DockerServicesOnTheHostNetworkSayWhy()
    {
        var options = Root with { PodRuntimes = new HashSet<RuntimeKind> { RuntimeKind.Process } };

        var warnings = PodsCheck.Check(App(new Service { Name = "db", Image = "pg" }), options);

        Assert.Equal([new LimitsWarning("db", "docker", "db runs on the host network, not in pods: docker replicas cannot run in pods as this user (the mesh cannot enter a container's namespace without root)")], warnings);
    }

    [Fact]
    public void Check_HostGatewayInAPod_NoInternetEgressSaidWithWhatTheNameReaches_HostNetworkServicesSilent()
    {
        var gateway = new ContainerOptions { ExtraHosts = ["host.docker.internal:host-gateway", "db.local:127.0.0.9"] };
        var app = App(new Service { Name = "web", Image = "w", Container = gateway }, new Service { Name = "side", Image = "s", Network = NetworkMode.Host, Container = gateway });

        var warnings = PodsCheck.Check(app, Root);

        Assert.Equal([new LimitsWarning("web", "docker", "web has no internet egress: its pods hold only loopback; host.docker.internal (host-gateway) reaches the TCP services " +
            "listening on the host's loopback, forwarded by the mesh; write network_mode: host (network: host) for a service that needs the internet")], warnings);
    }

    [Fact]
    public void Check_EgressAsked_NoHelperOrADockerPod_NoEgressSaidWithTheFix_ProcessPodWithTheHelperSilent()
    {
        var gateway = new ContainerOptions { ExtraHosts = ["host.docker.internal:host-gateway"] };
        var app = App(new Service { Name = "fetch", Command = ["f"], Network = NetworkMode.Isolated, Egress = true, Container = gateway },
            new Service { Name = "box", Image = "b", Egress = true }, new Service { Name = "plain", Command = ["p"], Network = NetworkMode.Isolated });

        var without = PodsCheck.Check(app, Root);
        var with = PodsCheck.Check(app, Root with { EgressHelper = "/usr/bin/slirp4netns" });

        // One message per service: the egress one covers a pod asking for host-gateway as well.
        Assert.Equal(
        [
            new LimitsWarning("fetch", "process", "fetch has no egress: its pods hold only loopback, because slirp4netns is not installed " +
                "(apt-get install slirp4netns); or write network: host for a service that needs the outside world"),
            new LimitsWarning("box", "docker", "box has no egress: its pods hold only loopback (egress: true gives a userspace network to process pods only); " +
                "write network_mode: host (network: host) for a container that needs the outside world"),
        ], without);
        Assert.Equal([without[1]], with);
    }

    [Fact]
    public void PodFor_HostGatewayEntry_NameAtThePodsHostGatewayAddressOtherExtraHostsKept()
    {
        var web = new Service { Name = "web", Image = "w", Container = new ContainerOptions { ExtraHosts = ["host.docker.internal:host-gateway", "db.local:127.0.0.9"] } };

        var pod = ReplicaSpecBuilder.PodFor(App(web), web, new Dictionary<string, string> { ["web"] = "127.77.0.1" });

        Assert.Equal(["web=127.77.0.1", "host.docker.internal=127.78.0.1", "db.local=127.0.0.9"], pod.Hosts.Select(h => $"{h.Key}={h.Value}"));
        Assert.True(ReplicaSpecBuilder.ReachesHost(web));
        Assert.False(ReplicaSpecBuilder.ReachesHost(new Service { Name = "api", Image = "a" }));
    }
}
