
namespace Berth.Orchestration.Tests.Scheduling;

/// <summary>Random sequences of place, release and restore (a control-plane restart that rebuilds the scheduler from what
/// runs) on random nodes, under every policy, against a model of what is placed where.</summary>
public sealed class SchedulerPropertyTests
{
    private const int HostPortBase = 9000;

    /// <summary>One step: place a new replica of a service, release the n-th placed replica, or restart the scheduler.</summary>
    private abstract record Step;

    private sealed record PlaceStep(string Service, long CpuMilli, long MemoryMi, int? HostPort) : Step;

    private sealed record ReleaseStep(int Pick) : Step;

    private sealed record RestartStep : Step;

    private static readonly Gen<Step> Steps = Gen.Frequency(
        (6, Gen.Select(Gen.Int[0, 3], Gen.Int[0, 8], Gen.Int[0, 8], Gen.Int[0, 9],
            (service, cpu, memory, port) => (Step)new PlaceStep($"s{service}", cpu * 250L, memory * 128L, port < 3 ? HostPortBase + port : null))),
        (3, Gen.Int[0, 1000].Select(pick => (Step)new ReleaseStep(pick))),
        (1, Gen.Const((Step)new RestartStep())));

    private static readonly Gen<(SchedulerPolicy Policy, (long Cpu, long MemoryMi)[] Nodes, int Seed, Step[] Steps)> Cases =
        Gen.Select(Gen.Enum<SchedulerPolicy>(), Gen.Select(Gen.Int[0, 8], Gen.Int[0, 16], (c, m) => (c * 250L, m * 128L)).Array[1, 6], Gen.Int, Steps.Array[1, 80]);

    [Fact]
    public void PlaceReleaseRestore_AnySequenceEveryPolicy_NeverOvercommitsAndPendingOnlyWhenNothingFits()
    {
        Cases.Sample(c =>
        {
            var nodes = c.Nodes.Select((n, i) => (Name: $"n{i}", n.Cpu, Memory: n.MemoryMi << 20)).ToArray();
            Scheduler NewScheduler() => new(nodes.Select(n => new NodeState(n.Name, n.Cpu, n.Memory)), c.Policy, new Random(c.Seed));
            var scheduler = NewScheduler();
            var placed = new List<(PlacementRequest Request, string Node)>();
            var next = 0;
            foreach (var step in c.Steps)
            {
                switch (step)
                {
                    case PlaceStep p:
                        var request = new PlacementRequest($"{p.Service}-{next++}", p.Service, p.CpuMilli, p.MemoryMi << 20)
                        {
                            HostPorts = p.HostPort is { } port ? [port] : [],
                        };
                        var result = scheduler.Place(request);
                        if (result.Placed)
                        {
                            placed.Add((request, result.Node!));
                        }
                        else
                        {
                            // Pending only when no node fits: every node lacks CPU or memory, or a host port is taken.
                            var portTaken = request.HostPorts.Any(hp => placed.Any(x => x.Request.HostPorts.Contains(hp)));
                            var fits = nodes.Where(n => n.Cpu - Allocated(placed, n.Name, r => r.CpuMilli) >= request.CpuMilli
                                && n.Memory - Allocated(placed, n.Name, r => r.MemoryBytes) >= request.MemoryBytes).Select(n => n.Name).ToList();
                            Assert.True(portTaken || fits.Count == 0, $"{request} left pending ({result.Reason}) though {string.Join(", ", fits)} fit");
                            Assert.False(string.IsNullOrEmpty(result.Reason), "a pending replica says why");
                        }

                        break;
                    case ReleaseStep r when placed.Count > 0:
                        var victim = placed[r.Pick % placed.Count];
                        scheduler.Release(victim.Request.ReplicaId);
                        placed.Remove(victim);
                        break;
                    case ReleaseStep:
                        break;
                    case RestartStep:
                        scheduler = NewScheduler();
                        foreach (var (held, node) in placed)
                        {
                            Assert.True(scheduler.Restore(held, node), $"restore {held.ReplicaId} on {node}");
                        }

                        break;
                    default:
                        throw new InvalidOperationException($"unknown step {step}");
                }

                foreach (var node in scheduler.Nodes)
                {
                    Assert.Equal(Allocated(placed, node.Name, r => r.CpuMilli), node.AllocatedCpuMilli);
                    Assert.Equal(Allocated(placed, node.Name, r => r.MemoryBytes), node.AllocatedMemoryBytes);
                    Assert.True(node.AllocatedCpuMilli <= node.CpuMilli, $"{node.Name}: {node.AllocatedCpuMilli}m CPU allocated of {node.CpuMilli}m");
                    Assert.True(node.AllocatedMemoryBytes <= node.MemoryBytes, $"{node.Name}: {node.AllocatedMemoryBytes} bytes allocated of {node.MemoryBytes}");
                }

                var ports = placed.SelectMany(x => x.Request.HostPorts).ToList();
                Assert.True(ports.Count == ports.Distinct().Count(), $"a host port is held twice: {string.Join(", ", ports)}");
                Assert.All(placed, x => Assert.Equal(x.Node, scheduler.NodeOf(x.Request.ReplicaId)));
            }
        }, iter: 500);
    }

    private static long Allocated(List<(PlacementRequest Request, string Node)> placed, string node, Func<PlacementRequest, long> amount) =>
        placed.Where(x => x.Node == node).Sum(x => amount(x.Request));
}
