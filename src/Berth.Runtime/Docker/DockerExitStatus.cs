namespace Berth.Runtime.Docker;

/// <summary>Reads the engine's exit code as Docker does: the engine reports a signal death as 128+n, but a process may
/// also exit with such a code itself (<c>exit 155</c>), so 128+n is a signal only when one is known to have been sent.</summary>
internal static class DockerExitStatus
{
    /// <summary>Highest Linux signal number (SIGRTMAX); 128+n above it is never a signal.</summary>
    private const int MaxSignal = 64;

    private const int SigKill = 9;

    /// <summary>The signal that ended the container, or null when it exited by itself or the code cannot say.</summary>
    /// <param name="exitCode">The engine's <c>State.ExitCode</c>.</param>
    /// <param name="oomKilled">The engine's <c>State.OOMKilled</c>: the kernel sent SIGKILL.</param>
    /// <param name="stoppedByDriver">The driver stopped or killed the container itself, so a 128+n code is its signal.</param>
    public static int? Signal(long exitCode, bool oomKilled, bool stoppedByDriver)
    {
        if (exitCode <= 128 || exitCode > 128 + MaxSignal)
        {
            return null;
        }

        var signal = (int)(exitCode - 128);
        return stoppedByDriver || (oomKilled && signal == SigKill) ? signal : null;
    }
}
