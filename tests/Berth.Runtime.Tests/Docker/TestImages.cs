using System.Formats.Tar;
using Berth.Runtime.Docker;
using global::Docker.DotNet;
using global::Docker.DotNet.Models;

namespace Berth.Runtime.Tests.Docker;

/// <summary>
/// Test images made offline, as no registry is reachable: a busybox root filesystem imported as a base image, then an
/// image built on top of it through the driver's build API. Idempotent; made once per test run.
/// </summary>
public static class TestImages
{
    public const string Base = "berth-test/busybox:base";
    public const string App = "berth-test/app:1";

    private static readonly SemaphoreSlim Gate = new(1, 1);
    private static bool _ready;

    /// <summary>As <see cref="EnsureAsync(DockerDriver)"/>, through a driver of its own on the default engine.</summary>
    public static async Task EnsureAsync()
    {
        using var driver = await DockerDriver.ConnectAsync(new DockerDriverOptions(), CancellationToken.None);
        await EnsureAsync(driver);
    }

    public static async Task EnsureAsync(DockerDriver driver)
    {
        await Gate.WaitAsync();
        try
        {
            if (_ready)
            {
                return;
            }

            using var client = new DockerClientConfiguration(new Uri(Environment.GetEnvironmentVariable("DOCKER_HOST") ?? DockerDriverDefaults.DefaultSocket)).CreateClient();
            if (!await ExistsAsync(client, Base))
            {
                await ImportBusyboxAsync(client);
            }

            if (!await ExistsAsync(client, App))
            {
                var context = Directory.CreateTempSubdirectory("berth-build").FullName;
                await File.WriteAllTextAsync(Path.Combine(context, "Dockerfile"), $"FROM {Base}\nLABEL berth.test=app\nCOPY hello.txt /hello.txt\nCMD [\"sleep\", \"3600\"]\n");
                await File.WriteAllTextAsync(Path.Combine(context, "hello.txt"), "built through the engine API\n");
                await driver.BuildImageAsync(context, App, cancellationToken: CancellationToken.None);
                Directory.Delete(context, recursive: true);
            }

            _ready = true;
        }
        finally
        {
            Gate.Release();
        }
    }

    /// <summary>Imports the busybox base image into the engine at <paramref name="engine"/> (a test's own dockerd) unless it has it.</summary>
    public static async Task EnsureBaseAsync(Uri engine)
    {
        using var client = new DockerClientConfiguration(engine).CreateClient();
        if (!await ExistsAsync(client, Base))
        {
            await ImportBusyboxAsync(client);
        }
    }

    private static async Task<bool> ExistsAsync(DockerClient client, string image)
    {
        try
        {
            await client.Images.InspectImageAsync(image);
            return true;
        }
        catch (DockerImageNotFoundException)
        {
            return false;
        }
    }

    /// <summary>A root filesystem of one static busybox and a link per applet, fed to the engine's import (docker import).</summary>
    private static async Task ImportBusyboxAsync(DockerClient client)
    {
        const string busybox = "/bin/busybox";
        if (!File.Exists(busybox))
        {
            throw new InvalidOperationException("the Docker tests need a static busybox at /bin/busybox to build their image offline: apt-get install busybox-static (.ci/setup-runtime.sh does)");
        }

        using var tar = new MemoryStream();
        await using (var writer = new TarWriter(tar, TarEntryFormat.Pax, leaveOpen: true))
        {
            foreach (var dir in new[] { "bin/", "tmp/", "proc/", "sys/", "dev/", "etc/" })
            {
                await writer.WriteEntryAsync(new PaxTarEntry(TarEntryType.Directory, dir) { Mode = (UnixFileMode)0b111_101_101 | (dir == "tmp/" ? UnixFileMode.StickyBit | UnixFileMode.OtherWrite | UnixFileMode.GroupWrite : 0) });
            }

            await writer.WriteEntryAsync(busybox, "bin/busybox");
            foreach (var applet in Applets())
            {
                await writer.WriteEntryAsync(new PaxTarEntry(TarEntryType.SymbolicLink, $"bin/{applet}") { LinkName = "busybox", Mode = (UnixFileMode)0b111_111_111 });
            }
        }

        tar.Position = 0;
        string? error = null;
        await client.Images.CreateImageAsync(
            new ImagesCreateParameters { FromSrc = "-", Repo = Base.Split(':')[0], Tag = Base.Split(':')[1] },
            tar,
            null,
            new Progress<JSONMessage>(m => error ??= m.Error?.Message),
            CancellationToken.None);
        if (error is not null)
        {
            throw new InvalidOperationException($"docker import of the busybox root filesystem failed: {error}");
        }
    }

    private static IEnumerable<string> Applets() =>
        ["sh", "sleep", "echo", "cat", "dd", "head", "yes", "true", "false", "ls", "env", "kill", "trap", "seq", "printf", "date", "wc"];
}
