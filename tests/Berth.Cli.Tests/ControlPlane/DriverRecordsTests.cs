using Berth.Cli.ControlPlane;
using Berth.Orchestration.State;
using Berth.Runtime;
using Berth.Runtime.Docker;
using Berth.Runtime.Tests.Docker;

namespace Berth.Cli.Tests.ControlPlane;

/// <summary>Issue #14 §6 on the path <c>berth down</c> and <c>berth ps</c> take without a control plane: the drivers' own
/// records of one app never include a same-named app's containers from another folder.</summary>
public sealed class DriverRecordsTests : IDisposable
{
    private readonly string _mine = Directory.CreateTempSubdirectory("berth-records-a-").FullName;
    private readonly string _theirs = Directory.CreateTempSubdirectory("berth-records-b-").FullName;
    private readonly string _app = "twin" + Guid.NewGuid().ToString("N")[..6];

    public void Dispose()
    {
        Directory.Delete(_mine, recursive: true);
        Directory.Delete(_theirs, recursive: true);
    }

    private async Task<ReplicaHandle> StartAsync(string stateDirectory, string replica)
    {
        using var driver = await DockerDriver.ConnectAsync(new DockerDriverOptions { AppId = AppIdentity.LoadOrCreate(stateDirectory) }, CancellationToken.None);
        await TestImages.EnsureAsync(driver);
        return await driver.StartAsync(new ReplicaSpec
        {
            App = _app, Service = "box", ReplicaId = replica, Image = TestImages.Base, Command = ["sleep", "300"],
            StateDirectory = Path.Combine(stateDirectory, "replicas", replica),
        }, CancellationToken.None);
    }

    [DockerFact]
    public async Task StopAllAsync_SameNamedAppInAnotherFolder_OnlyThisAppsContainerStopped()
    {
        var mine = await StartAsync(_mine, "box-aaaaa");
        var theirs = await StartAsync(_theirs, "box-bbbbb");
        try
        {
            using var records = await DriverRecords.OpenAsync(_mine, docker: true, CancellationToken.None);
            Assert.Equal([mine.ContainerId], (await records.ListAsync([_app], CancellationToken.None)).Select(r => r.Handle.ContainerId));

            var (stopped, left) = await records.StopAllAsync([_app], TimeSpan.Zero, CancellationToken.None);

            Assert.Equal((1, 0), (stopped, left.Count));
            using var other = await DockerDriver.ConnectAsync(new DockerDriverOptions { AppId = AppIdentity.LoadOrCreate(_theirs) }, CancellationToken.None);
            Assert.Equal(ReplicaState.Running, (await other.InspectAsync(theirs, CancellationToken.None)).State);
        }
        finally
        {
            using var cleanup = await DockerDriver.ConnectAsync(new DockerDriverOptions(), CancellationToken.None);
            foreach (var h in await cleanup.ListAsync(_app, CancellationToken.None))
            {
                await cleanup.StopAsync(h, TimeSpan.Zero, CancellationToken.None);
                await cleanup.RemoveAsync(h, CancellationToken.None);
            }
        }
    }
}
