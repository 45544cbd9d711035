using System.CommandLine;

namespace Berth.Cli.Commands;

/// <summary>up, down, ps, logs, scale, events, restart (orchestrator).</summary>
internal static class ControlPlaneCommands
{
    public static IEnumerable<Command> Create() => [];
}
