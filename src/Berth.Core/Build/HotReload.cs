using System.Collections.Immutable;
using Berth.Core.Model;

namespace Berth.Core.Build;

/// <summary>How a replica of a <see cref="Service.HotReload"/> service runs: <c>dotnet watch --project P run --no-launch-profile
/// -- ARGS</c>, so Hot Reload patches the running process when a source file is saved (as <c>dotnet watch</c> does for Tye
/// and Aspire projects). The project is the one the service's <c>build.command</c> names (e.g. <c>dotnet build app/Shop.csproj</c>),
/// else the build's folder, else the service's working folder; the app's arguments are what follows the <c>.dll</c> in
/// <c>run: [dotnet, out/App.dll, ARGS…]</c>.</summary>
public static class HotReload
{
    /// <summary>Project file extensions <c>dotnet watch</c> runs.</summary>
    private static readonly string[] ProjectExtensions = [".csproj", ".fsproj", ".vbproj"];

    /// <summary>Environment every hot-reload replica gets: plain log lines (no emojis), no browser, and dotnet watch's polling
    /// file watcher: each dotnet watch holds ~50 inotify instances and Linux allows 128 per user by default, so a second or
    /// third replica (or a rolled one beside the old) died with "the configured user limit (128) on the number of inotify
    /// instances has been reached". A service's own <c>env</c> overrides it.</summary>
    public static readonly ImmutableSortedDictionary<string, string> Environment = ImmutableSortedDictionary.CreateRange(StringComparer.Ordinal,
    [
        new KeyValuePair<string, string>("DOTNET_WATCH_SUPPRESS_EMOJIS", "1"),
        new KeyValuePair<string, string>("DOTNET_WATCH_SUPPRESS_LAUNCH_BROWSER", "1"),
        new KeyValuePair<string, string>("DOTNET_USE_POLLING_FILE_WATCHER", "1"),
    ]);

    /// <summary>The project (file or folder) the replicas' <c>dotnet watch</c> runs, absolute.</summary>
    public static string ProjectOf(Application app, Service service)
    {
        var buildDir = service.Build is { } b ? b.WorkingDir ?? (b.Context is { } c && !c.Contains("://", StringComparison.Ordinal) ? c : null) : null;
        var folder = Path.GetFullPath(buildDir ?? service.WorkingDir ?? app.BaseDirectory, app.BaseDirectory);
        var named = service.Build?.Command.IsDefaultOrEmpty == false
            ? service.Build.Command.FirstOrDefault(a => ProjectExtensions.Any(e => a.EndsWith(e, StringComparison.OrdinalIgnoreCase)))
            : null;
        return named is null ? folder : Path.GetFullPath(named, folder);
    }

    /// <summary>The replica's argv.</summary>
    public static ImmutableArray<string> Command(Application app, Service service)
    {
        var run = service.Command;
        var dll = run.Length >= 2 && run[0] == "dotnet" && run[1].EndsWith(".dll", StringComparison.OrdinalIgnoreCase) ? 2 : run.Length;
        return ["dotnet", "watch", "--project", ProjectOf(app, service), "run", "--no-launch-profile", "--", .. run.Skip(dll)];
    }
}
