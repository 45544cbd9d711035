
namespace Berth.Runtime.Tests.Cgroups;

/// <summary>The cgroup layer's own logic (which files, which values, in which order) over a plain folder laid out like the kernel's.</summary>
public sealed class CgroupHierarchyTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("berth-fake-cgroup").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    // Each row: the root's cgroup.controllers (null: no file, so no hierarchy at all) and why limits are not enforced ({0} is the root).
    [Theory]
    [InlineData(null, "none: no cgroup hierarchy at {0}; replicas run without CPU and memory limits")]
    [InlineData("hugetlb pids\n", "none: cgroup v2 at {0} does not delegate the cpu and memory controllers (it has: hugetlb, pids); replicas run without CPU and memory limits")]
    public void Detect_NoHierarchyOrV2WithoutCpuAndMemoryDelegated_NotEnforcedWithReason(string? controllers, string reason)
    {
        if (controllers is not null)
        {
            File.WriteAllText(Path.Combine(_root, "cgroup.controllers"), controllers);
        }

        var cgroups = CgroupDetector.Detect(_root, "berth");

        Assert.False(cgroups.Enforced);
        Assert.Equal(string.Format(System.Globalization.CultureInfo.InvariantCulture, reason, _root), cgroups.Description);
    }

    [Fact]
    public void Ensure_V2_WritesCpuMaxMemoryMaxAndEnablesControllersDownTheTree()
    {
        File.WriteAllText(Path.Combine(_root, "cgroup.controllers"), "cpuset cpu io memory pids\n");
        var cgroups = CgroupDetector.Detect(_root, "berth");

        cgroups.Ensure("shop/node-a/api-1", new CgroupLimits(CpuQuantity.Parse("500m"), ByteSize.Parse("256Mi"), "1"));

        Assert.True(cgroups.Enforced);
        Assert.Equal($"cgroup v2 at {_root}/berth (cpu memory cpuset)", cgroups.Description);
        Assert.Equal("+cpu +memory +cpuset", File.ReadAllText(Path.Combine(_root, "cgroup.subtree_control")));
        Assert.Equal("+cpu +memory +cpuset", File.ReadAllText(Path.Combine(_root, "berth", "shop", "node-a", "cgroup.subtree_control")));
        var leaf = Path.Combine(_root, "berth", "shop", "node-a", "api-1");
        Assert.Equal("50000 100000", File.ReadAllText(Path.Combine(leaf, "cpu.max")));
        Assert.Equal((256L << 20).ToString(System.Globalization.CultureInfo.InvariantCulture), File.ReadAllText(Path.Combine(leaf, "memory.max")));
        Assert.Equal([Path.Combine(leaf, "cgroup.procs")], cgroups.ProcsFiles("shop/node-a/api-1"));
        Assert.Equal(Path.Combine(leaf, "memory.events"), cgroups.OomFile("shop/node-a/api-1"));
    }

    [Fact]
    public void Usage_V2_ReadsCpuStatAndMemoryCurrent()
    {
        File.WriteAllText(Path.Combine(_root, "cgroup.controllers"), "cpu memory\n");
        var cgroups = CgroupDetector.Detect(_root, "berth");
        cgroups.Ensure("app/r1", new CgroupLimits(null, null));
        var leaf = Path.Combine(_root, "berth", "app", "r1");
        File.WriteAllText(Path.Combine(leaf, "cpu.stat"), "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n");
        File.WriteAllText(Path.Combine(leaf, "memory.current"), "4096\n");

        var usage = cgroups.Usage("app/r1");

        Assert.Equal("max 100000", File.ReadAllText(Path.Combine(leaf, "cpu.max")));
        Assert.Equal(new CgroupUsage(1_500_000, 4096, null), usage);
    }

    [Fact]
    public void Ensure_V1_QuotaClampedToNodeAndCpusetCopiedFromParent()
    {
        foreach (var c in new[] { "cpu", "cpuacct", "memory", "cpuset" })
        {
            Directory.CreateDirectory(Path.Combine(_root, c));
        }

        File.WriteAllText(Path.Combine(_root, "cpuset", "cpuset.cpus"), "0-1");
        File.WriteAllText(Path.Combine(_root, "cpuset", "cpuset.mems"), "0");
        var cgroups = CgroupDetector.Detect(_root, "berth");
        cgroups.Ensure("shop/node-a", new CgroupLimits(CpuQuantity.Parse("1"), null, "1"));

        cgroups.Ensure("shop/node-a/api-1", new CgroupLimits(CpuQuantity.Parse("2"), ByteSize.Parse("64Mi")));

        var cpu = Path.Combine(_root, "cpu", "berth", "shop", "node-a");
        Assert.Equal("100000", File.ReadAllText(Path.Combine(cpu, "cpu.cfs_quota_us")));
        Assert.Equal("100000", File.ReadAllText(Path.Combine(cpu, "api-1", "cpu.cfs_quota_us")));
        Assert.Equal("1", File.ReadAllText(Path.Combine(_root, "cpuset", "berth", "shop", "node-a", "cpuset.cpus")));
        Assert.Equal("1", File.ReadAllText(Path.Combine(_root, "cpuset", "berth", "shop", "node-a", "api-1", "cpuset.cpus")));
        Assert.Equal("0", File.ReadAllText(Path.Combine(_root, "cpuset", "berth", "shop", "node-a", "api-1", "cpuset.mems")));
        Assert.Equal((64L << 20).ToString(System.Globalization.CultureInfo.InvariantCulture), File.ReadAllText(Path.Combine(_root, "memory", "berth", "shop", "node-a", "api-1", "memory.limit_in_bytes")));
    }

    [Theory]
    [InlineData("../escape")]
    [InlineData("a//b")]
    [InlineData("a/b c")]
    [InlineData("")]
    public void Ensure_BadPath_RejectedWithHowToWriteIt(string path)
    {
        File.WriteAllText(Path.Combine(_root, "cgroup.controllers"), "cpu memory\n");
        var cgroups = CgroupDetector.Detect(_root, "berth");

        var error = Assert.Throws<ArgumentException>(() => cgroups.Ensure(path, new CgroupLimits(null, null)));

        Assert.StartsWith($"cgroup path '{path}' is not valid: use segments of letters, digits, '.', '_' and '-' separated by '/'", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task StartAsync_NoUsableCgroups_ReplicaRunsAndLimitsReportedNotEnforced()
    {
        var state = Path.Combine(_root, "state");
        var driver = new ProcessDriver(new ProcessDriverOptions { StateRoot = state, CgroupRoot = Path.Combine(_root, "nothing-here") });
        var spec = ProcessDriverScope.PerlIn(state, "plain", "svc", "r1", "print qq(ran\\n)") with
        {
            CpuLimit = CpuQuantity.Parse("500m"),
            MemoryLimit = ByteSize.Parse("64Mi"),
        };

        var handle = await driver.StartAsync(spec, CancellationToken.None);
        var status = await driver.WaitForExitAsync(handle, new CancellationTokenSource(TimeSpan.FromSeconds(60)).Token);

        Assert.False(driver.Capabilities.CpuLimitsEnforced);
        Assert.False(driver.Capabilities.MemoryLimitsEnforced);
        Assert.Equal($"none: no cgroup hierarchy at {_root}/nothing-here; replicas run without CPU and memory limits", driver.Capabilities.LimitsMechanism);
        Assert.Equal(0, status.ExitCode);
        await driver.RemoveAsync(handle, CancellationToken.None);
    }
}
