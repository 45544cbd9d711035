using Berth.Runtime.Capabilities;

namespace Berth.Runtime.Tests.Cgroups;

/// <summary>Issue #18 over a fake tree laid out like the kernel's (this machine's kernel mounts cgroup v1, so the v2
/// delegation paths run only here): which subtree a normal user may use, what is probed, and what is said when none.</summary>
public sealed class RootlessCgroupTests : IDisposable
{
    private const string Scope = "user.slice/user-1000.slice/user@1000.service/app.slice/run-r4f2.scope";

    private readonly string _root = Directory.CreateTempSubdirectory("berth-fake-cgroup2").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    /// <summary>A v2 mount as systemd leaves it: every controller at the root, the user's scope with what systemd delegated.</summary>
    private string FakeV2(string scopeControllers, params int[] pidsInScope)
    {
        File.WriteAllText(Path.Combine(_root, "cgroup.controllers"), "cpuset cpu io memory hugetlb pids\n");
        var scope = Path.Combine(_root, Scope);
        Directory.CreateDirectory(scope);
        File.WriteAllText(Path.Combine(scope, "cgroup.controllers"), scopeControllers + "\n");
        File.WriteAllText(Path.Combine(scope, "cgroup.procs"), string.Concat(pidsInScope.Select(p => $"{p}\n")));
        return scope;
    }

    private CgroupSetting AsUser1000(string ownCgroup) =>
        new(_root, "berth", RootGiven: false, Uid: 1000, ProcSelfCgroup: $"0::/{ownCgroup}\n");

    [Fact]
    public void Detect_V2NormalUserInDelegatedScope_UsesTheScopeAndMovesItsProcessesToALeaf()
    {
        var scope = FakeV2("cpu memory pids", 4242, 4343);

        var cgroups = CgroupDetector.Detect(AsUser1000(Scope));

        Assert.True(cgroups.Enforced);
        Assert.Equal($"cgroup v2 at {scope}/berth (cpu memory), delegated by systemd to uid 1000 (the scope run-r4f2.scope under user@1000.service)", cgroups.Description);
        Assert.Null(cgroups.Fix);
        Assert.Equal("4242\n4343\n", File.ReadAllText(Path.Combine(scope, "berth-control-plane", "cgroup.procs")));
        Assert.Equal("+cpu +memory", File.ReadAllText(Path.Combine(scope, "cgroup.subtree_control")));
        Assert.Equal("+cpu +memory", File.ReadAllText(Path.Combine(scope, "berth", "cgroup.subtree_control")));
        Assert.Empty(Directory.GetDirectories(Path.Combine(scope, "berth"))); // the probe group is gone

        cgroups.Ensure("shop/api-1", new CgroupLimits(CpuQuantity.Parse("250m"), ByteSize.Parse("64Mi")));

        Assert.Equal("25000 100000", File.ReadAllText(Path.Combine(scope, "berth", "shop", "api-1", "cpu.max")));
        Assert.Equal((64L << 20).ToString(System.Globalization.CultureInfo.InvariantCulture), File.ReadAllText(Path.Combine(scope, "berth", "shop", "api-1", "memory.max")));
        Assert.Equal([Path.Combine(scope, "berth", "shop", "api-1", "cgroup.procs")], cgroups.ProcsFiles("shop/api-1"));
    }

    [Fact]
    public void Detect_V2NormalUserInUserService_UsesUserAtUidService()
    {
        File.WriteAllText(Path.Combine(_root, "cgroup.controllers"), "cpu memory pids\n");
        var service = Path.Combine(_root, "user.slice", "user-1000.slice", "user@1000.service");
        Directory.CreateDirectory(service);
        File.WriteAllText(Path.Combine(service, "cgroup.controllers"), "cpu memory pids\n");

        var cgroups = CgroupDetector.Detect(AsUser1000("user.slice/user-1000.slice/user@1000.service"));

        Assert.Equal($"cgroup v2 at {service}/berth (cpu memory), delegated by systemd to uid 1000 (user@1000.service)", cgroups.Description);
    }

    [Fact]
    public void Detect_V2NormalUserInLoginSession_NotEnforcedAndSaysToStartInADelegatedScope()
    {
        FakeV2("cpu memory pids");
        Directory.CreateDirectory(Path.Combine(_root, "user.slice", "user-1000.slice", "session-3.scope"));

        var cgroups = CgroupDetector.Detect(AsUser1000("user.slice/user-1000.slice/session-3.scope"));

        Assert.False(cgroups.Enforced);
        Assert.Equal("none: cgroup v2: berth runs in the group /user.slice/user-1000.slice/session-3.scope, which systemd has not delegated to uid 1000 " +
            "(it is not under user@1000.service); replicas run without CPU and memory limits", cgroups.Description);
        Assert.Equal("start berth in a scope systemd delegates to you: systemd-run --user --scope -p Delegate=yes berth up", cgroups.Fix);
        Assert.False(File.Exists(Path.Combine(_root, "cgroup.subtree_control")), "nothing is written outside the user's subtree");
    }

    [Fact]
    public void Detect_V2DelegatedWithoutCpu_NotEnforcedAndSaysHowToDelegateControllers()
    {
        var scope = FakeV2("memory pids", 4242);

        var cgroups = CgroupDetector.Detect(AsUser1000(Scope));

        Assert.False(cgroups.Enforced);
        Assert.Equal($"none: cgroup v2 at {scope} does not delegate the cpu and memory controllers (it has: memory, pids); replicas run without CPU and memory limits", cgroups.Description);
        Assert.Equal("have systemd delegate them to users: a drop-in /etc/systemd/system/user@.service.d/delegate.conf with [Service] Delegate=cpu cpuset io memory pids, " +
            "then systemctl daemon-reload and log in again", cgroups.Fix);
        Assert.False(Directory.Exists(Path.Combine(scope, "berth-control-plane")), "processes are moved only when the subtree will be used");
    }

    [Fact]
    public void Detect_V2NoProcSelfCgroupLine_NotEnforcedWithReason()
    {
        FakeV2("cpu memory");

        var cgroups = CgroupDetector.Detect(new CgroupSetting(_root, "berth", RootGiven: false, Uid: 1000, ProcSelfCgroup: "4:memory:/\n"));

        Assert.Equal($"none: cgroup v2 at {_root}: this process is in no cgroup v2 group (/proc/self/cgroup has no 0:: line); replicas run without CPU and memory limits", cgroups.Description);
    }

    [Fact]
    public void Detect_V1_ProbeGroupsMadeAndRemovedBerthFolderKept()
    {
        foreach (var c in new[] { "cpu", "cpuacct", "memory" })
        {
            Directory.CreateDirectory(Path.Combine(_root, c));
        }

        var cgroups = CgroupDetector.Detect(_root, "berth");

        Assert.True(cgroups.Enforced);
        foreach (var c in new[] { "cpu", "cpuacct", "memory" })
        {
            Assert.Equal([], Directory.GetFileSystemEntries(Path.Combine(_root, c, "berth")));
        }
    }

    [Fact]
    public void Detect_V1ControllerNotAFolder_NotEnforcedWithWhatTheKernelSaid()
    {
        Directory.CreateDirectory(Path.Combine(_root, "cpu"));
        Directory.CreateDirectory(Path.Combine(_root, "cpuacct"));
        Directory.CreateDirectory(Path.Combine(_root, "memory"));
        File.WriteAllText(Path.Combine(_root, "memory", "berth"), "not a folder");

        var cgroups = CgroupDetector.Detect(_root, "berth");

        Assert.False(cgroups.Enforced);
        Assert.StartsWith($"none: cgroup v1 at {_root} is not usable by {HostUser.Describe(HostUser.Uid)} (", cgroups.Description, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFileSystemEntries(Path.Combine(_root, "cpu", "berth")));
    }

    [Fact]
    public async Task StartAsync_HierarchyRefusesAfterProbe_ReplicaRunsWithoutLimitsAndCapabilitiesSaySo()
    {
        var state = Path.Combine(_root, "state");
        var refusing = new RefusingHierarchy();
        var driver = new ProcessDriver(new ProcessDriverOptions { StateRoot = state }, refusing);
        var spec = ProcessDriverScope.PerlIn(state, "barsapp", "bars", "bars-1", "print qq(ran\\n)") with { MemoryLimit = ByteSize.Parse("64Mi") };
        Assert.True(driver.Capabilities.MemoryLimitsEnforced);

        var handle = await driver.StartAsync(spec, CancellationToken.None);
        var status = await driver.WaitForExitAsync(handle, new CancellationTokenSource(TimeSpan.FromSeconds(60)).Token);

        Assert.Equal(0, status.ExitCode);
        Assert.False(driver.Capabilities.MemoryLimitsEnforced);
        Assert.Equal($"none: {RefusingHierarchy.Name} stopped letting {HostUser.Describe(HostUser.Uid)} in ({HostUser.Describe(HostUser.Uid)} may not write there: " +
            "Access to the path '/sys/fs/cgroup/cpu/berth/barsapp' is denied); replicas run without CPU and memory limits", driver.Capabilities.LimitsMechanism);
        Assert.Equal(new HostCapability("cgroups", false,
            $"CPU and memory limits not enforced: {RefusingHierarchy.Name} stopped letting {HostUser.Describe(HostUser.Uid)} in ({HostUser.Describe(HostUser.Uid)} may not write there: " +
            "Access to the path '/sys/fs/cgroup/cpu/berth/barsapp' is denied)",
            "run the control plane as root, or point BERTH_CGROUP_ROOT at a delegated cgroup v2 subtree"), driver.CgroupCapability);
        await driver.RemoveAsync(handle, CancellationToken.None);
    }

    /// <summary>Issue #14: cgroup cleanup on v2 as a normal user. A replica's group in the delegated scope goes with the
    /// replica, the app's folder with its last replica, and the sweep of <c>berth down</c> removes what a killed control plane
    /// left below the app's folder (deepest first, the control files of the fake tree with them).</summary>
    [Fact]
    public async Task RemoveAndSweep_V2DelegatedScope_ReplicaGroupGoesWithItsReplicaAndLeftoversWithTheSweep()
    {
        var scope = FakeV2("cpu memory pids");
        var cgroups = CgroupDetector.Detect(AsUser1000(Scope));
        var state = Path.Combine(_root, "state");
        var driver = new ProcessDriver(new ProcessDriverOptions { StateRoot = state }, cgroups);
        var app = Path.Combine(scope, "berth", "v2app");
        var spec = ProcessDriverScope.PerlIn(state, "v2app", "w", "w-1", "sleep 600") with { MemoryLimit = ByteSize.Parse("64Mi") };

        var handle = await driver.StartAsync(spec, CancellationToken.None);
        Assert.Equal((64L << 20).ToString(System.Globalization.CultureInfo.InvariantCulture), File.ReadAllText(Path.Combine(app, "w-1", "memory.max")));
        Assert.NotEmpty(File.ReadAllText(Path.Combine(app, "w-1", "cgroup.procs")).Trim());
        await driver.StopAsync(handle, TimeSpan.FromSeconds(1), CancellationToken.None);
        await driver.RemoveAsync(handle, CancellationToken.None);

        Assert.False(Directory.Exists(Path.Combine(app, "w-1")), "the replica's group goes with it");
        Assert.False(Directory.Exists(app), "the app's folder goes with its last replica");

        foreach (var group in new[] { Path.Combine(app, "w-2"), Path.Combine(app, "node-a", "w-3") })
        {
            Directory.CreateDirectory(group);
            File.WriteAllText(Path.Combine(group, "memory.max"), "67108864");
            File.WriteAllText(Path.Combine(group, "cgroup.procs"), "");
        }

        var left = await driver.SweepCgroupsAsync("v2app", new HashSet<string> { "w-2", "w-3" }, CancellationToken.None);

        Assert.Empty(left);
        Assert.False(Directory.Exists(app), "down's sweep removes every leftover group below the app's folder");
        Assert.True(Directory.Exists(Path.Combine(scope, "berth")), "Berth's own folder in the scope stays");
    }

    /// <summary>A hierarchy that passed its probe and then refuses, as a root-made group does for a normal user.</summary>
    private sealed class RefusingHierarchy : ICgroupHierarchy
    {
        public const string Name = "cgroup v1 (cpu, cpuacct, memory) under /sys/fs/cgroup/<controller>/berth";

        public bool Enforced => true;

        public string Description => Name;

        public string? Fix => null;

        public void Ensure(string path, CgroupLimits limits) =>
            throw new UnauthorizedAccessException("Access to the path '/sys/fs/cgroup/cpu/berth/barsapp' is denied.");

        public IReadOnlyList<string> ProcsFiles(string path) => throw new InvalidOperationException("a refused group is never joined");

        public string? OomFile(string path) => null;

        public CgroupUsage? Usage(string path) => null;

        public IReadOnlyList<int> Pids(string path) => [];

        public bool Remove(string path) => true;

        public IReadOnlyList<string> Children(string path) => [];

        public void SetSubtreeCpuShares(long shares)
        {
        }
    }
}
