using System.CommandLine;

namespace Berth.Cli.Commands;

/// <summary>k8s generate|apply|delete.</summary>
internal static class KubernetesCommands
{
    public static IEnumerable<Command> Create() => [];
}
