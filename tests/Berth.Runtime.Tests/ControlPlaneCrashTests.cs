using ProcFs = Berth.Runtime.Process.ProcFs;

namespace Berth.Runtime.Tests;

/// <summary>
/// The control plane (a separate process running the real drivers) is SIGKILLed while replicas run; a new one adopts
/// them all without restarting any, their logs go on, and their later exits are known with their exit codes.
/// </summary>
public sealed class ControlPlaneCrashTests
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(90);

    [DockerFact]
    public Task ControlPlaneKilled_ThreeProcessesAndThreeContainers_AllAdoptedNoneRestarted() => RunAsync(processes: 3, containers: 3);

    [Fact]
    public Task ControlPlaneKilled_ThreeProcesses_AllAdoptedNoneRestarted() => RunAsync(processes: 3, containers: 0);

    private static async Task RunAsync(int processes, int containers)
    {
        var root = Path.Combine(Path.GetTempPath(), "berth-runtime-tests", "crash-" + Guid.NewGuid().ToString("N")[..8]);
        var signals = Directory.CreateDirectory(Path.Combine(root, "signals")).FullName;
        var app = "crash" + Guid.NewGuid().ToString("N")[..8];
        DockerDriver? docker = null;
        if (containers > 0)
        {
            docker = await DockerDriver.ConnectAsync(new DockerDriverOptions { RequestTimeout = TimeSpan.FromSeconds(60) }, CancellationToken.None);
            await TestImages.EnsureAsync(docker);
        }

        var processDriver = new ProcessDriver(new ProcessDriverOptions { StateRoot = Path.Combine(root, "runtime") });
        try
        {
            // 1. A control plane starts the replicas, then dies by SIGKILL.
            var started = await RunControlPlaneUntilKilledAsync(root, app, signals, processes, containers);
            var killedAt = DateTimeOffset.UtcNow;
            Assert.Equal(processes + containers, started.Count);

            // 2. A new control plane (new driver instances on the same state) finds all of them, still running.
            var adopted = (await processDriver.ListAsync(app, CancellationToken.None))
                .Concat(docker is null ? [] : await docker.ListAsync(app, CancellationToken.None))
                .ToList();
            Assert.Equal(started.Select(h => h.ReplicaId).Order(), adopted.Select(h => h.ReplicaId).Order());
            foreach (var handle in adopted)
            {
                var driver = Driver(handle);
                var original = started.Single(h => h.ReplicaId == handle.ReplicaId);
                var status = await driver.InspectAsync(handle, CancellationToken.None);
                Assert.True(status.State == ReplicaState.Running, $"{handle.ReplicaId} runs after the crash: {status}");
                if (handle.Kind == RuntimeKind.Process)
                {
                    Assert.Equal(original.Pid, status.Pid);
                    Assert.Equal(original.ProcessStartTicks, ProcFs.ReadStat(status.Pid!.Value)!.Value.StartTicks);
                }
                else
                {
                    Assert.Equal(original.ContainerId, handle.ContainerId);
                }

                Assert.True(status.StartedAt < killedAt, $"{handle.ReplicaId} started at {status.StartedAt:O}, before the crash at {killedAt:O}: not restarted");
            }

            // 3. Their logs go on after the crash.
            foreach (var handle in adopted)
            {
                var before = (await Driver(handle).GetLogsAsync(handle, new LogOptions(), CancellationToken.None).ToListAsync()).Count;
                await Poll.UntilAsync(
                    async () => (await Driver(handle).GetLogsAsync(handle, new LogOptions(), CancellationToken.None).ToListAsync()).Count > before + 2,
                    Long,
                    $"{handle.ReplicaId} to keep logging after the control plane died");
            }

            // 4. Later exits are reported with their exit codes.
            foreach (var handle in adopted)
            {
                await File.WriteAllTextAsync(Path.Combine(signals, $"stop-{handle.ReplicaId}"), "");
            }

            foreach (var handle in adopted)
            {
                var status = await Driver(handle).WaitForExitAsync(handle, new CancellationTokenSource(Long).Token);
                var index = int.Parse(handle.ReplicaId[^1..], System.Globalization.CultureInfo.InvariantCulture);
                Assert.Equal(ReplicaState.Exited, status.State);
                Assert.Equal((handle.Kind == RuntimeKind.Process ? 10 : 20) + index, status.ExitCode);
            }
        }
        finally
        {
            foreach (var handle in await processDriver.ListAsync(app, CancellationToken.None))
            {
                await processDriver.StopAsync(handle, TimeSpan.Zero, CancellationToken.None);
                await processDriver.RemoveAsync(handle, CancellationToken.None);
            }

            if (docker is not null)
            {
                foreach (var handle in await docker.ListAsync(app, CancellationToken.None))
                {
                    await docker.StopAsync(handle, TimeSpan.Zero, CancellationToken.None);
                    await docker.RemoveAsync(handle, CancellationToken.None);
                }

                docker.Dispose();
            }

            Directory.Delete(root, recursive: true);
        }

        IWorkloadDriver Driver(ReplicaHandle handle) => handle.Kind == RuntimeKind.Process ? processDriver : docker!;
    }

    private static async Task<List<ReplicaHandle>> RunControlPlaneUntilKilledAsync(string root, string app, string signals, int processes, int containers)
    {
        var host = Path.Combine(AppContext.BaseDirectory, "Berth.Runtime.TestHost.dll");
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in new[] { host, root, app, signals, processes.ToString(System.Globalization.CultureInfo.InvariantCulture), containers.ToString(System.Globalization.CultureInfo.InvariantCulture), TestImages.App })
        {
            start.ArgumentList.Add(arg);
        }

        using var controlPlane = System.Diagnostics.Process.Start(start)!;
        try
        {
            using var timeout = new CancellationTokenSource(Long);
            var line = await controlPlane.StandardOutput.ReadLineAsync(timeout.Token);
            if (line is null)
            {
                Assert.Fail($"the control plane exited before starting its replicas: {await controlPlane.StandardError.ReadToEndAsync(timeout.Token)}");
            }

            return JsonSerializer.Deserialize<List<ReplicaHandle>>(line)!;
        }
        finally
        {
            controlPlane.Kill(); // SIGKILL: no shutdown code runs in the control plane
            await controlPlane.WaitForExitAsync();
        }
    }
}
