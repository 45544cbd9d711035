
namespace Berth.Runtime.Tests.Process;

/// <summary>Kernel-enforced limits on the process driver: these need writable cgroups (root on v1, or a delegated v2 subtree).</summary>
public sealed class ProcessLimitsTests
{
    private const string Allocate200Mi = "$| = 1; print qq(allocating\\n); my $mb = 200; my $x = q(a) x ($mb * 1024 * 1024); print qq(survived\\n)";

    [CgroupFact]
    public void Capabilities_WritableCgroups_SaysLimitsEnforcedAndHow()
    {
        var driver = new ProcessDriverScope().Driver;

        Assert.True(driver.Capabilities.CpuLimitsEnforced);
        Assert.True(driver.Capabilities.MemoryLimitsEnforced);
        Assert.Matches("^cgroup v[12] ", driver.Capabilities.LimitsMechanism);
    }

    [CgroupFact]
    public async Task StartAsync_AllocatingPastMemoryLimit_OomKilledByKernel()
    {
        await using var scope = new ProcessDriverScope();
        var handle = await scope.StartAsync(scope.Perl("hungry", Allocate200Mi) with { MemoryLimit = ByteSize.Parse("64Mi") });

        var status = await ProcessDriverTests.WaitAsync(scope, handle);
        var logs = await scope.Driver.GetLogsAsync(handle, new LogOptions(), CancellationToken.None).ToListAsync();

        Assert.Equal(ReplicaState.Exited, status.State);
        Assert.True(status.OomKilled, $"expected OOM-killed, got exit {status.ExitCode} signal {status.Signal}");
        Assert.Equal(9, status.Signal);
        Assert.Equal(["allocating"], logs.Texts(LogStream.Stdout));
    }

    [CgroupFact]
    public async Task StartAsync_AllocatingWithinMemoryLimit_NotOomKilled()
    {
        await using var scope = new ProcessDriverScope();
        var handle = await scope.StartAsync(scope.Perl("fits", Allocate200Mi) with { MemoryLimit = ByteSize.Parse("600Mi") });

        var status = await ProcessDriverTests.WaitAsync(scope, handle);

        Assert.Equal(0, status.ExitCode);
        Assert.False(status.OomKilled);
    }

    [CgroupFact]
    public async Task GetStatsAsync_BusyLoopWithHalfCpuLimit_UsesHalfACore()
    {
        await using var scope = new ProcessDriverScope(cpuShares: CpuWindows.Shares);
        using var restore = new Restore(CpuWindows.RestoreDefaultShares);
        var handle = await scope.StartAsync(scope.Perl("busy", "1 while 1") with { CpuLimit = CpuQuantity.Parse("500m"), MemoryLimit = ByteSize.Parse("256Mi") });

        var windows = await CpuWindows.MeasureAsync(() => scope.Driver.GetStatsAsync(handle, CancellationToken.None));

        Assert.Contains(windows, w => w.CpuPercent is >= 40 and <= 60);
        Assert.All(windows, w => Assert.True(w.CpuPercent <= 60, $"the 0.5 CPU limit held in every window: {string.Join(", ", windows.Select(x => x.CpuPercent.ToString("0.0")))}"));
        Assert.Equal(ByteSize.Parse("256Mi"), windows[^1].MemoryLimit);
        Assert.InRange(windows[^1].MemoryUsage.Bytes, 1, 256L << 20);
    }

    [CgroupFact]
    public async Task EnsureNodeAsync_NodeMemoryCap_AppliesToReplicaWithoutItsOwnLimit()
    {
        await using var scope = new ProcessDriverScope();
        var node = await scope.Driver.EnsureNodeAsync(new NodeCgroupSpec { Path = NodeCgroupSpec.PathFor(scope.App, "small"), Cpu = CpuQuantity.Parse("1"), Memory = ByteSize.Parse("64Mi"), CpuSet = "0" }, CancellationToken.None);
        var handle = await scope.StartAsync(scope.Perl("on-node", Allocate200Mi) with { Node = node });

        var status = await ProcessDriverTests.WaitAsync(scope, handle);

        Assert.Equal($"{scope.App}/small", node);
        Assert.True(status.OomKilled, $"expected the node's 64Mi cap to OOM-kill the replica, got exit {status.ExitCode}");
        Assert.Equal("0", File.ReadAllText($"/sys/fs/cgroup/cpuset/berth/{node}/on-node/cpuset.cpus").Trim());
        await scope.Driver.RemoveAsync(handle, CancellationToken.None);
        await scope.Driver.RemoveNodeAsync(node, CancellationToken.None);
        Assert.False(Directory.Exists($"/sys/fs/cgroup/memory/berth/{node}"), "node cgroup removed");
        Assert.False(Directory.Exists($"/sys/fs/cgroup/memory/berth/{scope.App}"), "app cgroup removed with its last node");
    }

    [CgroupFact]
    public async Task RemoveAsync_StoppedReplica_CgroupsRemovedInEveryController()
    {
        await using var scope = new ProcessDriverScope();
        var handle = await scope.StartAsync(scope.Perl("cg", "sleep 1 while 1") with { MemoryLimit = ByteSize.Parse("32Mi") });
        string[] controllers = ["cpu", "cpuacct", "memory"];
        Assert.All(controllers, c => Assert.True(Directory.Exists($"/sys/fs/cgroup/{c}/berth/{scope.App}/cg"), $"{c} cgroup exists while running"));
        Assert.Contains(handle.Pid!.Value.ToString(System.Globalization.CultureInfo.InvariantCulture), File.ReadAllText($"/sys/fs/cgroup/memory/berth/{scope.App}/cg/cgroup.procs"), StringComparison.Ordinal);

        await scope.Driver.StopAsync(handle, TimeSpan.FromSeconds(10), CancellationToken.None);
        await scope.Driver.RemoveAsync(handle, CancellationToken.None);

        Assert.All(controllers, c => Assert.False(Directory.Exists($"/sys/fs/cgroup/{c}/berth/{scope.App}"), $"{c} cgroup removed"));
    }

    private sealed class Restore(Action undo) : IDisposable
    {
        public void Dispose() => undo();
    }
}
