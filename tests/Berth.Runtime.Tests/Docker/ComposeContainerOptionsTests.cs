using System.Collections.Immutable;
using Berth.Core.Model;
using Berth.Runtime.Docker;
using Berth.Testing;
using global::Docker.DotNet;

namespace Berth.Runtime.Tests.Docker;

/// <summary>Compose's container options, secrets, configs and volume options reach a real Docker engine as docker compose
/// passes them (checked with the engine's own inspect and inside the container).</summary>
public sealed class ComposeContainerOptionsTests : IAsyncLifetime
{
    private readonly DockerDriverScope _docker = new();

    public Task InitializeAsync() => _docker.InitializeAsync();

    public Task DisposeAsync() => _docker.DisposeAsync();

    [DockerFact]
    public async Task StartAsync_ContainerOptions_PassedToTheEngineAsCompose()
    {
        var handle = await _docker.StartAsync(_docker.Spec("opts", "sleep", "300") with
        {
            Container = new ContainerOptions
            {
                Init = true,
                ReadOnly = true,
                Tmpfs = ["/scratch:size=1m"],
                CapAdd = ["NET_ADMIN"],
                CapDrop = ["MKNOD"],
                Ulimits = ImmutableSortedDictionary<string, Ulimit>.Empty.Add("nofile", new Ulimit(1024, 2048)),
                Sysctls = ImmutableSortedDictionary<string, string>.Empty.Add("kernel.shmmax", "65536"),
                StopSignal = "SIGINT",
                ShmSize = new ByteSize(32L << 20),
                SecurityOpt = ["no-new-privileges:true"],
                ExtraHosts = ["db.local:127.0.0.1"],
                GroupAdd = ["42"],
                Hostname = "db-host",
                PidsLimit = 64,
                LogDriver = "local",
                LogOptions = ImmutableSortedDictionary<string, string>.Empty.Add("max-size", "1m"),
            },
        });

        using var client = Client();
        var inspect = await client.Containers.InspectContainerAsync(handle.ContainerId);
        var h = inspect.HostConfig;
        Assert.Equal(true, h.Init);
        Assert.True(h.ReadonlyRootfs);
        Assert.Equal("size=1m", h.Tmpfs["/scratch"]);
        Assert.Equal(["NET_ADMIN"], h.CapAdd);
        Assert.Equal(["MKNOD"], h.CapDrop);
        Assert.Equal(("nofile", 1024L, 2048L), (h.Ulimits[0].Name, h.Ulimits[0].Soft, h.Ulimits[0].Hard));
        Assert.Equal("65536", h.Sysctls["kernel.shmmax"]);
        Assert.Equal("SIGINT", inspect.Config.StopSignal);
        Assert.Equal(32L << 20, h.ShmSize);
        Assert.Equal(["no-new-privileges:true"], h.SecurityOpt);
        Assert.Equal(["db.local:127.0.0.1"], h.ExtraHosts);
        Assert.Equal(["42"], h.GroupAdd);
        Assert.Equal("db-host", inspect.Config.Hostname);
        Assert.Equal(64, h.PidsLimit);
        Assert.Equal(("local", "1m"), (h.LogConfig.Type, h.LogConfig.Config["max-size"]));

        // And they hold inside: the root filesystem refuses a write, the tmpfs takes one.
        Assert.NotEqual(0, await ExecAsync(client, handle, "sh", "-c", "echo x > /root-write"));
        Assert.Equal(0, await ExecAsync(client, handle, "sh", "-c", "echo x > /scratch/ok"));
    }

    [DockerFact]
    public async Task StartAsync_SecretsAndConfigs_MountedReadOnlyWithModeAndOwner()
    {
        var source = Path.Combine(_docker.State, "cert.pem");
        await File.WriteAllTextAsync(source, "CERT");
        var handle = await _docker.StartAsync(_docker.Spec("files", "sleep", "300") with
        {
            Files =
            [
                new MountedFile { Name = "db-password", Kind = MountedFileKind.Secret, Target = "/run/secrets/db-password", Content = "s3cret" },
                new MountedFile { Name = "cert", Kind = MountedFileKind.Secret, Target = "/etc/cert.pem", SourceFile = source, Uid = "103", Gid = "104", Mode = 0b100_100_000 },
                new MountedFile { Name = "app-config", Kind = MountedFileKind.Config, Target = "/app-config", Content = "mode: fast\n" },
            ],
        });

        using var client = Client();
        Assert.Equal("s3cret", await OutputAsync(client, handle, "cat", "/run/secrets/db-password"));
        Assert.Equal("CERT", await OutputAsync(client, handle, "cat", "/etc/cert.pem"));
        Assert.Equal("mode: fast", (await OutputAsync(client, handle, "cat", "/app-config")).Trim());
        Assert.StartsWith("-r--r-----    1 103      104", await OutputAsync(client, handle, "ls", "-ln", "/etc/cert.pem"), StringComparison.Ordinal);
        Assert.StartsWith("-r--r--r--", await OutputAsync(client, handle, "ls", "-ln", "/run/secrets/db-password"), StringComparison.Ordinal);
        Assert.NotEqual(0, await ExecAsync(client, handle, "sh", "-c", "echo x > /run/secrets/db-password"));
    }

    [DockerFact]
    public async Task StartAsync_NamedVolume_IsALabelledVolumeWithSubpathAndTmpfsOptions()
    {
        var volume = $"{_docker.App}_data";
        var first = await _docker.StartAsync(_docker.Spec("vol1", "sh", "-c", "mkdir -p /data/sub && echo kept > /data/sub/file && sleep 300") with
        {
            Volumes = [new VolumeMount { Type = VolumeType.Volume, Source = "data", VolumeName = volume, Target = "/data" }],
        });
        using var client = Client();
        await Poll.UntilAsync(async () => await ExecAsync(client, first, "cat", "/data/sub/file") == 0, TimeSpan.FromSeconds(30), "the first replica wrote /data/sub/file");

        var second = await _docker.StartAsync(_docker.Spec("vol2", "sleep", "300") with
        {
            Volumes =
            [
                new VolumeMount { Type = VolumeType.Volume, Source = "data", VolumeName = volume, Target = "/sub", Subpath = "sub", ReadOnly = true },
                new VolumeMount { Type = VolumeType.Tmpfs, Target = "/fast", TmpfsSize = new ByteSize(1L << 20), TmpfsMode = 0b111_000_000 },
                new VolumeMount { Type = VolumeType.Volume, Source = "cache", VolumeName = $"{_docker.App}_cache", Target = "/cache", NoCopy = true },
                new VolumeMount { Type = VolumeType.Bind, Source = Path.Combine(_docker.State, "made-for-me"), Target = "/made" },
            ],
        });
        var mounts = (await client.Containers.InspectContainerAsync(second.ContainerId)).HostConfig.Mounts;
        Assert.True(mounts.Single(m => m.Target == "/cache").VolumeOptions.NoCopy);
        Assert.True(Directory.Exists(Path.Combine(_docker.State, "made-for-me"))); // create_host_path, as Compose

        var inspect = await client.Volumes.InspectAsync(volume);
        Assert.Equal((_docker.App, "data"), (inspect.Labels["berth.app"], inspect.Labels["berth.volume"]));
        Assert.Equal("kept", (await OutputAsync(client, second, "cat", "/sub/file")).Trim());
        Assert.StartsWith("drwx------", await OutputAsync(client, second, "ls", "-ld", "/fast"), StringComparison.Ordinal);
    }

    [DockerFact]
    public async Task StartAsync_MissingExternalVolumeAndPullPolicyNever_SayWhatToDo()
    {
        var external = await Assert.ThrowsAsync<ReplicaStartException>(() => _docker.StartAsync(_docker.Spec("ext", "true") with
        {
            Volumes = [new VolumeMount { Type = VolumeType.Volume, Source = "shared", VolumeName = $"{_docker.App}-nope", External = true, Target = "/shared" }],
        }));
        var never = await Assert.ThrowsAsync<ReplicaStartException>(() => _docker.StartAsync(_docker.Spec("never", "true") with { Image = "berth-test/not-here:1", PullPolicy = PullPolicy.Never }));

        Assert.Equal($"replica ext: external volume '{_docker.App}-nope' does not exist; create it (docker volume create {_docker.App}-nope) or drop external: true", external.Message);
        Assert.Equal("replica never: image 'berth-test/not-here:1' is not on the Docker engine and pull_policy is never, so it is not pulled; build or load it (docker load), or use pull_policy missing", never.Message);
    }

    [DockerFact]
    public async Task StartAsync_PullPolicyAlwaysAndNoRegistry_PullsEvenALocalImageAndSaysWhatToUse()
    {
        // The image is on the engine, tagged for a registry on a loopback port where nothing listens: 'missing' would use
        // it, 'always' must try the registry first (no traffic leaves the machine) and fail with the fix.
        await TestImages.EnsureAsync(_docker.Driver);
        var repository = $"127.0.0.1:{Ports.Free()}/berth-test/{_docker.App}";
        using var client = Client();
        await client.Images.TagImageAsync(TestImages.App, new global::Docker.DotNet.Models.ImageTagParameters { RepositoryName = repository, Tag = "1" });
        try
        {
            var local = await _docker.Driver.StartAsync(_docker.Spec("missing", "true") with { Image = $"{repository}:1", PullPolicy = PullPolicy.Missing }, CancellationToken.None);
            var always = await Assert.ThrowsAsync<ReplicaStartException>(() => _docker.Driver.StartAsync(_docker.Spec("always", "true") with { Image = $"{repository}:1", PullPolicy = PullPolicy.Always }, CancellationToken.None));

            Assert.NotNull(local.ContainerId);
            Assert.StartsWith($"pull_policy always: pulling '{repository}:1' failed: ", always.Message, StringComparison.Ordinal);
            Assert.Contains("connection refused", always.Message, StringComparison.Ordinal);
            Assert.EndsWith("No registry may be reachable from here; use pull_policy missing (the local image is used) or build (it is built from build:)", always.Message, StringComparison.Ordinal);
        }
        finally
        {
            await _docker.RemoveContainersAsync();

            await client.Images.DeleteImageAsync($"{repository}:1", new global::Docker.DotNet.Models.ImageDeleteParameters());
        }
    }

    private static async Task<long> ExecAsync(DockerClient client, ReplicaHandle handle, params string[] argv) =>
        (await RunAsync(client, handle, argv)).Code;

    private static async Task<string> OutputAsync(DockerClient client, ReplicaHandle handle, params string[] argv)
    {
        var (code, output) = await RunAsync(client, handle, argv);
        Assert.True(code == 0, $"{string.Join(' ', argv)} exited {code}: {output}");
        return output;
    }

    private static async Task<(long Code, string Output)> RunAsync(DockerClient client, ReplicaHandle handle, string[] argv)
    {
        var exec = await client.Exec.ExecCreateContainerAsync(handle.ContainerId, new global::Docker.DotNet.Models.ContainerExecCreateParameters { Cmd = argv, AttachStdout = true, AttachStderr = true });
        using var stream = await client.Exec.StartAndAttachContainerExecAsync(exec.ID, tty: false);
        var (stdout, stderr) = await stream.ReadOutputToEndAsync(CancellationToken.None);
        var result = await client.Exec.InspectContainerExecAsync(exec.ID);
        return (result.ExitCode, stdout + stderr);
    }

    private static DockerClient Client() =>
        new DockerClientConfiguration(new Uri(Environment.GetEnvironmentVariable("DOCKER_HOST") ?? DockerDriverDefaults.DefaultSocket)).CreateClient();
}
