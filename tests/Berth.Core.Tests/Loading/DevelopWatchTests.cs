using Berth.Core.Model;

namespace Berth.Core.Tests.Loading;

/// <summary><c>develop.watch</c>: the same rules in berth.yaml and Compose, paths resolved, bad rules at their line and column.</summary>
public class DevelopWatchTests
{
    private static readonly string Folder = Path.Combine(Path.GetTempPath(), "berth-develop-watch");

    private static LoadResult Load(string yaml, string file) =>
        SpecLoader.LoadText(yaml, Path.Combine(Folder, file), new LoadOptions { Environment = new Dictionary<string, string>() });

    private static string[] Problems(string yaml, string file = "berth.yaml") =>
        [.. Load(yaml, file).Diagnostics.Select(d => $"{d.Severity} {d.Line}:{d.Column}: {d.Path}: {d.Message}")];

    [Fact]
    public void Load_ComposeDevelopWatch_EveryActionWithPathsResolved()
    {
        var result = Load("""
            services:
              web:
                build: ./web
                develop:
                  watch:
                    - path: ./web/html
                      action: sync
                      target: /var/www
                      initial_sync: true
                      ignore: [node_modules/, "*.tmp"]
                    - action: rebuild
                      path: ./web/package.json
                    - action: sync+restart
                      path: ./web/conf
                      target: /etc/web
                      include: "*.conf"
                    - {action: restart, path: ./web/reload}
            """, "compose.yaml");

        Assert.True(result.Succeeded, string.Join("\n", result.Diagnostics));
        var watch = result.Application!.FindService("web")!.Watch;
        Assert.Equal(
        [
            new WatchRule { Action = WatchAction.Sync, Path = Path.Combine(Folder, "web/html"), Target = "/var/www", InitialSync = true },
            new WatchRule { Action = WatchAction.Rebuild, Path = Path.Combine(Folder, "web/package.json") },
            new WatchRule { Action = WatchAction.SyncRestart, Path = Path.Combine(Folder, "web/conf"), Target = "/etc/web" },
            new WatchRule { Action = WatchAction.Restart, Path = Path.Combine(Folder, "web/reload") },
        ], watch.Select(w => w with { Ignore = [], Include = [] }));
        Assert.Equal(["node_modules/", "*.tmp"], watch[0].Ignore.ToArray());
        Assert.Equal(["*.conf"], watch[2].Include.ToArray());
    }

    [Fact]
    public void Load_ProcessServiceSyncTarget_ResolvedAgainstWorkingDir()
    {
        var result = Load("""
            services:
              api:
                run: [dotnet, api.dll]
                working_dir: ./api/bin
                develop:
                  watch:
                    - {action: sync+restart, path: ./api/wwwroot, target: wwwroot}
            """, "berth.yaml");

        Assert.True(result.Succeeded, string.Join("\n", result.Diagnostics));
        var rule = Assert.Single(result.Application!.FindService("api")!.Watch);
        Assert.Equal(Path.Combine(Folder, "api/bin/wwwroot"), rule.Target);
    }

    [Fact]
    public void Load_BadWatchRules_EachAtItsLineAndColumn()
    {
        Assert.Equal(
        [
            "Error 6:20: services.api.develop.watch[0].action: 'synk' is not one of rebuild, sync, sync+restart, restart; did you mean 'sync'?",
            "Error 7:11: services.api.develop.watch[1]: needs path: (the folder to watch, relative to the spec's folder)",
            "Error 8:11: services.api.develop.watch[2]: action sync needs target: (where the changed files go: a path in the container, or for a process service a folder relative to its working_dir)",
            "Error 9:51: services.api.develop.watch[3].target: '/app' is outside the working_dir of this process service (" + Folder + "); a process replica runs on this machine, so give a folder relative to its working_dir (e.g. wwwroot)",
            "Error 10:20: services.api.develop.watch[4].action: sync+exec is not supported yet; use sync+restart (copy, then restart the replicas)",
            "Error 11:11: services.api.develop.watch[5]: needs path: (the folder to watch, relative to the spec's folder)",
            "Error 11:29: services.api.develop.watch[5].pth: unknown key 'pth' in a watch rule; did you mean 'path'?",
            "Warning 12:46: services.api.develop.watch[6].target: is only used by the sync actions; action rebuild ignores it",
        ], Problems("""
            services:
              api:
                run: [app]
                develop:
                  watch:
                    - {action: synk, path: .}
                    - {action: sync, target: x}
                    - {action: sync, path: .}
                    - {action: sync+restart, path: ., target: /app}
                    - {action: sync+exec, path: .}
                    - {action: restart, pth: .}
                    - {action: rebuild, path: ., target: /x}
            """));
    }

    [Fact]
    public void Write_DevelopWatch_LoadsBackToTheSameRules()
    {
        var first = Load("""
            services:
              web:
                image: nginx
                develop:
                  watch:
                    - {action: sync, path: ./html, target: /usr/share/nginx/html, ignore: ["*.swp"], initial_sync: true}
                    - {action: rebuild, path: ./Dockerfile, include: [Dockerfile]}
            """, "berth.yaml");
        Assert.True(first.Succeeded, string.Join("\n", first.Diagnostics));

        var again = Load(SpecWriter.ToYaml(first.Application!), "berth.yaml");

        Assert.True(again.Succeeded, string.Join("\n", again.Diagnostics));
        var (a, b) = (first.Application!.FindService("web")!.Watch, again.Application!.FindService("web")!.Watch);
        Assert.Equal(a.Select(w => (w.Action, w.Path, w.Target, w.InitialSync, string.Join(",", w.Ignore), string.Join(",", w.Include))),
            b.Select(w => (w.Action, w.Path, w.Target, w.InitialSync, string.Join(",", w.Ignore), string.Join(",", w.Include))));
    }
}
