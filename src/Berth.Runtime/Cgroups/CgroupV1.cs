using System.Globalization;
using Berth.Runtime.Capabilities;

namespace Berth.Runtime.Cgroups;

/// <summary>cgroup v1: one directory per controller (cpu, cpuacct, memory, and cpuset where mounted), Berth's subtree in each.</summary>
internal sealed class CgroupV1 : ICgroupHierarchy
{
    /// <summary>100 ms, the kernel's (and Docker's) default CFS period.</summary>
    private const long CfsPeriodMicros = 100_000;

    /// <summary>The kernel rejects quotas below 1 ms.</summary>
    private const long MinQuotaMicros = 1_000;

    private const long UnlimitedThreshold = long.MaxValue / 2;

    private readonly string _cpu;
    private readonly string _cpuacct;
    private readonly string _memory;
    private readonly string? _cpuset;

    private CgroupV1(string cpu, string cpuacct, string memory, string? cpuset, string root, string subtree)
    {
        _cpu = cpu;
        _cpuacct = cpuacct;
        _memory = memory;
        _cpuset = cpuset;
        var controllers = cpuset is null ? "cpu, cpuacct, memory" : "cpu, cpuacct, memory, cpuset";
        Description = $"cgroup v1 ({controllers}) under {root}/<controller>/{subtree}";
    }

    public bool Enforced => true;

    public string Description { get; }

    public string? Fix => null;

    public static CgroupV1? TryCreate(CgroupSetting setting, out string? reason, out string? fix)
    {
        reason = null;
        fix = null;
        var (root, subtree) = (setting.Root, setting.Subtree);
        string? Controller(string name) => Directory.Exists(Path.Combine(root, name)) ? Path.Combine(root, name, subtree) : null;
        var cpu = Controller("cpu");
        var cpuacct = Controller("cpuacct");
        var memory = Controller("memory");
        var cpuset = Controller("cpuset");
        if (cpu is null || cpuacct is null || memory is null)
        {
            reason = $"cgroup v1 at {root} lacks the cpu, cpuacct or memory controller";
            fix = "mount the cpu, cpuacct and memory controllers, or boot with cgroup v2";
            return null;
        }

        string[] required = [cpu, cpuacct, memory];
        var current = "";
        try
        {
            foreach (var dir in required)
            {
                current = Path.GetDirectoryName(dir)!;
                Directory.CreateDirectory(dir);
            }

            // Existing is not enough (issue #18: a root-made berth/ crash-looped every replica of a normal user): make a
            // group in each, write its limits, move a process in, remove it.
            var probe = $".probe-{Environment.ProcessId}";
            try
            {
                foreach (var dir in required)
                {
                    current = dir;
                    Directory.CreateDirectory(Path.Combine(dir, probe));
                }

                current = cpu;
                CgroupDetector.Write(Path.Combine(cpu, probe, "cpu.cfs_quota_us"), CfsPeriodMicros.ToString(CultureInfo.InvariantCulture));
                current = memory;
                CgroupDetector.Write(Path.Combine(memory, probe, "memory.limit_in_bytes"), (64L << 20).ToString(CultureInfo.InvariantCulture));
                current = root;
                CgroupDetector.ProveJoin([.. required.Select(d => Path.Combine(d, probe, "cgroup.procs"))]);
            }
            finally
            {
                foreach (var dir in required)
                {
                    CgroupDetector.RemoveProbe(Path.Combine(dir, probe));
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            reason = setting.Uid != 0 && e is UnauthorizedAccessException
                ? $"cgroup v1 at {root}: {HostUser.Describe(setting.Uid)} may not create cgroups in {current} (permission denied)"
                : $"cgroup v1 at {root} is not usable by {HostUser.Describe(setting.Uid)} ({CgroupDetector.Why(e, setting.Uid)})";
            fix = setting.Uid == 0 ? "check that the cgroup v1 controllers are mounted read-write"
                : $"run berth as root, or have root hand {HostUser.Describe(setting.Uid)} a subtree once " +
                  $"(mkdir {root}/{{cpu,cpuacct,memory}}/berth-{setting.Uid} and chown -R {setting.Uid} them) and set BERTH_CGROUP_SUBTREE=berth-{setting.Uid}";
            return null;
        }

        if (cpuset is not null)
        {
            try
            {
                CreateCpuset(cpuset);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                cpuset = null; // CPU sets are a refinement; quotas and memory limits still hold.
            }
        }

        return new CgroupV1(cpu, cpuacct, memory, cpuset, root, subtree);
    }

    public void Ensure(string path, CgroupLimits limits)
    {
        CgroupDetector.ValidatePath(path);
        var relative = "";
        foreach (var segment in path.Split('/'))
        {
            relative = relative.Length == 0 ? segment : $"{relative}/{segment}";
            Directory.CreateDirectory(Path.Combine(_cpu, relative));
            Directory.CreateDirectory(Path.Combine(_cpuacct, relative));
            Directory.CreateDirectory(Path.Combine(_memory, relative));
            if (_cpuset is not null)
            {
                CreateCpuset(Path.Combine(_cpuset, relative));
            }
        }

        SetCpu(Path.Combine(_cpu, path), limits);
        SetMemory(Path.Combine(_memory, path), limits);
        if (_cpuset is not null && limits.CpuSet is not null)
        {
            CgroupDetector.Write(Path.Combine(_cpuset, path, "cpuset.cpus"), limits.CpuSet);
        }
    }

    public IReadOnlyList<string> ProcsFiles(string path)
    {
        List<string> files = [Path.Combine(_cpu, path, "cgroup.procs"), Path.Combine(_cpuacct, path, "cgroup.procs"), Path.Combine(_memory, path, "cgroup.procs")];
        if (_cpuset is not null)
        {
            files.Add(Path.Combine(_cpuset, path, "cgroup.procs"));
        }

        return files;
    }

    public string? OomFile(string path) => Path.Combine(_memory, path, "memory.oom_control");

    public CgroupUsage? Usage(string path)
    {
        var cpu = CgroupDetector.ReadLong(Path.Combine(_cpuacct, path, "cpuacct.usage"));
        var memory = CgroupDetector.ReadLong(Path.Combine(_memory, path, "memory.usage_in_bytes"));
        if (cpu is null || memory is null)
        {
            return null;
        }

        var limit = CgroupDetector.ReadLong(Path.Combine(_memory, path, "memory.limit_in_bytes"));
        return new CgroupUsage(cpu.Value, memory.Value, limit is null or >= UnlimitedThreshold ? null : limit);
    }

    public IReadOnlyList<int> Pids(string path) =>
        [.. CgroupDetector.ReadPids(Path.Combine(_memory, path, "cgroup.procs"))
            .Concat(CgroupDetector.ReadPids(Path.Combine(_cpu, path, "cgroup.procs")))
            .Distinct()];

    public bool Remove(string path)
    {
        var removed = true;
        foreach (var controller in new[] { _cpu, _cpuacct, _memory, _cpuset })
        {
            if (controller is not null)
            {
                removed &= CgroupDetector.RemoveDirectory(Path.Combine(controller, path));
            }
        }

        return removed;
    }

    public IReadOnlyList<string> Children(string path) =>
        [.. new[] { _cpu, _cpuacct, _memory, _cpuset }.OfType<string>().SelectMany(c => CgroupDetector.ChildFolders(Path.Combine(c, path)))
            .Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal)];

    public void SetSubtreeCpuShares(long shares) =>
        CgroupDetector.Write(Path.Combine(_cpu, "cpu.shares"), Math.Clamp(shares, 2, 262_144).ToString(CultureInfo.InvariantCulture));

    /// <summary>A new cpuset cgroup starts with no CPUs and no memory nodes; it takes its parent's so tasks can join.</summary>
    private static void CreateCpuset(string dir)
    {
        Directory.CreateDirectory(dir);
        var parent = Path.GetDirectoryName(dir)!;
        foreach (var file in new[] { "cpuset.cpus", "cpuset.mems" })
        {
            if (string.IsNullOrEmpty(CgroupDetector.Read(Path.Combine(dir, file))))
            {
                CgroupDetector.Write(Path.Combine(dir, file), CgroupDetector.Read(Path.Combine(parent, file)) ?? "");
            }
        }
    }

    private static void SetCpu(string dir, CgroupLimits limits)
    {
        CgroupDetector.Write(Path.Combine(dir, "cpu.cfs_period_us"), CfsPeriodMicros.ToString(CultureInfo.InvariantCulture));
        long quota = -1;
        if (limits.Cpu is { } cpu)
        {
            quota = Math.Max(MinQuotaMicros, cpu.MilliCores * CfsPeriodMicros / 1000);

            // v1 refuses a child quota above its parent's; a replica cannot use more than its node anyway.
            var parent = CgroupDetector.ReadLong(Path.Combine(Path.GetDirectoryName(dir)!, "cpu.cfs_quota_us"));
            var parentPeriod = CgroupDetector.ReadLong(Path.Combine(Path.GetDirectoryName(dir)!, "cpu.cfs_period_us")) ?? CfsPeriodMicros;
            if (parent is > 0 && parent.Value * CfsPeriodMicros / parentPeriod < quota)
            {
                quota = parent.Value * CfsPeriodMicros / parentPeriod;
            }
        }

        CgroupDetector.Write(Path.Combine(dir, "cpu.cfs_quota_us"), quota.ToString(CultureInfo.InvariantCulture));
    }

    private static void SetMemory(string dir, CgroupLimits limits)
    {
        var limit = limits.Memory?.Bytes ?? -1;
        var text = limit.ToString(CultureInfo.InvariantCulture);
        var limitFile = Path.Combine(dir, "memory.limit_in_bytes");
        var swapFile = Path.Combine(dir, "memory.memsw.limit_in_bytes");
        if (!File.Exists(swapFile))
        {
            CgroupDetector.Write(limitFile, text);
            return;
        }

        // memory+swap = memory: no swapping past the limit (as Kubernetes). The kernel wants memsw >= memory at every step.
        var currentSwap = CgroupDetector.ReadLong(swapFile) ?? long.MaxValue;
        if (limit < 0 || limit > currentSwap)
        {
            CgroupDetector.Write(swapFile, text);
            CgroupDetector.Write(limitFile, text);
        }
        else
        {
            CgroupDetector.Write(limitFile, text);
            CgroupDetector.Write(swapFile, text);
        }
    }
}
