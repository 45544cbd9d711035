using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Running;
using Berth.Core.Model;
using Berth.Orchestration.Scheduling;

BenchmarkSwitcher.FromAssembly(typeof(SchedulerBenchmarks).Assembly).Run(args);

/// <summary>Placing 10,000 replicas on 5,000 nodes, the scale of kube-scheduler's CI performance test
/// (SchedulingBasic, 5,000 nodes; its floor is 680 pods/s). Every placement filters and scores all nodes.</summary>
[MemoryDiagnoser]
public class SchedulerBenchmarks
{
    private const int Nodes = 5_000;
    private const int Replicas = 10_000;
    private PlacementRequest[] _requests = [];

    [Params(SchedulerPolicy.LeastLoaded, SchedulerPolicy.BinPack, SchedulerPolicy.RoundRobin, SchedulerPolicy.Random)]
    public SchedulerPolicy Policy { get; set; }

    [GlobalSetup]
    public void Setup() =>
        // 100 services of 100 replicas with mixed requests, so spreading and scoring both matter.
        _requests = [.. Enumerable.Range(0, Replicas).Select(i => new PlacementRequest($"svc{i % 100}-{i}", $"svc{i % 100}", 100 + (i % 7 * 50), (64L << 20) * (1 + (i % 5))))];

    [Benchmark(Description = "place 10,000 replicas on 5,000 nodes", OperationsPerInvoke = Replicas)]
    public int PlaceAll()
    {
        // 4 cores / 16 GiB nodes, as a mid-sized Kubernetes node (kube-scheduler's perf tests use 4 CPU / 32 GiB nodes).
        var scheduler = new Scheduler(
            Enumerable.Range(0, Nodes).Select(i => new NodeState($"node-{i}", 4_000, 16L << 30)), Policy, new Random(1));
        var placed = 0;
        foreach (var r in _requests)
        {
            placed += scheduler.Place(r).Placed ? 1 : 0;
        }

        return placed;
    }
}
