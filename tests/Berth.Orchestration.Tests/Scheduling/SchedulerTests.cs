
namespace Berth.Orchestration.Tests.Scheduling;

public sealed class SchedulerTests
{
    private static NodeState[] Nodes(int n, long cpuMilli = 2000, long memory = 4L << 30) =>
        [.. Enumerable.Range(1, n).Select(i => new NodeState($"n{i}", cpuMilli, memory))];

    private static PlacementRequest Req(string id, string service = "api", long cpu = 500, long memory = 256L << 20) => new(id, service, cpu, memory);

    [Fact]
    public void Place_LeastLoaded_SpreadsOneServiceAcrossAllNodes()
    {
        var s = new Scheduler(Nodes(3), SchedulerPolicy.LeastLoaded);
        var placed = Enumerable.Range(0, 6).Select(i => s.Place(Req($"api-{i}")).Node).ToList();
        Assert.All(s.Nodes, n => Assert.Equal(2, n.ReplicasOf("api")));
        Assert.Equal(3, placed.Take(3).Distinct().Count());
    }

    [Fact]
    public void Place_LeastLoaded_PrefersTheEmptierNodeForANewService()
    {
        var s = new Scheduler(Nodes(2), SchedulerPolicy.LeastLoaded);
        Assert.Equal("n1", s.Place(Req("db-0", "db", cpu: 1500)).Node);
        Assert.Equal("n2", s.Place(Req("api-0", "api")).Node);
    }

    [Fact]
    public void Place_BinPack_PutsANewServiceOnTheMostAllocatedNode()
    {
        var s = new Scheduler(Nodes(2), SchedulerPolicy.BinPack);
        Assert.Equal("n1", s.Place(Req("db-0", "db", cpu: 1000)).Node);
        Assert.Equal("n1", s.Place(Req("api-0", "api", cpu: 500)).Node);
        Assert.Equal("n1", s.Place(Req("web-0", "web", cpu: 500)).Node);
        // n1 is full now: the next one has to go elsewhere.
        Assert.Equal("n2", s.Place(Req("cache-0", "cache", cpu: 500)).Node);
    }

    [Fact]
    public void Place_RoundRobin_TakesNodesInTurnAcrossServices()
    {
        var s = new Scheduler(Nodes(3), SchedulerPolicy.RoundRobin);
        var placed = new[] { ("a-0", "a"), ("b-0", "b"), ("c-0", "c"), ("d-0", "d") }.Select(x => s.Place(Req(x.Item1, x.Item2)).Node);
        Assert.Equal(["n1", "n2", "n3", "n1"], placed);
    }

    [Fact]
    public void Place_Random_SameSeedSamePlacementsAndAllNodesUsed()
    {
        List<string?> Run()
        {
            var s = new Scheduler(Nodes(5), SchedulerPolicy.Random, new Random(42));
            return [.. Enumerable.Range(0, 30).Select(i => s.Place(Req($"x-{i}", $"svc{i}", cpu: 10, memory: 1 << 20)).Node)];
        }

        var first = Run();
        Assert.Equal(first, Run());
        Assert.True(first.Distinct().Count() >= 3, $"random placements should vary, got {string.Join(",", first)}");
    }

    [Fact]
    public void Place_NothingFits_ReasonSaysWhatIsShortAndHowToFreeIt()
    {
        var s = new Scheduler(Nodes(2, cpuMilli: 1000), SchedulerPolicy.LeastLoaded);
        Assert.True(s.Place(Req("a", cpu: 1000)).Placed);
        Assert.True(s.Place(Req("b", cpu: 750)).Placed);
        var result = s.Place(Req("c", cpu: 500, memory: 8L << 30));
        Assert.False(result.Placed);
        Assert.Equal("0/2 nodes fit: 2 insufficient cpu (needs 500m, most free 250m), 2 insufficient memory (needs 8Gi, most free 3840Mi); "
            + "it starts when capacity frees (scale something down or add nodes)", result.Reason);
    }

    [Fact]
    public void Release_AfterFull_LetsThePendingRequestFit()
    {
        var s = new Scheduler(Nodes(1, cpuMilli: 1000), SchedulerPolicy.LeastLoaded);
        Assert.True(s.Place(Req("a", cpu: 1000)).Placed);
        Assert.False(s.Place(Req("b", cpu: 500)).Placed);
        s.Release("a");
        s.Release("a");
        Assert.Equal("n1", s.Place(Req("b", cpu: 500)).Node);
        Assert.Equal(500, s.Nodes[0].AllocatedCpuMilli);
    }

    [Fact]
    public void Place_FixedHostPortHeld_PendingWithTheHolderNamed()
    {
        var s = new Scheduler(Nodes(2), SchedulerPolicy.LeastLoaded, portFreeOnMachine: p => p != 9999);
        Assert.True(s.Place(Req("web-0", "web") with { HostPorts = [8080] }).Placed);
        Assert.Equal("port 8080 is taken by replica web-0; run fewer replicas or let Berth assign the port (drop targetPort)",
            s.Place(Req("web-1", "web") with { HostPorts = [8080] }).Reason);
        Assert.Equal("port 9999 is in use by another program on this machine", s.Place(Req("x-0", "x") with { HostPorts = [9999] }).Reason);
    }

    [Fact]
    public void Place_ZeroRequests_StillSpreadsByDefaultScoredRequests()
    {
        var s = new Scheduler(Nodes(2), SchedulerPolicy.LeastLoaded);
        Assert.Equal("n1", s.Place(Req("a-0", "a", 0, 0)).Node);
        Assert.Equal("n2", s.Place(Req("b-0", "b", 0, 0)).Node);
    }

    [Theory]
    [InlineData(3, 3)]
    [InlineData(100, 100)]
    [InlineData(1000, 420)]
    [InlineData(5000, 500)]
    [InlineData(100_000, 5000)]
    public void NumFeasibleNodesToFind_ByClusterSize_FollowsKubeScheduler(int nodes, int expected) =>
        Assert.Equal(expected, Scheduler.NumFeasibleNodesToFind(nodes));

    [Fact]
    public void Place_ManyNodes_SearchesInTurnSoEveryNodeGetsReplicas()
    {
        var s = new Scheduler(Nodes(1000, cpuMilli: 1000), SchedulerPolicy.LeastLoaded);
        for (var i = 0; i < 1000; i++)
        {
            Assert.True(s.Place(Req($"x-{i}", $"svc{i}", cpu: 1000)).Placed);
        }

        Assert.All(s.Nodes, n => Assert.Equal(1, n.Replicas));
        Assert.False(s.Place(Req("one-too-many", cpu: 1)).Placed);
    }

    [Fact]
    public void Restore_KnownNode_ReservesCapacity()
    {
        var s = new Scheduler(Nodes(1, cpuMilli: 1000), SchedulerPolicy.LeastLoaded);
        Assert.True(s.Restore(Req("a", cpu: 800), "n1"));
        Assert.False(s.Restore(Req("b"), "gone"));
        Assert.False(s.Place(Req("c", cpu: 500)).Placed);
    }
}

public sealed class CpuPartitionTests
{
    [Fact]
    public void Assign_NodesWithinCpus_EachGetsItsOwnCpus()
    {
        var sets = CpuPartition.Assign([CpuQuantity.Parse("2"), CpuQuantity.Parse("500m"), CpuQuantity.Parse("1.5")], [0, 1, 2, 3, 4, 5]);
        Assert.Equal(["0-1", "2", "3-4"], sets);
    }

    [Fact]
    public void Assign_MoreThanTheMachine_WrapsAndCapsAtAllCpus()
    {
        var sets = CpuPartition.Assign([CpuQuantity.Parse("1"), CpuQuantity.Parse("1"), CpuQuantity.Parse("1"), CpuQuantity.Parse("8")], [4, 5]);
        Assert.Equal(["4", "5", "4", "4-5"], sets);
    }

    [Fact]
    public void Format_Runs_CpusetListForm() => Assert.Equal("0-3,6,8-9", CpuPartition.Format([0, 1, 2, 3, 6, 8, 9]));
}
