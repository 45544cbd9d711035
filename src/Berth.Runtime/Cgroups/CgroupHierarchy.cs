using System.Globalization;
using Berth.Core.Model;
using Berth.Runtime.Capabilities;

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

    /// <summary>How to make limits enforceable here, when they are not; null when they are.</summary>
    string? Fix { get; }

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

    /// <summary>The names of the cgroups directly below <paramref name="path"/> (in any controller), for a sweep by folder.</summary>
    IReadOnlyList<string> Children(string path);

    /// <summary>How much Berth's whole subtree weighs against the rest of the machine when CPUs are contended, in v1 cpu.shares units (1024 = one ordinary process).</summary>
    void SetSubtreeCpuShares(long shares);
}

/// <summary>Where, and as whom, Berth looks for cgroups: the machine's own by default, a fake tree in tests.</summary>
/// <param name="Root">Where the hierarchies are mounted (<c>/sys/fs/cgroup</c>), or a delegated v2 subtree given by the user.</param>
/// <param name="Subtree">Berth's folder in each hierarchy (<c>berth</c>).</param>
/// <param name="RootGiven">The user pointed <paramref name="Root"/> at a subtree (BERTH_CGROUP_ROOT): use it as is, look for no delegation.</param>
/// <param name="Uid">The effective uid permissions are checked against.</param>
/// <param name="ProcSelfCgroup">The text of <c>/proc/self/cgroup</c>: where this process sits, to find what systemd delegated to it.</param>
internal sealed record CgroupSetting(string Root, string Subtree, bool RootGiven, int Uid, string ProcSelfCgroup)
{
    /// <summary>This process on this machine.</summary>
    public static CgroupSetting ForThisProcess(string root, string subtree, bool rootGiven) =>
        new(root, subtree, rootGiven, HostUser.Uid, CgroupDetector.Read("/proc/self/cgroup") ?? "");
}

/// <summary>Finds the cgroup hierarchy Berth can use here, as this user, by trying it (create a group, write its limits,
/// move a process in, remove it), and says plainly why none when there is none, with the fix.</summary>
internal static class CgroupDetector
{
    /// <summary>What to do where nothing better can be said: the general fix of the process driver without cgroups.</summary>
    public const string GeneralFix = "run the control plane as root, or point BERTH_CGROUP_ROOT at a delegated cgroup v2 subtree";

    /// <summary>For tests over a folder laid out like the kernel's: the folder is used as given.</summary>
    public static ICgroupHierarchy Detect(string root, string subtree) => Detect(new CgroupSetting(root, subtree, RootGiven: true, HostUser.Uid, ""));

    public static ICgroupHierarchy Detect(CgroupSetting setting)
    {
        var root = setting.Root;
        if (File.Exists(Path.Combine(root, "cgroup.controllers")))
        {
            return DetectV2(setting);
        }

        if (Directory.Exists(Path.Combine(root, "memory")) || Directory.Exists(Path.Combine(root, "cpu")))
        {
            return (ICgroupHierarchy?)CgroupV1.TryCreate(setting, out var why, out var fix) ?? None(why!, fix);
        }

        return None($"no cgroup hierarchy at {root}", GeneralFix);
    }

    private static ICgroupHierarchy DetectV2(CgroupSetting setting)
    {
        if (setting.RootGiven || setting.Uid == 0)
        {
            return (ICgroupHierarchy?)CgroupV2.TryCreate(setting, setting.Root, delegation: null, out var why, out var fix) ?? None(why!, fix);
        }

        // A normal user on cgroup v2: only the subtree systemd delegated to this user can be written (as rootless Podman).
        var found = DelegatedSubtree.Find(setting, out var reason);
        if (found is null)
        {
            return None(reason!, DelegatedSubtree.StartInScopeFix);
        }

        return (ICgroupHierarchy?)CgroupV2.TryCreate(setting, found.Value.Directory, found.Value.How, out var why2, out var fix2) ?? None(why2!, fix2);
    }

    private static NoCgroups None(string reason, string? fix) =>
        new($"none: {reason}; replicas run without CPU and memory limits", fix);

    /// <summary>Says why a write failed in the user's terms: a permission, or the kernel's refusal.</summary>
    internal static string Why(Exception e, int uid) => e switch
    {
        UnauthorizedAccessException => $"{HostUser.Describe(uid)} may not write there: {e.Message.TrimEnd('.')}",
        _ => e.Message.TrimEnd('.'),
    };

    /// <summary>Proves a probe group takes processes: a short-lived child is moved in through every
    /// <paramref name="procsFiles"/>, then ended. Throws what the kernel said when the move is refused.</summary>
    internal static void ProveJoin(IReadOnlyList<string> procsFiles)
    {
        System.Diagnostics.Process? child = null;
        try
        {
            var start = new System.Diagnostics.ProcessStartInfo("sleep") { UseShellExecute = false, RedirectStandardInput = true };
            start.ArgumentList.Add("60");
            child = System.Diagnostics.Process.Start(start);
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return; // no sleep(1) to move: creating and writing the group was all that could be tried
        }

        using (child)
        {
            try
            {
                foreach (var procs in procsFiles)
                {
                    File.AppendAllText(procs, child!.Id.ToString(CultureInfo.InvariantCulture) + "\n");
                }
            }
            finally
            {
                child!.Kill();
                child.WaitForExit();
            }
        }
    }

    /// <summary>Removes a probe group: rmdir on the kernel's tree (its control files go with it); on a fake tree the files
    /// written into it are deleted first. A group whose process has just ended may be busy for a moment.</summary>
    internal static void RemoveProbe(string dir)
    {
        for (var attempt = 0; Directory.Exists(dir); attempt++)
        {
            try
            {
                Directory.Delete(dir, recursive: false);
                return;
            }
            catch (IOException) when (attempt < 100)
            {
                foreach (var file in Directory.EnumerateFiles(dir))
                {
                    try
                    {
                        File.Delete(file); // the kernel refuses this for control files; a fake tree allows it
                    }
                    catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                    {
                    }
                }

                Thread.Sleep(10);
            }
        }
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

    /// <summary>rmdir, the only way to delete a cgroup (its control files cannot be unlinked). A leaf that refuses it is
    /// busy on the kernel's tree (a task in it, or one just reaped), or, on a fake tree laid out like the kernel's (tests,
    /// a BERTH_CGROUP_ROOT folder), kept by the files written into it: those are deleted and rmdir tried once more (the
    /// kernel refuses to unlink its control files, so on the real tree this changes nothing).</summary>
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
        catch (IOException) when (!Directory.EnumerateDirectories(dir).Any() && !ReadPids(Path.Combine(dir, "cgroup.procs")).Any(p => Directory.Exists($"/proc/{p}")))
        {
            foreach (var file in Directory.EnumerateFiles(dir))
            {
                try
                {
                    File.Delete(file);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    // A control file of the kernel's tree.
                }
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
        catch (IOException)
        {
            return false;
        }
    }

    /// <summary>The names of the folders directly below <paramref name="dir"/>, none when it does not exist.</summary>
    internal static IEnumerable<string> ChildFolders(string dir) =>
        Directory.Exists(dir) ? Directory.EnumerateDirectories(dir).Select(Path.GetFileName).OfType<string>() : [];

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
internal sealed class NoCgroups(string description, string? fix = null) : ICgroupHierarchy
{
    public bool Enforced => false;

    public string Description => description;

    public string? Fix => fix;

    public void Ensure(string path, CgroupLimits limits)
    {
    }

    public IReadOnlyList<string> ProcsFiles(string path) => [];

    public string? OomFile(string path) => null;

    public CgroupUsage? Usage(string path) => null;

    public IReadOnlyList<int> Pids(string path) => [];

    public bool Remove(string path) => true;

    public IReadOnlyList<string> Children(string path) => [];

    public void SetSubtreeCpuShares(long shares)
    {
    }
}
