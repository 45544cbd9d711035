using System.Globalization;
using Berth.Runtime.Capabilities;

namespace Berth.Runtime.Cgroups;

/// <summary>cgroup v2: one unified tree; Berth's subtree must be delegated to us with the cpu and memory controllers.</summary>
internal sealed class CgroupV2 : ICgroupHierarchy
{
    /// <summary>100 ms, the kernel's (and Docker's) default CFS period.</summary>
    private const long PeriodMicros = 100_000;

    private const long MinQuotaMicros = 1_000;

    private readonly string _base;
    private readonly string _controllers;

    private CgroupV2(string @base, string controllers, string? delegation, int uid)
    {
        _base = @base;
        _controllers = controllers;
        Description = $"cgroup v2 at {@base} ({controllers.Replace("+", "", StringComparison.Ordinal)})"
            + (delegation is null ? "" : $", delegated by systemd to {HostUser.Describe(uid)} ({delegation})");
    }

    public bool Enforced => true;

    public string Description { get; }

    public string? Fix => null;

    /// <summary>Uses <paramref name="dir"/> (the mount as root, a given subtree, or the subtree systemd delegated — then
    /// <paramref name="delegation"/> says how it was found) if it offers cpu and memory and a probe group works in it.</summary>
    public static CgroupV2? TryCreate(CgroupSetting setting, string dir, string? delegation, out string? reason, out string? fix)
    {
        reason = null;
        fix = null;
        var available = (CgroupDetector.Read(Path.Combine(dir, "cgroup.controllers")) ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (!available.Contains("cpu") || !available.Contains("memory"))
        {
            reason = $"cgroup v2 at {dir} does not delegate the cpu and memory controllers (it has: {(available.Length == 0 ? "none" : string.Join(", ", available))})";
            fix = delegation is not null ? DelegatedSubtree.DelegateControllersFix : CgroupDetector.GeneralFix;
            return null;
        }

        var controllers = available.Contains("cpuset") ? "+cpu +memory +cpuset" : "+cpu +memory";
        var @base = Path.Combine(dir, setting.Subtree);
        try
        {
            if (delegation is not null)
            {
                Vacate(dir);
            }

            CgroupDetector.Write(Path.Combine(dir, "cgroup.subtree_control"), controllers);
            Directory.CreateDirectory(@base);
            CgroupDetector.Write(Path.Combine(@base, "cgroup.subtree_control"), controllers);
            Probe(@base);
            return new CgroupV2(@base, controllers, delegation, setting.Uid);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            reason = $"cgroup v2 at {dir} is not usable by {HostUser.Describe(setting.Uid)} ({CgroupDetector.Why(e, setting.Uid)})";
            fix = setting.Uid == 0 ? "point BERTH_CGROUP_ROOT at a cgroup v2 subtree Berth may manage"
                : delegation is not null ? DelegatedSubtree.StartInScopeFix : CgroupDetector.GeneralFix;
            return null;
        }
    }

    /// <summary>Moves every process of the delegated group (the control plane, and whatever shares its scope) into a leaf,
    /// so controllers can be enabled for the group's children, as Podman moves itself before it makes containers.</summary>
    private static void Vacate(string dir)
    {
        var leaf = Path.Combine(dir, DelegatedSubtree.ControlPlaneLeaf);
        Directory.CreateDirectory(leaf);
        foreach (var pid in CgroupDetector.ReadPids(Path.Combine(dir, "cgroup.procs")))
        {
            try
            {
                File.AppendAllText(Path.Combine(leaf, "cgroup.procs"), pid.ToString(CultureInfo.InvariantCulture) + "\n");
            }
            catch (IOException) when (!Directory.Exists($"/proc/{pid}"))
            {
                // It ended meanwhile.
            }
        }
    }

    /// <summary>Creates a group, writes a CPU and a memory limit, moves a process in and removes it all again.</summary>
    private static void Probe(string @base)
    {
        var probe = Path.Combine(@base, $".probe-{Environment.ProcessId}");
        Directory.CreateDirectory(probe);
        try
        {
            CgroupDetector.Write(Path.Combine(probe, "cpu.max"), $"{PeriodMicros} {PeriodMicros}");
            CgroupDetector.Write(Path.Combine(probe, "memory.max"), (64L << 20).ToString(CultureInfo.InvariantCulture));
            CgroupDetector.ProveJoin([Path.Combine(probe, "cgroup.procs")]);
        }
        finally
        {
            CgroupDetector.RemoveProbe(probe);
        }
    }

    public void Ensure(string path, CgroupLimits limits)
    {
        CgroupDetector.ValidatePath(path);
        var dir = _base;
        var segments = path.Split('/');
        for (var i = 0; i < segments.Length; i++)
        {
            dir = Path.Combine(dir, segments[i]);
            Directory.CreateDirectory(dir);
            if (i < segments.Length - 1)
            {
                CgroupDetector.Write(Path.Combine(dir, "cgroup.subtree_control"), _controllers);
            }
        }

        var quota = limits.Cpu is { } cpu ? Math.Max(MinQuotaMicros, cpu.MilliCores * PeriodMicros / 1000).ToString(CultureInfo.InvariantCulture) : "max";
        CgroupDetector.Write(Path.Combine(dir, "cpu.max"), $"{quota} {PeriodMicros}");
        CgroupDetector.Write(Path.Combine(dir, "memory.max"), limits.Memory?.Bytes.ToString(CultureInfo.InvariantCulture) ?? "max");
        if (File.Exists(Path.Combine(dir, "memory.swap.max")))
        {
            CgroupDetector.Write(Path.Combine(dir, "memory.swap.max"), limits.Memory is null ? "max" : "0");
        }

        if (limits.CpuSet is not null && File.Exists(Path.Combine(dir, "cpuset.cpus")))
        {
            CgroupDetector.Write(Path.Combine(dir, "cpuset.cpus"), limits.CpuSet);
        }
    }

    public IReadOnlyList<string> ProcsFiles(string path) => [Path.Combine(_base, path, "cgroup.procs")];

    public string? OomFile(string path) => Path.Combine(_base, path, "memory.events");

    public CgroupUsage? Usage(string path)
    {
        var dir = Path.Combine(_base, path);
        var memory = CgroupDetector.ReadLong(Path.Combine(dir, "memory.current"));
        var stat = CgroupDetector.Read(Path.Combine(dir, "cpu.stat"));
        if (memory is null || stat is null)
        {
            return null;
        }

        long usec = 0;
        foreach (var line in stat.Split('\n'))
        {
            if (line.StartsWith("usage_usec ", StringComparison.Ordinal))
            {
                usec = long.Parse(line.AsSpan("usage_usec ".Length), CultureInfo.InvariantCulture);
            }
        }

        return new CgroupUsage(usec * 1000, memory.Value, CgroupDetector.ReadLong(Path.Combine(dir, "memory.max")));
    }

    public IReadOnlyList<int> Pids(string path) => CgroupDetector.ReadPids(Path.Combine(_base, path, "cgroup.procs"));

    public bool Remove(string path) => CgroupDetector.RemoveDirectory(Path.Combine(_base, path));

    public IReadOnlyList<string> Children(string path) => [.. CgroupDetector.ChildFolders(Path.Combine(_base, path)).Order(StringComparer.Ordinal)];

    /// <summary>cpu.weight (1..10000, default 100) from shares (2..262144, default 1024), the mapping systemd and runc use.</summary>
    public void SetSubtreeCpuShares(long shares)
    {
        var clamped = Math.Clamp(shares, 2, 262_144);
        CgroupDetector.Write(Path.Combine(_base, "cpu.weight"), (1 + ((clamped - 2) * 9999 / 262_142)).ToString(CultureInfo.InvariantCulture));
    }
}
