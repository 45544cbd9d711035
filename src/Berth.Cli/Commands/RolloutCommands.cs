using System.CommandLine;

namespace Berth.Cli.Commands;

/// <summary>apply, rollout (rollouts).</summary>
internal static class RolloutCommands
{
    public static IEnumerable<Command> Create() => [];
}
