using System.Runtime.InteropServices;

namespace Berth.Runtime.Capabilities;

/// <summary>The user Berth runs as: capabilities are decided per user, so root and a normal user get different answers.</summary>
public static partial class HostUser
{
    /// <summary>The effective uid (what the kernel checks permissions against).</summary>
    public static int Uid { get; } = (int)GetEuid();

    public static bool IsRoot => Uid == 0;

    /// <summary>The effective gid.</summary>
    public static int Gid { get; } = (int)GetEgid();

    /// <summary>"root" or "uid 1000", for messages.</summary>
    public static string Describe(int uid) => uid == 0 ? "root" : $"uid {uid}";

    [LibraryImport("libc", EntryPoint = "geteuid")]
    private static partial uint GetEuid();

    [LibraryImport("libc", EntryPoint = "getegid")]
    private static partial uint GetEgid();
}
