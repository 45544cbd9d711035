using System.CommandLine;
using System.Threading.Channels;
using Berth.Cli.ControlPlane;
using Berth.Core.Model;
using static Berth.Cli.Commands.ControlPlaneCommands;

namespace Berth.Cli.Commands;

/// <summary><c>berth watch</c>: watches each service's build folder; on a change it runs that build and applies the spec
/// with the new build digest, so only the services whose build changed roll out, readiness-gated and rolled back on failure
/// by the control plane (the app stays up). Compose's <c>develop.watch</c> actions (sync, sync+restart) are not read yet:
/// every change is a rebuild.</summary>
internal static class WatchCommand
{
    /// <summary>How long the folder must be quiet before a rebuild starts: 300 ms (an editor's save is several writes).</summary>
    internal static readonly TimeSpan Debounce = TimeSpan.FromMilliseconds(300);

    public static Command Create()
    {
        var file = SpecFile.CreateFilesOption();
        var envFile = SpecFile.CreateEnvFileOption();
        var profiles = SpecFile.CreateProfileOption();
        var command = new Command("watch", "Rebuild and roll out a service when a file in its build folder changes, until Ctrl-C (as docker compose watch's rebuild action). "
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

        var folders = BuildStamp.Folders(app);
        if (folders.Count == 0)
        {
            Error("no service has a build: (build.command or build.context); there is nothing to watch");
            return ExitCodes.Failed;
        }

        var changes = Channel.CreateUnbounded<string>();
        var watchers = new List<FileSystemWatcher>();
        try
        {
            foreach (var folder in folders.Keys)
            {
                var watcher = new FileSystemWatcher(folder) { IncludeSubdirectories = true, NotifyFilter = NotifyFilters.FileName | NotifyFilters.LastWrite | NotifyFilters.Size };
                FileSystemEventHandler onChange = (_, e) =>
                {
                    if (!BuildStamp.IsSkipped(folder, e.FullPath))
                    {
                        changes.Writer.TryWrite(e.FullPath);
                    }
                };
                watcher.Changed += onChange;
                watcher.Created += onChange;
                watcher.Deleted += onChange;
                watcher.Renamed += (_, e) => onChange(watcher, e);
                watcher.EnableRaisingEvents = true;
                watchers.Add(watcher);
                Status($"watching {folder} for {string.Join(", ", folders[folder])}");
            }

            while (!ct.IsCancellationRequested)
            {
                var first = await changes.Reader.ReadAsync(ct);
                var changed = new HashSet<string>(StringComparer.Ordinal) { first };
                // Debounce: wait until the folder has been quiet for a moment, then build once for everything saved.
                while (true)
                {
                    using var quiet = CancellationTokenSource.CreateLinkedTokenSource(ct);
                    quiet.CancelAfter(Debounce);
                    try
                    {
                        changed.Add(await changes.Reader.ReadAsync(quiet.Token));
                    }
                    catch (OperationCanceledException) when (!ct.IsCancellationRequested)
                    {
                        break;
                    }
                }

                var services = folders.Where(f => changed.Any(c => c.StartsWith(f.Key + Path.DirectorySeparatorChar, StringComparison.Ordinal))).SelectMany(f => f.Value).ToHashSet();
                Status($"changed: {string.Join(", ", changed.Take(3).Select(c => Path.GetRelativePath(app.BaseDirectory, c)))}{(changed.Count > 3 ? $" and {changed.Count - 3} more" : "")}; rebuilding {string.Join(", ", services)}");
                var only = app with { Services = [.. app.Services.Where(s => services.Contains(s.Name) || s.Build is null)] };
                var code = await RolloutCommands.ApplyAndReportAsync(client, app, specPath, build: true, prune: false, ct, buildOnly: only);
                // What the build itself wrote (its output in the watched folder) is not a new change.
                while (changes.Reader.TryRead(out _))
                {
                }

                Status(code == ExitCodes.Ok ? "watching for changes (Ctrl-C stops)" : "that change was not rolled out; the running version keeps serving; watching for the next change");
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
        finally
        {
            watchers.ForEach(w => w.Dispose());
        }

        return ExitCodes.Cancelled;
    }
}
