using global::Docker.DotNet;

namespace Berth.Runtime.Tests.Docker;

public sealed class DockerDriverTests : IAsyncLifetime
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(90);
    private readonly DockerDriverScope _docker = new();

    public Task InitializeAsync() => _docker.InitializeAsync();

    public Task DisposeAsync() => _docker.DisposeAsync();

    [DockerFact]
    public async Task StartAsync_LocalImage_RunsWithLabelsLimitsAndHostNetwork()
    {
        var handle = await _docker.StartAsync(_docker.Spec("web", "sleep", "300") with { CpuLimit = CpuQuantity.Parse("250m"), MemoryLimit = ByteSize.Parse("64Mi"), Revision = 7 });

        using var client = Client();
        var inspect = await client.Containers.InspectContainerAsync(handle.ContainerId);

        Assert.Equal("running", inspect.State.Status);
        Assert.Equal("host", inspect.HostConfig.NetworkMode);
        Assert.Equal(250_000_000, inspect.HostConfig.NanoCPUs);
        Assert.Equal(64L << 20, inspect.HostConfig.Memory);
        Assert.Equal(_docker.App, inspect.Config.Labels["berth.app"]);
        Assert.Equal("svc", inspect.Config.Labels["berth.service"]);
        Assert.Equal("web", inspect.Config.Labels["berth.replica"]);
        Assert.Equal("7", inspect.Config.Labels["berth.revision"]);
        Assert.Equal("app", inspect.Config.Labels["berth.test"]); // from the image built through the API
        Assert.Equal(ReplicaState.Running, (await _docker.Driver.InspectAsync(handle, CancellationToken.None)).State);
    }

    [DockerFact]
    public async Task StartAsync_InheritEnv_ContainerGetsOnlyItsSpecAndWhatTheEngineSets()
    {
        // Issue #14 §3: nothing of the control plane's environment reaches a container, as Compose (inherit_env is for
        // processes). The engine itself adds PATH, HOSTNAME and HOME.
        var spec = _docker.Spec("env", "env") with
        {
            InheritEnv = true,
            Env = System.Collections.Immutable.ImmutableSortedDictionary<string, string>.Empty.Add("APP_MODE", "test"),
        };
        var handle = await _docker.StartAsync(spec);

        await _docker.Driver.WaitForExitAsync(handle, new CancellationTokenSource(Long).Token);
        var logs = await _docker.Driver.GetLogsAsync(handle, new LogOptions(), CancellationToken.None).ToListAsync();

        Assert.Equal(["APP_MODE", "HOME", "HOSTNAME", "PATH"], logs.Texts(LogStream.Stdout).Select(l => l[..l.IndexOf('=', StringComparison.Ordinal)]).Order(StringComparer.Ordinal));
        Assert.Contains("APP_MODE=test", logs.Texts(LogStream.Stdout));
        Assert.NotEmpty(InheritedEnvironment.Current()); // the test host has an environment that could have leaked
    }

    [DockerFact]
    public async Task StartAsync_ChattyContainer_EngineRotatesWithTheReplicasBoundAndLogsReadAcrossFiles()
    {
        // Issue #14 §5: Docker's default json-file driver never rotates unless told; Berth tells it.
        var spec = _docker.Spec("chatty", "sh", "-c", "i=0; while [ $i -lt 3000 ]; do i=$((i+1)); printf 'line %05d xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\\n' $i; done")
            with { Logging = new LogRotation(new ByteSize(8 << 10), 3) };
        var handle = await _docker.StartAsync(spec);
        await _docker.Driver.WaitForExitAsync(handle, new CancellationTokenSource(Long).Token);

        using var client = Client();
        var inspect = await client.Containers.InspectContainerAsync(handle.ContainerId);
        Assert.Equal("json-file", inspect.HostConfig.LogConfig.Type);
        Assert.Equal("8192", inspect.HostConfig.LogConfig.Config["max-size"]);
        Assert.Equal("3", inspect.HostConfig.LogConfig.Config["max-file"]);
        var files = Directory.GetFiles(Path.GetDirectoryName(inspect.LogPath)!, Path.GetFileName(inspect.LogPath) + "*");
        Assert.InRange(files.Length, 2, 3);
        Assert.All(files, f => Assert.InRange(new FileInfo(f).Length, 1, (8 << 10) + 512)); // json-file may pass the size by the line that crosses it

        var lines = (await _docker.Driver.GetLogsAsync(handle, new LogOptions(), CancellationToken.None).ToListAsync()).Texts(LogStream.Stdout);
        var numbers = lines.Select(l => int.Parse(l.AsSpan(5, 5), System.Globalization.CultureInfo.InvariantCulture)).ToList();
        Assert.Equal(Enumerable.Range(3001 - numbers.Count, numbers.Count), numbers);
        Assert.True(numbers.Count > (8 << 10) / 100, $"{numbers.Count} lines: more than one file's worth, read across the rotated files");
    }

    [DockerFact]
    public async Task ExecAsync_RunningContainer_RunsInsideWithExitCodeAndOutput()
    {
        var handle = await _docker.StartAsync(_docker.Spec("exec", "sleep", "300"));

        var result = await _docker.Driver.ExecAsync(handle, ["sh", "-c", "cat /hello.txt; echo oops >&2; exit 4"], "/not/used/in/a/container", CancellationToken.None);

        Assert.Equal(4, result.ExitCode);
        Assert.Equal("built through the engine API\noops\n", result.Output); // the image's file: it ran inside the container
        Assert.Equal(0, (await _docker.Driver.ExecAsync(handle, ["true"], null, CancellationToken.None)).ExitCode);
    }

    [DockerFact]
    public async Task StartAsync_SyncRules_NewContainerHasTheFilesAndCopyIntoUpdatesARunningOne()
    {
        var source = Directory.CreateTempSubdirectory("berth-sync-").FullName;
        Directory.CreateDirectory(Path.Combine(source, "css"));
        await File.WriteAllTextAsync(Path.Combine(source, "index.html"), "one");
        await File.WriteAllTextAsync(Path.Combine(source, "css", "site.css"), "body{}");
        await File.WriteAllTextAsync(Path.Combine(source, "notes.swp"), "editor temp");
        await File.WriteAllTextAsync(Path.Combine(source, "skip.log"), "ignored");
        var rule = new WatchRule { Action = WatchAction.Sync, Path = source, Target = "/srv/www", Ignore = ["*.log"] };

        var handle = await _docker.StartAsync(_docker.Spec("sync", "sleep", "300") with { Syncs = [new SyncedFolder(rule, BuildContext: null)] });

        var listed = await _docker.Driver.ExecAsync(handle, ["sh", "-c", "cd /srv/www && find . -type f | sort && cat index.html"], null, CancellationToken.None);
        Assert.Equal("./css/site.css\n./index.html\none", listed.Output); // not the editor's temporary file, not the ignored one

        await File.WriteAllTextAsync(Path.Combine(source, "index.html"), "two");
        var filter = new Core.Build.WatchFilter(rule, buildContext: null);
        await using (var tar = await filter.TarAsync([Path.Combine(source, "index.html")], rule.Target!, CancellationToken.None))
        {
            await _docker.Driver.CopyIntoAsync(handle.ContainerId!, tar, CancellationToken.None);
        }

        Assert.Equal("two", (await _docker.Driver.ExecAsync(handle, ["cat", "/srv/www/index.html"], null, CancellationToken.None)).Output);
        Assert.Equal(ReplicaState.Running, (await _docker.Driver.InspectAsync(handle, CancellationToken.None)).State); // synced without a restart
    }

    [DockerFact]
    public async Task GetLogsAsync_BothStreams_KeptApartAndTimestamped()
    {
        var before = DateTimeOffset.UtcNow.AddSeconds(-5);
        var handle = await _docker.StartAsync(_docker.Spec("logs", "sh", "-c", "echo out1; echo err1 >&2; sleep 0.2; cat /hello.txt; exit 3"));

        var status = await _docker.Driver.WaitForExitAsync(handle, new CancellationTokenSource(Long).Token);
        var logs = await _docker.Driver.GetLogsAsync(handle, new LogOptions(), CancellationToken.None).ToListAsync();
        var tail = await _docker.Driver.GetLogsAsync(handle, new LogOptions { Tail = 1, Stderr = false }, CancellationToken.None).ToListAsync();

        Assert.Equal(3, status.ExitCode);
        Assert.Equal(ReplicaState.Exited, status.State);
        Assert.Equal(["out1", "built through the engine API"], logs.Texts(LogStream.Stdout));
        Assert.Equal(["err1"], logs.Texts(LogStream.Stderr));
        Assert.All(logs, e => Assert.InRange(e.Timestamp, before, DateTimeOffset.UtcNow.AddSeconds(5)));
        Assert.Equal(["built through the engine API"], tail.Select(e => e.Text));
    }

    [DockerFact]
    public async Task GetLogsAsync_Follow_YieldsLinesUntilExit()
    {
        var handle = await _docker.StartAsync(_docker.Spec("follow", "sh", "-c", "for i in 1 2 3; do echo line $i; sleep 0.2; done"));
        List<string> seen = [];

        await foreach (var entry in _docker.Driver.GetLogsAsync(handle, new LogOptions { Follow = true }, new CancellationTokenSource(Long).Token))
        {
            seen.Add(entry.Text);
        }

        Assert.Equal(["line 1", "line 2", "line 3"], seen);
    }

    [DockerFact]
    public async Task StopAsync_ContainerIgnoringSigterm_KilledAfterGracePeriod()
    {
        var handle = await _docker.StartAsync(_docker.Spec("stubborn", "sh", "-c", "trap '' TERM; echo ready; while true; do sleep 1; done"));
        await Poll.UntilAsync(async () => (await _docker.Driver.GetLogsAsync(handle, new LogOptions(), CancellationToken.None).ToListAsync()).Any(e => e.Text == "ready"), Long, "the container to print ready");

        var clock = Stopwatch.StartNew();
        var status = await _docker.Driver.StopAsync(handle, TimeSpan.FromSeconds(1), CancellationToken.None);

        StopContract.KilledAfterGrace(status, clock.Elapsed, TimeSpan.FromSeconds(1));
    }

    [DockerFact]
    public async Task WaitForExitAsync_ExitCode155_ReportedAsCodeNotSignal27()
    {
        var handle = await _docker.StartAsync(_docker.Spec("exit155", "sh", "-c", "exit 155"));

        var status = await _docker.Driver.WaitForExitAsync(handle, new CancellationTokenSource(Long).Token);

        Assert.Equal(ReplicaState.Exited, status.State);
        Assert.Equal(155, status.ExitCode);
        Assert.Null(status.Signal);
    }

    [DockerFact]
    public async Task WaitForExitAsync_KilledOutsideTheDriver_CodeKeptSignalUnknown()
    {
        // The engine reports a signal death as 128+n, the same number a process may exit with: Docker shows
        // "Exited (137)" and so does Berth, without claiming a signal it cannot know.
        var handle = await _docker.StartAsync(_docker.Spec("outside", "sleep", "300"));
        using var client = Client();
        await client.Containers.KillContainerAsync(handle.ContainerId, new global::Docker.DotNet.Models.ContainerKillParameters { Signal = "KILL" });

        var status = await _docker.Driver.WaitForExitAsync(handle, new CancellationTokenSource(Long).Token);

        Assert.Equal(137, status.ExitCode);
        Assert.Null(status.Signal);
        Assert.False(status.OomKilled);
    }

    [DockerFact]
    public async Task StopAsync_ZeroGrace_KilledWithoutTheEnginesDefaultWait()
    {
        var handle = await _docker.StartAsync(_docker.Spec("now", "sh", "-c", "trap '' TERM; while true; do sleep 1; done"));

        var clock = Stopwatch.StartNew();
        var status = await _docker.Driver.StopAsync(handle, TimeSpan.Zero, CancellationToken.None);

        Assert.Equal(137, status.ExitCode);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(8), $"a zero grace period took {clock.Elapsed}, as long as the engine's own 10 s default");
    }

    [DockerFact]
    public async Task StartAsync_AllocatingPastMemoryLimit_OomKilled()
    {
        var handle = await _docker.StartAsync(_docker.Spec("hungry", "dd", "if=/dev/zero", "of=/dev/null", "bs=200M", "count=1") with { MemoryLimit = ByteSize.Parse("64Mi") });

        var status = await _docker.Driver.WaitForExitAsync(handle, new CancellationTokenSource(Long).Token);

        Assert.True(status.OomKilled, $"expected OOM-killed, got exit {status.ExitCode}");
        Assert.Equal(137, status.ExitCode);
    }

    [DockerFact]
    public Task GetStatsAsync_BusyLoopWithHalfCpuLimit_UsesHalfACore() =>
        // On a node under Berth's subtree, weighted so the quota (not other builds on this machine) is what binds.
        OnNodeAsync(new NodeCgroupSpec { Path = NodeCgroupSpec.PathFor(_docker.App, "cpu") }, CpuWindows.Shares, async node =>
        {
            var handle = await _docker.StartAsync(_docker.Spec("busy", "sh", "-c", "while true; do :; done") with { CpuLimit = CpuQuantity.Parse("0.5"), MemoryLimit = ByteSize.Parse("128Mi"), Node = node });

            var windows = await CpuWindows.MeasureAsync(() => _docker.Driver.GetStatsAsync(handle, CancellationToken.None));

            Assert.Contains(windows, w => w.CpuPercent is >= 40 and <= 60);
            Assert.All(windows, w => Assert.True(w.CpuPercent <= 60, $"the 0.5 CPU limit held in every window: {string.Join(", ", windows.Select(x => x.CpuPercent.ToString("0.0")))}"));
            Assert.Equal(ByteSize.Parse("128Mi"), windows[^1].MemoryLimit);
        });

    [DockerFact]
    public async Task ListAsync_NewDriver_AdoptsByLabelsAndSeesExitCode()
    {
        var handle = await _docker.StartAsync(_docker.Spec("adopt", "sh", "-c", "echo up; while [ ! -e /tmp/stop ]; do sleep 0.1; done; exit 42"));
        using var restarted = await DockerDriver.ConnectAsync(new DockerDriverOptions { RequestTimeout = TimeSpan.FromSeconds(60) }, CancellationToken.None);

        var adopted = Assert.Single(await restarted.ListAsync(_docker.App, CancellationToken.None));
        Assert.Equal(handle.ContainerId, adopted.ContainerId);
        Assert.Equal("adopt", adopted.ReplicaId);
        Assert.Equal(ReplicaState.Running, (await restarted.InspectAsync(adopted, CancellationToken.None)).State);
        using var client = Client();
        var exec = await client.Exec.ExecCreateContainerAsync(handle.ContainerId, new global::Docker.DotNet.Models.ContainerExecCreateParameters { Cmd = ["sh", "-c", "echo > /tmp/stop"] });
        await client.Exec.StartContainerExecAsync(exec.ID);
        var status = await restarted.WaitForExitAsync(adopted, new CancellationTokenSource(Long).Token);

        Assert.Equal(42, status.ExitCode);
    }

    [DockerFact]
    public Task StartAsync_OnNode_ContainerCgroupUnderNodeAndBoundByItsMemoryCap() =>
        OnNodeAsync(new NodeCgroupSpec { Path = NodeCgroupSpec.PathFor(_docker.App, "n1"), Memory = ByteSize.Parse("64Mi") }, null, async node =>
        {
            var idle = await _docker.StartAsync(_docker.Spec("idle", "sleep", "300") with { Node = node });
            var hungry = await _docker.StartAsync(_docker.Spec("placed", "dd", "if=/dev/zero", "of=/dev/null", "bs=200M", "count=1") with { Node = node });

            var status = await _docker.Driver.WaitForExitAsync(hungry, new CancellationTokenSource(Long).Token);

            Assert.True(Directory.Exists($"/sys/fs/cgroup/memory/berth/{node}/{idle.ContainerId}"), "the container's cgroup sits under its node's");
            Assert.True(status.OomKilled, $"expected the node's 64Mi cap to OOM-kill the container, got exit {status.ExitCode}");
        });

    [DockerFact]
    public async Task StartAsync_ImageMissingAndNoRegistry_SaysHowToFix()
    {
        // No traffic leaves the machine: the image names a registry on a loopback port where nothing listens (the engine
        // treats 127.0.0.0/8 registries as insecure, so it tries plain HTTP there and is refused).
        var image = $"127.0.0.1:{Ports.Free()}/berth-test/not-there:1";

        var error = await Assert.ThrowsAsync<ReplicaStartException>(() => _docker.Driver.StartAsync(_docker.Spec("missing", "true") with { Image = image }, CancellationToken.None));

        Assert.StartsWith($"image '{image}' is not on the Docker engine and pulling it failed: ", error.Message, StringComparison.Ordinal);
        Assert.Contains("connection refused", error.Message, StringComparison.Ordinal);
        Assert.EndsWith("build the image locally (a 'build' section in the spec, or docker build) or load it (docker load), then start again", error.Message, StringComparison.Ordinal);
    }

    [DockerFact]
    public async Task BuildImageAsync_NoDockerfile_SaysWhereItLooked()
    {
        var context = Directory.CreateTempSubdirectory("berth-empty").FullName;

        var error = await Assert.ThrowsAsync<ReplicaStartException>(() => _docker.Driver.BuildImageAsync(context, "berth-test/none:1", cancellationToken: CancellationToken.None));

        Assert.Equal($"cannot build image 'berth-test/none:1': no Dockerfile in {context}; check 'build.context' and 'build.dockerfile' in the spec", error.Message);
        Directory.Delete(context);
    }

    [Fact]
    public async Task ConnectAsync_NoEngineAtDockerHost_UnavailableWithClearReason()
    {
        var socket = Path.Combine(Path.GetTempPath(), $"berth-no-docker-{Guid.NewGuid():N}.sock");
        using var driver = await DockerDriver.ConnectAsync(new DockerDriverOptions { Host = $"unix://{socket}" }, CancellationToken.None);

        var error = await Assert.ThrowsAsync<DockerUnavailableException>(() => driver.StartAsync(_docker.Spec("x", "true"), CancellationToken.None));

        Assert.False(driver.Capabilities.Available);
        Assert.StartsWith($"Docker engine not reachable at unix://{socket} (from the driver options): ", driver.Capabilities.UnavailableReason, StringComparison.Ordinal);
        Assert.Contains("Start Docker (systemctl start docker, or run dockerd), or set DOCKER_HOST to a running engine", error.Message, StringComparison.Ordinal);
    }

    /// <summary>Runs <paramref name="body"/> with a node cgroup made by the process driver; removes the app's containers, then the node.</summary>
    private async Task OnNodeAsync(NodeCgroupSpec spec, long? shares, Func<string, Task> body)
    {
        Assert.True(Environments.CgroupsWritable, "placing containers on nodes needs writable cgroups (root)");
        var nodes = new Berth.Runtime.Process.ProcessDriver(new Berth.Runtime.Process.ProcessDriverOptions { StateRoot = Path.Combine(_docker.State, "runtime"), CpuShares = shares });
        var node = await nodes.EnsureNodeAsync(spec, CancellationToken.None);
        try
        {
            await body(node);
        }
        finally
        {
            if (shares is not null)
            {
                CpuWindows.RestoreDefaultShares();
            }

            await _docker.RemoveContainersAsync();

            // The engine removes a container's cgroup a moment after the container itself.
            await Poll.UntilAsync(
                async () =>
                {
                    try
                    {
                        await nodes.RemoveNodeAsync(node, CancellationToken.None);
                        return true;
                    }
                    catch (InvalidOperationException)
                    {
                        return false;
                    }
                },
                Long,
                $"node cgroup {node} to be removable once its containers are gone");
        }
    }

    private static DockerClient Client() =>
        new DockerClientConfiguration(new Uri(Environment.GetEnvironmentVariable("DOCKER_HOST") ?? DockerDriverDefaults.DefaultSocket)).CreateClient();
}
