using System.CommandLine;
using Berth.Cli.Commands;

namespace Berth.Cli.Shell;

/// <summary>The <c>berth</c> command tree, and running it on the arguments as typed.</summary>
internal static class BerthRoot
{
    public static RootCommand Create()
    {
        var root = new RootCommand("Berth runs a multi-service application with a real orchestrator and service mesh on one machine, and on Kubernetes.")
        {
            GlobalOptions.Project,
        };
        foreach (var command in SpecCommands.Create()
            .Concat(ControlPlaneCommands.Create())
            .Concat(ServiceCommands.Create())
            .Concat(ExecCommands.Create())
            .Concat(RolloutCommands.Create())
            .Concat(KubernetesCommands.Create())
            .Concat(PipelineCommands.Create())
            .Append(WatchCommand.Create())
            .Append(CompletionCommand.Create()))
        {
            root.Subcommands.Add(command);
        }

        return root;
    }

    /// <summary>Parses <paramref name="args"/>; a usage error is reported on stderr (with "did you mean") and exits
    /// <see cref="ExitCodes.Usage"/>, anything else runs.</summary>
    public static async Task<int> RunAsync(string[] args)
    {
        var root = Create();
        var parse = root.Parse(GlobalOptions.SeparateCommand(root, GlobalOptions.Normalize(root, args)));
        if (parse.Errors.Count > 0)
        {
            UsageErrors.Report(parse, Console.Error);
            return ExitCodes.Usage;
        }

        GlobalOptions.ProjectName = parse.GetValue(GlobalOptions.Project);
        try
        {
            return await parse.InvokeAsync(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
        }
        catch (Berth.Orchestration.State.StateStoreException e)
        {
            // A fault of .berth/state.db (read-only, damaged, full disk, wrong key): what and how to fix, never a stack trace.
            Commands.ControlPlaneCommands.Error(e.Problem);
            Console.Error.WriteLine($"berth: fix: {e.Fix}");
            return ExitCodes.StateFault;
        }
        catch (OperationCanceledException)
        {
            return ExitCodes.Cancelled;
        }
#pragma warning disable CA1031 // what System.CommandLine's default handler did: print it, exit 1
        catch (Exception e)
#pragma warning restore CA1031
        {
            Console.Error.WriteLine($"Unhandled exception: {e}");
            return 1;
        }
    }
}
