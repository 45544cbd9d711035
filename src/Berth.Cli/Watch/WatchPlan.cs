using Berth.Cli.ControlPlane;
using Berth.Core.Build;
using Berth.Core.Model;

namespace Berth.Cli.Watch;

/// <summary>One rule of one service with the filter that decides which changes it acts on.</summary>
internal sealed record WatchTarget(string Service, WatchRule Rule, WatchFilter Filter);

/// <summary>What <c>berth watch</c> watches: each service's <c>develop.watch</c> rules; a service with a build and no rules
/// gets one rebuild rule on its build folder (its build output — bin/, obj/, out/, dist/, target/, at any depth — not counted).</summary>
internal static class WatchPlan
{
    /// <summary>Folders a build writes its output to, by the common tools' conventions (dotnet, make, npm, cargo/maven).</summary>
    internal static readonly string[] DefaultOutputFolders = ["bin/", "obj/", "out/", "dist/", "target/"];

    public static IReadOnlyList<WatchTarget> For(Application app)
    {
        var targets = new List<WatchTarget>();
        foreach (var s in app.Services)
        {
            var context = s.Build?.Context is { } c && !c.Contains("://", StringComparison.Ordinal) ? Path.GetFullPath(c, app.BaseDirectory) : null;
            if (!s.Watch.IsDefaultOrEmpty)
            {
                targets.AddRange(s.Watch.Select(rule => new WatchTarget(s.Name, rule, new WatchFilter(rule, context))));
            }
            else if (BuildStamp.Folder(app, s) is { } folder)
            {
                // At any depth: the shop's build writes app/out/ inside its build folder ".", and a build whose own output
                // counts as a change stops the other services' builds of the same folder as "a newer change", in a loop.
                var rule = new WatchRule { Action = WatchAction.Rebuild, Path = folder, Ignore = [.. DefaultOutputFolders.Select(f => "**/" + f)] };
                targets.Add(new WatchTarget(s.Name, rule, new WatchFilter(rule, context)));
            }
        }

        return targets;
    }

    /// <summary>The folder a watcher listens on for <paramref name="rule"/>: its path, or the folder holding it when it is one file.</summary>
    public static string FolderOf(WatchRule rule) => File.Exists(rule.Path) ? Path.GetDirectoryName(rule.Path)! : rule.Path;
}
