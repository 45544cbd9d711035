namespace Berth.Rollouts.Tests.Acceptance;

/// <summary>The fixture of the acceptance tests: a real mesh on loopback, and a control plane over real processes
/// (<see cref="ProcessPlane"/>) whose routes go to it, through the sink a test puts in front of it to watch them; both
/// taken down on dispose, the control plane first.</summary>
internal sealed class MeshedPlane : IAsyncDisposable
{
    private readonly MeshHost _mesh = new(new MeshHostOptions());

    private ProcessPlane _processes = null!;

    /// <summary>The control plane.</summary>
    public ControlPlane Plane => _processes.Plane;

    /// <summary>The control plane's state store.</summary>
    public StateStore Store => _processes.Store;

    /// <param name="prefix">The temporary state folder's name prefix.</param>
    /// <param name="sink">Wraps the mesh as the control plane's route sink; the mesh itself when null.</param>
    public static async Task<MeshedPlane> StartAsync(string prefix, Func<MeshHost, IRouteSink>? sink = null)
    {
        var fixture = new MeshedPlane();
        await fixture._mesh.StartAsync(CancellationToken.None);
        fixture._processes = await ProcessPlane.StartAsync(prefix, sink?.Invoke(fixture._mesh) ?? fixture._mesh);
        return fixture;
    }

    public async ValueTask DisposeAsync()
    {
        await _processes.DisposeAsync();
        await _mesh.DisposeAsync();
    }
}
