using System.CommandLine;

namespace Berth.Cli.Commands;

/// <summary>pipeline run|list|show|logs|cancel|rerun|approve.</summary>
internal static class PipelineCommands
{
    public static IEnumerable<Command> Create() => [];
}
