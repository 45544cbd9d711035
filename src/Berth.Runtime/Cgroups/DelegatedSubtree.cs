using Berth.Runtime.Capabilities;

namespace Berth.Runtime.Cgroups;

/// <summary>Finds the cgroup v2 subtree systemd delegated to this user, as rootless Podman does: the process's own group
/// from <c>/proc/self/cgroup</c> (<c>0::/user.slice/user-1000.slice/user@1000.service/app.slice/run-r1.scope</c>),
/// which is the user's when it lies under <c>user@UID.service</c> (the user's own systemd made it, e.g. with
/// <c>systemd-run --user --scope</c>).</summary>
internal static class DelegatedSubtree
{
    /// <summary>The fix when the process is outside any delegated subtree.</summary>
    public const string StartInScopeFix = "start berth in a scope systemd delegates to you: systemd-run --user --scope -p Delegate=yes berth up";

    /// <summary>The fix when the delegated subtree lacks the cpu or memory controller (systemd delegates only pids and memory to users unless told).</summary>
    public const string DelegateControllersFix =
        "have systemd delegate them to users: a drop-in /etc/systemd/system/user@.service.d/delegate.conf with [Service] Delegate=cpu cpuset io memory pids, then systemctl daemon-reload and log in again";

    /// <summary>The leaf the control plane (and whatever else ran in the delegated group) moves to: cgroup v2 enables
    /// controllers for a group's children only while the group itself holds no process.</summary>
    public const string ControlPlaneLeaf = "berth-control-plane";

    public readonly record struct Found(string Directory, string How);

    public static Found? Find(CgroupSetting setting, out string? reason)
    {
        reason = null;
        var own = setting.ProcSelfCgroup.Split('\n').FirstOrDefault(l => l.StartsWith("0::", StringComparison.Ordinal))?["0::".Length..].Trim();
        if (string.IsNullOrEmpty(own))
        {
            reason = $"cgroup v2 at {setting.Root}: this process is in no cgroup v2 group (/proc/self/cgroup has no 0:: line)";
            return null;
        }

        var user = $"user@{setting.Uid}.service";
        var segments = own.Trim('/').Split('/', StringSplitOptions.RemoveEmptyEntries);
        var at = Array.IndexOf(segments, user);
        if (at < 0)
        {
            reason = $"cgroup v2: berth runs in the group {own}, which systemd has not delegated to {HostUser.Describe(setting.Uid)} (it is not under {user})";
            return null;
        }

        var last = segments[^1];
        var how = at == segments.Length - 1 ? user
            : last.EndsWith(".scope", StringComparison.Ordinal) ? $"the scope {last} under {user}"
            : $"{last} under {user}";
        return new Found(Path.Combine([setting.Root, .. segments]), how);
    }
}
