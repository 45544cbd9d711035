using Berth.Core.Routing;
using Berth.Orchestration;
using Berth.Orchestration.Controllers;
using Berth.Orchestration.State;
using Berth.Runtime.Process;

namespace Berth.Testing.ControlPlanes;

/// <summary>A real <see cref="ControlPlane"/> running real processes: the process driver (no cgroups unless the options say so),
/// the real prober, a real SQLite store in a temporary folder and the system clock. For acceptance tests; disposing it takes
/// the app down first, so no replica outlives the test.</summary>
public sealed class ProcessPlane : IAsyncDisposable
{
    private readonly ProbeExecutor _prober;

    private ProcessPlane(string directory, StateStore store, ProbeExecutor prober, ControlPlane plane)
    {
        _prober = prober;
        Directory = directory;
        Store = store;
        Plane = plane;
    }

    public string Directory { get; }

    public StateStore Store { get; }

    public ControlPlane Plane { get; }

    /// <param name="prefix">The temporary folder's name prefix.</param>
    /// <param name="routes">Where routes go (e.g. a real mesh); none when null.</param>
    /// <param name="driver">The process driver's options for the folder; default: its state under <c>runtime/</c>, no cgroups.</param>
    public static Task<ProcessPlane> StartAsync(string prefix, IRouteSink? routes = null, Func<string, ProcessDriverOptions>? driver = null) =>
        StartInAsync(System.IO.Directory.CreateTempSubdirectory(prefix).FullName, routes, driver);

    /// <summary>As <see cref="StartAsync"/>, with the state in <paramref name="directory"/> (e.g. an app's own <c>.berth</c>, as
    /// <c>berth up</c> keeps it), which disposing deletes.</summary>
    public static async Task<ProcessPlane> StartInAsync(string directory, IRouteSink? routes = null, Func<string, ProcessDriverOptions>? driver = null)
    {
        var store = StateStore.Open(directory);
        var options = driver?.Invoke(directory) ?? new ProcessDriverOptions { StateRoot = Path.Combine(directory, "runtime"), UseCgroups = false };
        var prober = new ProbeExecutor();
        var plane = new ControlPlane(new OrchestratorOptions { StateDirectory = directory }, store, [new ProcessDriver(options)],
            routes is null ? new RoutingTable() : new RoutingTable(routes), prober);
        await plane.StartAsync(CancellationToken.None);
        return new ProcessPlane(directory, store, prober, plane);
    }

    public async ValueTask DisposeAsync()
    {
        using (var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60)))
        {
            await Plane.DownAsync(cts.Token);
        }

        await Plane.DisposeAsync();
        _prober.Dispose();
        Store.Dispose();
        System.IO.Directory.Delete(Directory, recursive: true);
    }
}
