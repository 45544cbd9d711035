namespace Berth.Core.Diagnostics;

/// <summary>With <c>BERTH_TRACE_STARTUP=1</c>, prints one line per start-up milestone to stderr (the detached control plane's
/// log): wall-clock milliseconds since the Unix epoch, so the CLI's, the control plane's and the engine's own timestamps
/// (<c>docker events</c>) line up. bench/startup/profile.sh reads these lines for the breakdown in docs/architecture.md.</summary>
public static class StartupTrace
{
    /// <summary>The variable that turns the trace on.</summary>
    public const string Variable = "BERTH_TRACE_STARTUP";

    private static readonly bool Enabled = Environment.GetEnvironmentVariable(Variable) == "1";

    /// <summary>Whether tracing is on (to skip building a mark's text).</summary>
    public static bool On => Enabled;

    /// <summary>Prints <c>startup-trace {epoch ms} {pid} {what}</c> when tracing is on.</summary>
    public static void Mark(string what)
    {
        if (Enabled)
        {
            Console.Error.WriteLine($"startup-trace {TimeProvider.System.GetUtcNow().ToUnixTimeMilliseconds()} {Environment.ProcessId} {what}");
        }
    }
}
