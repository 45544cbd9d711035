using Berth.Runtime.Docker;
using Berth.Runtime.Tests.Docker;

namespace Berth.Cli.Tests.Shell;

/// <summary><c>berth exec</c> into a container through the engine's exec API: the container's environment, the command's exit
/// code, stdin attached, and a TTY when berth is on a terminal (none with -T).</summary>
[Collection("real processes")]
public sealed class DockerExecCliTests : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("berth-cli-dexec-").FullName;
    private BerthCli _cli = null!;

    public async Task InitializeAsync()
    {
        if (!Environments.DockerAvailable)
        {
            return;
        }

        await TestImages.EnsureAsync();

        await File.WriteAllTextAsync(Path.Combine(_dir, "berth.yaml"), $$"""
            name: dexec-{{Guid.NewGuid().ToString("N")[..8]}}
            services:
              box:
                image: {{TestImages.Base}}
                run: [sleep, "3600"]
                environment: {BOXVAR: from-spec}
                stop_grace_period: 1s
            """);
        _cli = new BerthCli(_dir) { Environment = { ["XDG_STATE_HOME"] = Path.Combine(_dir, "xdg") } };
        await _cli.OkAsync("up", "--wait");
    }

    public async Task DisposeAsync()
    {
        if (Environments.DockerAvailable)
        {
            await _cli.DownAsync();
        }

        Directory.Delete(_dir, recursive: true);
    }

    [DockerFact]
    public async Task Exec_Container_EnvExitCodeStdinAndTty()
    {
        var env = await _cli.OkAsync("exec", "-e", "EXTRA=1", "box", "env");
        var failed = await _cli.RunAsync("exec", "box", "sh", "-c", "echo out; echo err >&2; exit 9");
        var piped = await _cli.PipeAsync("a\nb\nc\n", "exec", "box", "wc", "-l");
        var workdir = await _cli.OkAsync("exec", "-w", "/etc", "box", "sh", "-c", "pwd");
        var tty = await ExecCliTests.InTerminalAsync(_dir, "exec", "box", "ls", "-l", "/proc/self/fd/0");
        var noTty = await ExecCliTests.InTerminalAsync(_dir, "exec", "-T", "box", "ls", "-l", "/proc/self/fd/0");
        var top = JsonDocument.Parse((await _cli.OkAsync("top", "-o", "json")).Out).RootElement.EnumerateArray().Single();
        var stats = JsonDocument.Parse((await _cli.OkAsync("stats", "--no-stream", "-o", "json")).Out).RootElement.EnumerateArray().Single();

        var lines = env.Out.Split('\n');
        Assert.Contains("BOXVAR=from-spec", lines);
        Assert.Contains("EXTRA=1", lines);
        Assert.Contains(lines, l => l.StartsWith("BERTH_REPLICA=box-", StringComparison.Ordinal));
        Assert.Equal((9, "out\n", "err\n"), (failed.Code, failed.Out, failed.Err));
        Assert.Equal((0, "3"), (piped.Code, piped.Out.Trim()));
        Assert.Equal("/etc\n", workdir.Out);
        Assert.Contains("-> /dev/pts/", tty, StringComparison.Ordinal);
        Assert.Contains("-> pipe:", noTty, StringComparison.Ordinal);
        Assert.Equal(["sleep 3600"], top.GetProperty("processes").EnumerateArray().Select(p => p.GetProperty("command").GetString()));
        Assert.Equal(("box", 1), (stats.GetProperty("service").GetString(), stats.GetProperty("pids").GetInt32()));
        Assert.InRange(stats.GetProperty("memoryBytes").GetInt64(), 1, long.MaxValue);
    }

    [DockerFact]
    public async Task Run_Container_OneOffWithTheServiceEnvKeptOrRemovedWithRm()
    {
        var kept = await _cli.RunAsync("run", "box", "sh", "-c", "echo $BOXVAR $BERTH_REPLICA; exit 5");
        var removed = await _cli.RunAsync("run", "--rm", "box", "sh", "-c", "echo $BERTH_REPLICA");

        Assert.Equal(5, kept.Code);
        Assert.Matches(@"^from-spec box-run-[0-9a-f]{5}\n$", kept.Out);
        Assert.Equal(0, removed.Code);
        using var client = new global::Docker.DotNet.DockerClientConfiguration(DockerDriver.FindEngine(new DockerDriverOptions())).CreateClient();
        async Task<IList<global::Docker.DotNet.Models.ContainerListResponse>> ContainersAsync(string replica) => await client.Containers.ListContainersAsync(new()
        {
            All = true,
            Filters = new Dictionary<string, IDictionary<string, bool>> { ["label"] = new Dictionary<string, bool> { [$"berth.replica={replica}"] = true } },
        });
        var keptContainers = await ContainersAsync(kept.Out.Trim().Split(' ')[1]);
        Assert.Equal("exited", Assert.Single(keptContainers).State);
        Assert.Empty(await ContainersAsync(removed.Out.Trim()));
        await client.Containers.RemoveContainerAsync(keptContainers[0].ID, new() { Force = true });
    }
}
