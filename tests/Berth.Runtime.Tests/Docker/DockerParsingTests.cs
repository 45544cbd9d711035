
namespace Berth.Runtime.Tests.Docker;

/// <summary>How a replica spec becomes an engine request, and how the engine's answers are read; no engine needed.</summary>
public sealed class DockerParsingTests
{
    [Fact]
    public void ParseTime_NanosecondRfc3339_CutToTicks()
    {
        var time = DockerDriver.ParseTime("2026-11-25T17:48:47.192134116Z");

        Assert.Equal(new DateTimeOffset(2026, 11, 25, 17, 48, 47, TimeSpan.Zero).AddTicks(1921341), time);
    }

    [Fact]
    public void ParseTime_ZeroTime_Null()
    {
        Assert.Null(DockerDriver.ParseTime("0001-01-01T00:00:00Z"));
    }

    [Fact]
    public void ParseDockerLine_TimestampedLine_SplitsTimeAndText()
    {
        var entry = DockerDriver.ParseDockerLine("2026-11-25T17:48:47.000000001Z hello  world", LogStream.Stderr);

        Assert.Equal(new LogEntry(new DateTimeOffset(2026, 11, 25, 17, 48, 47, TimeSpan.Zero), LogStream.Stderr, "hello  world"), entry);
    }

    [Fact]
    public async Task CreateParameters_Spec_LabelsLimitsHostNetworkAndShellForm()
    {
        using var driver = await DockerDriver.ConnectAsync(new DockerDriverOptions { Host = "unix:///nonexistent/docker.sock" }, CancellationToken.None);
        var spec = new ReplicaSpec
        {
            App = "shop",
            Service = "api",
            ReplicaId = "api-1",
            Revision = 3,
            Image = "shop/api:3",
            Command = ["echo", "$HOME"],
            Shell = true,
            Env = ImmutableSortedDictionary<string, string>.Empty.Add("B", "2").Add("A", "1"),
            Ports = ImmutableSortedDictionary<string, int>.Empty.Add("http", 8081),
            CpuLimit = CpuQuantity.Parse("1.5"),
            MemoryLimit = ByteSize.Parse("128Mi"),
            Node = "shop/node-a",
            StateDirectory = "/tmp/x",
            Volumes = [new VolumeMount { Type = VolumeType.Bind, Source = "/data", Target = "/data", ReadOnly = true }],
        };

        var p = driver.CreateParameters(spec);

        Assert.Equal("berth-shop-api-1", p.Name);
        Assert.Equal(["/bin/sh", "-c"], p.Entrypoint);
        Assert.Equal(["echo $HOME"], p.Cmd);
        Assert.Equal(["A=1", "B=2", "PORT=8081"], p.Env);
        Assert.Equal("host", p.HostConfig.NetworkMode);
        Assert.Equal(1_500_000_000, p.HostConfig.NanoCPUs);
        Assert.Equal(128L << 20, p.HostConfig.Memory);
        Assert.Equal(128L << 20, p.HostConfig.MemorySwap);
        Assert.Equal("/berth/shop/node-a", p.HostConfig.CgroupParent);
        Assert.Equal("bind", Assert.Single(p.HostConfig.Mounts).Type);
        Assert.Equal(new Dictionary<string, string> { ["berth.app"] = "shop", ["berth.service"] = "api", ["berth.replica"] = "api-1", ["berth.revision"] = "3" }, p.Labels);
    }
}
