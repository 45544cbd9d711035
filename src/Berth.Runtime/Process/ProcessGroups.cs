namespace Berth.Runtime.Process;

/// <summary>Signals a whole process group (a command started through setsid leads its own), for callers outside the driver
/// that start such groups: <c>berth up</c>'s and <c>berth watch</c>'s builds.</summary>
public static class ProcessGroups
{
    private const int SigKill = 9;

    /// <summary>SIGKILLs every process in the group led by <paramref name="leader"/>; false when none is left.</summary>
    public static bool Kill(int leader) => ProcFs.Signal(-leader, SigKill);
}
