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

    /// <summary>The services watched as one (one loop, one build): those that run the same build command in the same folder on
    /// the same runtime and watch the same rules (the shop's api, worker and db: one <c>dotnet build</c> whose output all three
    /// run). A change is built once and every one of them rolls from that build, where a loop per service ran the same build
    /// once per service, side by side, each writing the same output. A Hot Reload service, or one without a build command,
    /// is a group of its own.</summary>
    public static IReadOnlyList<IReadOnlyList<string>> Groups(Application app, IReadOnlyList<WatchTarget> targets) =>
        [.. targets.Select(t => t.Service).Distinct(StringComparer.Ordinal)
            .GroupBy(s => GroupKey(app, app.FindService(s)!, targets.Where(t => t.Service == s)), StringComparer.Ordinal)
            .Select(g => (IReadOnlyList<string>)[.. g])];

    private static string GroupKey(Application app, Service s, IEnumerable<WatchTarget> targets)
    {
        if (s.HotReload || s.Build is not { Command.IsDefaultOrEmpty: false } build)
        {
            return "service\0" + s.Name;
        }

        var dir = Path.GetFullPath(build.WorkingDir ?? build.Context ?? app.BaseDirectory, app.BaseDirectory);
        var rules = targets.Select(t => string.Join('\u0001', t.Rule.Action, t.Rule.Path, t.Rule.Target, t.Rule.InitialSync,
            string.Join('\u0002', t.Rule.Ignore), string.Join('\u0002', t.Rule.Include)));
        string[] key = ["build", .. build.Command, dir, s.EffectiveRuntime.ToString(), .. rules];
        return string.Join('\0', key);
    }

    /// <summary>The folder a watcher listens on for <paramref name="rule"/>: its path, or the folder holding it when it is one file.</summary>
    public static string FolderOf(WatchRule rule) => File.Exists(rule.Path) ? Path.GetDirectoryName(rule.Path)! : rule.Path;
}
