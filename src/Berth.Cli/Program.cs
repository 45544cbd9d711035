using Berth.Cli.ControlPlane;
using Berth.Cli.Shell;

StartupTrace.Mark("main");
return await BerthRoot.RunAsync(args);
