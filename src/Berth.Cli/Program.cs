using System.CommandLine;
using Berth.Cli;
using Berth.Cli.Commands;

var root = new RootCommand("Berth runs a multi-service application with a real orchestrator and service mesh on one machine, and on Kubernetes.");
foreach (var command in SpecCommands.Create()
    .Concat(ControlPlaneCommands.Create())
    .Concat(RolloutCommands.Create())
    .Concat(KubernetesCommands.Create())
    .Concat(PipelineCommands.Create()))
{
    root.Subcommands.Add(command);
}

var parse = root.Parse(args);
if (parse.Errors.Count > 0)
{
    foreach (var error in parse.Errors)
    {
        Console.Error.WriteLine($"berth: {error.Message}");
    }

    Console.Error.WriteLine("Run 'berth --help' for usage.");
    return ExitCodes.Usage;
}

try
{
    return await parse.InvokeAsync(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
}
catch (Berth.Orchestration.State.StateStoreException e)
{
    // A fault of .berth/state.db (read-only, damaged, full disk, wrong key): what and how to fix, never a stack trace.
    ControlPlaneCommands.Error(e.Problem);
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
