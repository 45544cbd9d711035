using System.CommandLine;

namespace Berth.Cli.Commands;

/// <summary>validate, config, version (foundation).</summary>
internal static class SpecCommands
{
    public static IEnumerable<Command> Create() => [];
}
