namespace Berth.Runtime.Process;

/// <summary>
/// The userspace network a process pod gets when its service asks for <c>egress: true</c>: slirp4netns (Debian package
/// slirp4netns; Podman's rootless network before pasta), started by the replica's supervisor from the host's namespace
/// with the pod as its target. It makes a tap device in the pod (no bridge, no veth, nothing on the host's side but its
/// own sockets), gives it 10.0.2.100/24 and a default route via 10.0.2.2, and refuses the pod the host's loopback
/// (<c>--disable-host-loopback</c>: the host's loopback services are reached through host-gateway and the mesh instead).
/// pasta (package passt) is not used: the Debian 12 build (2023-03-09) run as root cannot open a namespace another
/// process made ("Couldn't open user namespace /proc/PID/ns/user: Permission denied", with or without --runas 0).
/// </summary>
public static class PodEgress
{
    /// <summary>The helper's program name, looked up on PATH.</summary>
    public const string Program = "slirp4netns";

    /// <summary>The full path of slirp4netns on PATH, or null when it is not installed.</summary>
    public static string? Find()
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "/usr/local/bin:/usr/bin:/bin").Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            var path = Path.Combine(dir, Program);
            if (File.Exists(path))
            {
                return path;
            }
        }

        return null;
    }
}
