using System.Globalization;
using Berth.Core.Model;

namespace Berth.Runtime.Cgroups;

/// <summary>Limits for one cgroup (a node or a replica).</summary>
internal sealed record CgroupLimits(CpuQuantity? Cpu, ByteSize? Memory, string? CpuSet = null);

/// <summary>CPU time and memory of one cgroup, as the kernel counts them.</summary>
internal sealed record CgroupUsage(long CpuNanoseconds, long MemoryBytes, long? MemoryLimitBytes);

/// <summary>The kernel's cgroup interface behind one small seam: v1 controllers, a v2 subtree, or nothing.</summary>
internal interface ICgroupHierarchy
{
    bool Enforced { get; }

    /// <summary>e.g. "cgroup v1 (cpu, cpuacct, memory, cpuset) under /sys/fs/cgroup/*/berth".</summary>
    string Description { get; }

    /// <summary>Creates (or updates) the cgroup at <paramref name="path"/> below Berth's root, parents included.</summary>
    void Ensure(string path, CgroupLimits limits);

    /// <summary>The cgroup.procs files a process writes its pid to, one per controller.</summary>
    IReadOnlyList<string> ProcsFiles(string path);

    /// <summary>The file whose <c>oom_kill N</c> line counts OOM kills in the cgroup.</summary>
    string? OomFile(string path);

    CgroupUsage? Usage(string path);

    IReadOnlyList<int> Pids(string path);

    /// <summary>Removes the cgroup if it exists and is empty; false when something is still in it.</summary>
    bool Remove(string path);

    /// <summary>How much Berth's whole subtree weighs against the rest of the machine when CPUs are contended, in v1 cpu.shares units (1024 = one ordinary process).</summary>
    void SetSubtreeCpuShares(long shares);
}

/// <summary>Finds the cgroup hierarchy Berth can use here, and says plainly why none when there is none.</summary>
internal static class CgroupDetector
{
    public static ICgroupHierarchy Detect(string root, string subtree)
    {
        var reasons = new List<string>();
        if (File.Exists(Path.Combine(root, "cgroup.controllers")))
        {
            var v2 = CgroupV2.TryCreate(root, subtree, out var why);
            if (v2 is not null)
            {
                return v2;
            }

            reasons.Add(why!);
        }
        else if (Directory.Exists(Path.Combine(root, "memory")) || Directory.Exists(Path.Combine(root, "cpu")))
        {
            var v1 = CgroupV1.TryCreate(root, subtree, out var why);
            if (v1 is not null)
            {
                return v1;
            }

            reasons.Add(why!);
        }
        else
        {
            reasons.Add($"no cgroup hierarchy at {root}");
        }

        return new NoCgroups($"none: {string.Join("; ", reasons)}; replicas run without CPU and memory limits");
    }

    internal static void Write(string file, string value)
    {
        File.WriteAllText(file, value);
    }

    internal static string? Read(string file)
    {
        try
        {
            return File.ReadAllText(file).Trim();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    internal static long? ReadLong(string file) =>
        Read(file) is { } s && long.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) ? v : null;

    internal static IReadOnlyList<int> ReadPids(string file)
    {
        var text = Read(file);
        if (string.IsNullOrEmpty(text))
        {
            return [];
        }

        return [.. text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => int.Parse(l, CultureInfo.InvariantCulture))];
    }

    /// <summary>rmdir, the only way to delete a cgroup (its control files cannot be unlinked).</summary>
    internal static bool RemoveDirectory(string dir)
    {
        if (!Directory.Exists(dir))
        {
            return true;
        }

        try
        {
            Directory.Delete(dir, recursive: false);
            return true;
        }
        catch (IOException)
        {
            return false;
        }
    }

    internal static void ValidatePath(string path)
    {
        var segments = path.Split('/');
        if (segments.Length == 0 || segments.Any(s => s.Length == 0 || s is "." or ".." || !s.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-')))
        {
            throw new ArgumentException($"cgroup path '{path}' is not valid: use segments of letters, digits, '.', '_' and '-' separated by '/'", nameof(path));
        }
    }
}

/// <summary>Where limits cannot be enforced: replicas still run, and the reason is shown.</summary>
internal sealed class NoCgroups(string description) : ICgroupHierarchy
{
    public bool Enforced => false;

    public string Description => description;

    public void Ensure(string path, CgroupLimits limits)
    {
    }

    public IReadOnlyList<string> ProcsFiles(string path) => [];

    public string? OomFile(string path) => null;

    public CgroupUsage? Usage(string path) => null;

    public IReadOnlyList<int> Pids(string path) => [];

    public bool Remove(string path) => true;

    public void SetSubtreeCpuShares(long shares)
    {
    }
}
