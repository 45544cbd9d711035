namespace Berth.Runtime.Capabilities;

/// <summary>One thing Berth may or may not do on this machine as this user, decided by trying it; said plainly with the fix.</summary>
/// <param name="Name">What it is: <c>cgroups</c>, <c>network-namespaces</c>, <c>docker</c>.</param>
/// <param name="Usable">Whether the try worked.</param>
/// <param name="Detail">What Berth does here (e.g. "CPU and memory limits enforced through cgroup v1 …"), or why it cannot.</param>
/// <param name="Fix">How to make it usable; null when it is, or when nothing the user can do helps.</param>
public sealed record HostCapability(string Name, bool Usable, string Detail, string? Fix = null)
{
    public const string Cgroups = "cgroups";
    public const string NetworkNamespaces = "network-namespaces";
    public const string Docker = "docker";

    /// <summary>One line, as <c>berth up</c> prints it and <c>GET /v1/app</c> carries it.</summary>
    public string Message => Fix is null ? $"{Name}: {Detail}" : $"{Name}: {Detail}; fix: {Fix}";
}
