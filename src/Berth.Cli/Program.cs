using System.CommandLine;
using Berth.Cli;
using Berth.Cli.Commands;

if (args is [Berth.Mesh.DataPlane.DataPlaneServer.Command, .. var rest])
{
    // The data plane process: straight to its main, without building the command tree (it starts on every restart).
    return await Berth.Cli.ControlPlane.DataPlaneProcess.RunAsync(rest);
}

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

return await parse.InvokeAsync();
