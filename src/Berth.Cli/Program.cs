using Berth.Cli.Shell;

return await BerthRoot.RunAsync(args);
