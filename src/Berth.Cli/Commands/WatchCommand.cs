using System.CommandLine;
using Berth.Cli.ControlPlane;
using Berth.Cli.Watch;
using Berth.Core.Model;
using static Berth.Cli.Commands.ControlPlaneCommands;

namespace Berth.Cli.Commands;

/// <summary><c>berth watch</c> (and <c>berth up --watch</c>): acts on each service's <c>develop.watch</c> rules as Compose's
/// watch does — rebuild (build, then roll out, readiness-gated with rollback), sync (copy into the replicas), sync+restart,
/// restart (rolled as the service's update policy says) — and rebuilds a service with a build and no rules when a file in
/// its build folder changes. Each service has its own loop (<see cref="ServiceWatcher"/>).</summary>
internal static class WatchCommand
{
    /// <summary>How long a service's files must be quiet before it acts: 300 ms (an editor's save is several writes; Compose waits 500 ms, dotnet watch 100 ms).</summary>
    internal static readonly TimeSpan Debounce = TimeSpan.FromMilliseconds(300);

    public static Command Create()
    {
        var file = SpecFile.CreateFilesOption();
        var envFile = SpecFile.CreateEnvFileOption();
        var profiles = SpecFile.CreateProfileOption();
        var command = new Command("watch", "Act on each service's develop.watch rules when a file changes (sync, sync+restart, restart, rebuild), as docker compose watch; "
            + "a service with a build and no rules is rebuilt and rolled out when a file in its build folder changes. Runs until Ctrl-C. "
            + "Needs a running control plane ('berth up -d', or 'berth up --watch').") { file, envFile, profiles };
        command.SetAction(async (parse, ct) =>
        {
            var outcome = SpecFile.Load(parse.GetValue(file), parse.GetValue(envFile), parse.GetValue(profiles), Console.Error);
            return outcome.Succeeded ? await RunAsync(outcome.Application!, outcome.Path!, ct) : outcome.ExitCode;
        });
        return command;
    }

    /// <summary>Watches until <paramref name="ct"/> fires (Ctrl-C); exit 130 then, as any interrupted command.</summary>
    public static async Task<int> RunAsync(Application app, string specPath, CancellationToken ct)
    {
        var state = ControlPlaneHost.StateDirectoryFor(specPath);
        using var client = ApiClient.TryOpen(state);
        if (client is null || !await client.AliveAsync(ct))
        {
            Error($"no control plane is running for this app (state folder {state}); start one with 'berth up -d', or run 'berth up --watch'");
            return ExitCodes.Unavailable;
        }

        var targets = WatchPlan.For(app);
        if (targets.Count == 0)
        {
            Error("no service has develop.watch rules or a build: (build.command or build.context); there is nothing to watch");
            return ExitCodes.Failed;
        }

        using var session = new WatchSession(app, specPath, client, TimeProvider.System);
        // Services that share one build are watched as one: one build per change, each of them rolled from it.
        var groupWatchers = WatchPlan.Groups(app, targets).Select(g => new ServiceWatcher([.. g.Select(s => app.FindService(s)!)], session)).ToList();
        var watchers = groupWatchers.SelectMany(w => w.Services.Select(s => (s, w))).ToDictionary(p => p.s, p => p.w, StringComparer.Ordinal);
        var fileWatchers = new List<FileSystemWatcher>();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var loops = new List<Task>();
        try
        {
            foreach (var group in targets.GroupBy(t => WatchPlan.FolderOf(t.Rule), StringComparer.Ordinal))
            {
                if (!Directory.Exists(group.Key))
                {
                    Error($"cannot watch {group.Key} (for {string.Join(", ", group.Select(t => t.Service).Distinct())}): no such folder; create it or fix develop.watch's path");
                    continue;
                }

                var watcher = new FileSystemWatcher(group.Key) { IncludeSubdirectories = true, NotifyFilter = NotifyFilters.FileName | NotifyFilters.DirectoryName | NotifyFilters.LastWrite | NotifyFilters.Size };
                var rules = group.ToList();
                void OnChange(string path)
                {
                    foreach (var t in rules.Where(t => t.Filter.Matches(path)))
                    {
                        watchers[t.Service].Post(t, path);
                    }
                }

                watcher.Changed += (_, e) => OnChange(e.FullPath);
                watcher.Created += (_, e) => OnChange(e.FullPath);
                watcher.Deleted += (_, e) => OnChange(e.FullPath);
                // An editor that saves by writing a temporary file and renaming it over the original changes the new name.
                watcher.Renamed += (_, e) =>
                {
                    OnChange(e.OldFullPath);
                    OnChange(e.FullPath);
                };
                watcher.EnableRaisingEvents = true;
                fileWatchers.Add(watcher);
                var declared = rules.Where(t => !app.FindService(t.Service)!.Watch.IsDefaultOrEmpty).ToList();
                Status($"watching {group.Key} for {string.Join(", ", rules.Select(t => t.Service).Distinct())}"
                    + (declared.Count == 0 ? "" : $" ({string.Join(", ", declared.Select(t => t.Rule.Action switch
                    {
                        WatchAction.Rebuild => "rebuild",
                        WatchAction.Sync => $"sync → {t.Rule.Target}",
                        WatchAction.SyncRestart => $"sync+restart → {t.Rule.Target}",
                        WatchAction.Restart => "restart",
                    }).Distinct())})"));
            }

            foreach (var w in groupWatchers)
            {
                await w.InitialSyncAsync(targets.Where(t => w.Services.Contains(t.Service)), ct);
                loops.Add(w.RunAsync(stop.Token));
            }

            // Each loop runs until Ctrl-C; one that fails (a bug) ends the watch with its error rather than going quiet.
            await await Task.WhenAny(loops);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
        finally
        {
            await stop.CancelAsync();
            fileWatchers.ForEach(w => w.Dispose());
            try
            {
                await Task.WhenAll(loops);
            }
            catch (OperationCanceledException)
            {
            }
        }

        return ExitCodes.Cancelled;
    }
}
