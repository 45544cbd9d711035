namespace Berth.Kubernetes.Tests.Generation;

/// <summary>Runs one of SchemaValidator/'s node scripts (validate.mjs, render-chart.mjs) with a two-minute deadline.</summary>
internal static class SchemaValidatorScript
{
    public static Task<(int Exit, string Stdout, string Stderr)> RunAsync(string script, params IEnumerable<string> args)
    {
        var start = new ProcessStartInfo("node") { WorkingDirectory = Environments.NodeValidatorDirectory };
        start.ArgumentList.Add(Path.Combine(Environments.NodeValidatorDirectory, script));
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        return ChildProcess.RunAsync(start, TimeSpan.FromMinutes(2), $"node {script}");
    }
}
