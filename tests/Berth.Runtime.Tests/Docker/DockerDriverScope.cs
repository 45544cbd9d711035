namespace Berth.Runtime.Tests.Docker;

/// <summary>A Docker driver for one test class instance: its replicas belong to a fresh app name and keep their state in a
/// fresh folder; on dispose every container and volume of that app goes, with the folder.</summary>
public sealed class DockerDriverScope : IAsyncLifetime
{
    public string App { get; } = "t" + Guid.NewGuid().ToString("N")[..10];

    public string State { get; } = Directory.CreateTempSubdirectory("berth-docker-tests-").FullName;

    public DockerDriver Driver { get; private set; } = null!;

    public async Task InitializeAsync() =>
        Driver = await DockerDriver.ConnectAsync(new DockerDriverOptions { RequestTimeout = TimeSpan.FromSeconds(60) }, CancellationToken.None);

    public async Task DisposeAsync()
    {
        if (Driver.Capabilities.Available)
        {
            await RemoveContainersAsync();
            await Driver.RemoveVolumesAsync(App, CancellationToken.None);
        }

        Driver.Dispose();
        Directory.Delete(State, recursive: true);
    }

    /// <summary>Stops (at once) and removes every container of <see cref="App"/>.</summary>
    public async Task RemoveContainersAsync()
    {
        foreach (var handle in await Driver.ListAsync(App, CancellationToken.None))
        {
            await Driver.StopAsync(handle, TimeSpan.Zero, CancellationToken.None);
            await Driver.RemoveAsync(handle, CancellationToken.None);
        }
    }

    /// <summary>A replica of service <c>svc</c> running <paramref name="command"/> in the test image.</summary>
    public ReplicaSpec Spec(string replicaId, params string[] command) => new()
    {
        App = App,
        Service = "svc",
        ReplicaId = replicaId,
        Image = TestImages.App,
        Command = [.. command],
        StateDirectory = Path.Combine(State, replicaId),
    };

    /// <summary>Starts <paramref name="spec"/>, building the test image first when the engine does not have it.</summary>
    public async Task<ReplicaHandle> StartAsync(ReplicaSpec spec)
    {
        await TestImages.EnsureAsync(Driver);
        return await Driver.StartAsync(spec, CancellationToken.None);
    }
}
