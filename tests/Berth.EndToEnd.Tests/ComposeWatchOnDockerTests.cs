using Berth.Runtime;

namespace Berth.EndToEnd.Tests;

/// <summary>
/// Compose's <c>develop.watch</c> on the Docker driver through the real <c>berth</c>: <c>initial_sync</c> and <c>sync</c>
/// copy into the running container through the engine's archive API (no restart, a deleted file deleted there too), and
/// <c>sync+restart</c> rolls a new container that has both rules' files — Berth copies them in before it starts.
/// </summary>
public sealed class ComposeWatchOnDockerTests : IAsyncLifetime
{
    private readonly DockerApp _app = new("wd");
    private DockerDriver? _docker;

    public async Task InitializeAsync()
    {
        if (!await _app.PrepareAsync())
        {
            return;
        }

        _docker = await DockerDriver.ConnectAsync(new DockerDriverOptions(), CancellationToken.None);
        Directory.CreateDirectory(Path.Combine(_app.Dir, "site"));
        Directory.CreateDirectory(Path.Combine(_app.Dir, "conf"));
        await File.WriteAllTextAsync(Path.Combine(_app.Dir, "site", "index.html"), "one");
        await File.WriteAllTextAsync(Path.Combine(_app.Dir, "site", "old.txt"), "to be deleted");
        await File.WriteAllTextAsync(Path.Combine(_app.Dir, "conf", "app.conf"), "mode=a");
        await File.WriteAllTextAsync(Path.Combine(_app.Dir, "compose.yaml"), $$"""
            name: {{_app.Name}}
            services:
              web:
                image: {{TestImages.Base}}
                command: ["sleep", "3600"]
                network_mode: host
                stop_grace_period: 1s
                develop:
                  watch:
                    - {action: sync, path: ./site, target: /srv/www, initial_sync: true}
                    - {action: sync+restart, path: ./conf, target: /etc/app}
            """);
    }

    public async Task DisposeAsync()
    {
        _docker?.Dispose();
        await _app.DisposeAsync();
    }

    [DockerFact]
    public async Task Watch_SyncAndSyncRestart_CopyIntoTheContainerAndIntoTheOneThatReplacesIt()
    {
        await _app.Berth.UpDetachedAsync(ready: 1);
        await using var watch = _app.Berth.Start("watch");
        await Poll.UntilAsync(() => watch.ErrLines.Any(l => l.StartsWith("berth: web: initial sync: ", StringComparison.Ordinal)) || watch.HasExited,
            TimeSpan.FromMinutes(2), "'berth watch' syncing the site at start");
        Assert.False(watch.HasExited, watch.Err);
        Assert.Contains("berth: web: initial sync: synced 2 files into 1 container", watch.ErrLines);
        var first = await RunningAsync();
        Assert.Equal("one", await CatAsync(first, "/srv/www/index.html"));

        // sync: the same container, the new content, the deleted file gone.
        await File.WriteAllTextAsync(Path.Combine(_app.Dir, "site", "index.html"), "two");
        File.Delete(Path.Combine(_app.Dir, "site", "old.txt"));
        (string? Index, string? Old) seen = default;
        try
        {
            await Poll.UntilAsync(async () => (seen = (await CatAsync(first, "/srv/www/index.html"), await CatAsync(first, "/srv/www/old.txt"))) == ("two", null),
                TimeSpan.FromMinutes(1), "index.html synced and old.txt deleted in the container");
        }
        catch (TimeoutException e)
        {
            throw new TimeoutException($"{e.Message}; last seen {seen}; berth printed:\n{watch.Err}", e);
        }

        Assert.Equal(first.ContainerId, (await RunningAsync()).ContainerId);

        // sync+restart: a new container replaces it, with the new conf and the site as synced.
        await File.WriteAllTextAsync(Path.Combine(_app.Dir, "conf", "app.conf"), "mode=b");
        await Poll.UntilAsync(async () => (await _docker!.ListAsync(_app.Name, CancellationToken.None)).Any(h => h.ContainerId != first.ContainerId),
            TimeSpan.FromMinutes(2), $"a new container after sync+restart; berth printed:\n{watch.Err}");
        var status = await _app.Berth.RunAsync("rollout", "status", "web", "--timeout", "2m");
        Assert.True(status.Code == 0, status.ToString());
        var second = await RunningAsync();
        Assert.NotEqual(first.ContainerId, second.ContainerId);
        Assert.Equal("mode=b", await CatAsync(second, "/etc/app/app.conf"));
        Assert.Equal("two", await CatAsync(second, "/srv/www/index.html"));
        Assert.Null(await CatAsync(second, "/srv/www/old.txt"));
    }

    private async Task<ReplicaHandle> RunningAsync()
    {
        var running = new List<ReplicaHandle>();
        foreach (var h in await _docker!.ListAsync(_app.Name, CancellationToken.None))
        {
            if ((await _docker.InspectAsync(h, CancellationToken.None)).State == ReplicaState.Running)
            {
                running.Add(h);
            }
        }

        return Assert.Single(running);
    }

    /// <summary>The file's content in the container, or null when it is not there.</summary>
    private async Task<string?> CatAsync(ReplicaHandle replica, string path)
    {
        var result = await _docker!.ExecAsync(replica, ["cat", path], null, CancellationToken.None);
        return result.ExitCode == 0 ? result.Output : null;
    }
}
