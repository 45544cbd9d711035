using Berth.Cli.ControlPlane;
using Berth.Cli.Shell;
using Berth.Core.Diagnostics;

if (args is [Berth.Mesh.DataPlane.DataPlaneServer.Command, .. var rest])
{
    // The data plane process: straight to its main, without building the command tree (it starts on every restart).
    return await DataPlaneProcess.RunAsync(rest);
}

StartupTrace.Mark("main");

return await BerthRoot.RunAsync(args);
