using System.Diagnostics;

namespace Berth.Runtime.Capabilities;

/// <summary>Whether this user can make network namespaces, decided by making one: <c>unshare --net</c> as root,
/// <c>unshare --user --map-root-user --net</c> as a normal user (a user namespace that owns the network namespace, as
/// rootless Podman's). The namespace goes when its one process ends. Pods (one loopback per replica) need this.</summary>
public static class NetworkNamespaceProbe
{
    /// <summary>How long the probe may take: 10 s (unshare itself takes milliseconds).</summary>
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    /// <param name="uid">Whose namespaces to try (the effective uid of this process).</param>
    /// <param name="unshare">The util-linux <c>unshare</c> to run.</param>
    /// <param name="procSys">Where the kernel's sysctls are read, to name the one that forbids it.</param>
    public static HostCapability Run(int uid, string unshare = "unshare", string procSys = "/proc/sys")
    {
        string[] how = uid == 0 ? ["--net"] : ["--user", "--map-root-user", "--net"];
        var command = $"unshare {string.Join(' ', how)}";
        var own = new FileInfo("/proc/self/ns/net").LinkTarget;
        var info = new ProcessStartInfo(unshare) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in how)
        {
            info.ArgumentList.Add(a);
        }

        info.ArgumentList.Add("readlink");
        info.ArgumentList.Add("/proc/self/ns/net");
        string stdout, stderr;
        int code;
        try
        {
            using var process = System.Diagnostics.Process.Start(info)!;
            var outText = process.StandardOutput.ReadToEndAsync();
            var errText = process.StandardError.ReadToEndAsync();
            if (!process.WaitForExit(Timeout))
            {
                process.Kill();
                return Unusable($"{command} did not finish within {Timeout.TotalSeconds:0}s", null);
            }

            (stdout, stderr, code) = (outText.Result.Trim(), errText.Result.Trim(), process.ExitCode);
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return Unusable($"{unshare} (util-linux) is not installed, so it could not be tried", "install util-linux");
        }

        if (code == 0 && stdout.StartsWith("net:[", StringComparison.Ordinal) && stdout != own)
        {
            return new HostCapability(HostCapability.NetworkNamespaces, true,
                $"usable: {HostUser.Describe(uid)} made {(uid == 0 ? "a network namespace" : "a user namespace with its own network namespace")} ({command}); " +
                (uid == 0
                    ? "isolated services run in pods (Docker services by default, process services with network: isolated)"
                    : "process services with network: isolated run in pods; Docker services share the host network (the mesh cannot enter a container's namespace without root)"));
        }

        var said = stderr.Length > 0 ? stderr.Split('\n')[^1] : $"exit code {code}";
        return Unusable($"{command} failed for {HostUser.Describe(uid)}: {said}", Fix(procSys));
    }

    private static HostCapability Unusable(string why, string? fix) =>
        new(HostCapability.NetworkNamespaces, false, $"not usable: {why}; replicas share the host network, isolated services included", fix);

    /// <summary>The switch that forbids unprivileged user namespaces, where one is set.</summary>
    private static string? Fix(string procSys)
    {
        string? Read(string name)
        {
            try
            {
                return File.ReadAllText(Path.Combine(procSys, name)).Trim();
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                return null;
            }
        }

        if (Read("user/max_user_namespaces") == "0")
        {
            return "allow user namespaces: sysctl -w user.max_user_namespaces=15000";
        }

        if (Read("kernel/apparmor_restrict_unprivileged_userns") == "1")
        {
            return "Ubuntu's AppArmor forbids unprivileged user namespaces: sysctl -w kernel.apparmor_restrict_unprivileged_userns=0, or give berth an AppArmor profile with 'userns,'";
        }

        if (Read("kernel/unprivileged_userns_clone") == "0")
        {
            return "allow unprivileged user namespaces: sysctl -w kernel.unprivileged_userns_clone=1";
        }

        return "run berth as root, or allow unprivileged user namespaces in the kernel";
    }
}
