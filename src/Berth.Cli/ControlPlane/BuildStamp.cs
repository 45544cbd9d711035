using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Berth.Core.Model;

namespace Berth.Cli.ControlPlane;

/// <summary>What makes a rebuilt service roll out: each service with a <c>build:</c> gets <c>BERTH_BUILD=&lt;digest&gt;</c> in its
/// env, a digest of the files in its build folder (sources and build output; not obj/, node_modules/ or dot-folders such as .berth/ and .git/), so a
/// build that changed something changes the service's template and the control plane rolls it out, readiness-gated, with
/// rollback, as any template change (compose up --build recreates the containers whose image changed). A build that changed
/// nothing leaves the template as it was: no rollout.</summary>
internal static class BuildStamp
{
    public const string EnvName = "BERTH_BUILD";

    /// <summary>Set by <c>berth watch</c>'s restart actions to roll a service's replicas (as <c>kubectl rollout restart</c>'s
    /// restartedAt annotation); carried over by every later apply so that it alone never rolls again.</summary>
    public const string RestartEnvName = "BERTH_RESTART";

    /// <summary>Folders whose files are not the build's: intermediate output and dependencies; dot-folders (.berth, .git, .vs) are skipped too.</summary>
    private static readonly string[] Skipped = ["obj", "node_modules"];

    /// <summary>The app with every built service (or only those in <paramref name="only"/>) stamped with its build folder's digest now.</summary>
    public static Application Stamp(Application app, IReadOnlySet<string>? only = null)
    {
        var digests = new Dictionary<string, string>(StringComparer.Ordinal);
        return app with
        {
            Services = [.. app.Services.Select(s => (only is null || only.Contains(s.Name)) && Folder(app, s) is { } folder
                ? s with { Env = s.Env.SetItem(EnvName, digests.TryGetValue(folder, out var d) ? d : digests[folder] = Digest(folder)) }
                : s)],
        };
    }

    /// <summary>The app with each built service stamped as the running service is (<paramref name="running"/>: service → its
    /// spec from the API), so a plain apply after an <c>--build</c> does not roll out for the stamp alone.</summary>
    public static Application CarryOver(Application app, IReadOnlyDictionary<string, JsonNode?> running) => app with
    {
        Services = [.. app.Services.Select(s =>
        {
            if (!running.TryGetValue(s.Name, out var spec))
            {
                return s;
            }

            if (Folder(app, s) is not null && spec?["env"]?[EnvName]?.GetValue<string>() is { } stamp)
            {
                s = s with { Env = s.Env.SetItem(EnvName, stamp) };
            }

            return spec?["env"]?[RestartEnvName]?.GetValue<string>() is { } restarted ? s with { Env = s.Env.SetItem(RestartEnvName, restarted) } : s;
        })],
    };

    /// <summary>Each build folder and the services built in it.</summary>
    public static IReadOnlyDictionary<string, List<string>> Folders(Application app)
    {
        var folders = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        foreach (var s in app.Services)
        {
            if (Folder(app, s) is { } folder)
            {
                (folders.TryGetValue(folder, out var list) ? list : folders[folder] = []).Add(s.Name);
            }
        }

        return folders;
    }

    /// <summary>Whether <paramref name="path"/> inside <paramref name="folder"/> is outside what the digest covers.</summary>
    public static bool IsSkipped(string folder, string path) =>
        Path.GetRelativePath(folder, path).Split(Path.DirectorySeparatorChar).SkipLast(1).Any(d => Skipped.Contains(d) || d.StartsWith('.'));

    /// <summary>The folder a service's build works in, or null when it has no build.</summary>
    internal static string? Folder(Application app, Service s)
    {
        if (s.Build is not { } build || (build.Command.IsDefaultOrEmpty && build.Context is null))
        {
            return null;
        }

        var dir = build.WorkingDir ?? build.Context ?? app.BaseDirectory;
        return Path.GetFullPath(Path.IsPathRooted(dir) ? dir : Path.Combine(app.BaseDirectory, dir));
    }

    /// <summary>SHA-256 over each file's relative path, length and last write time, in path order: a build that rewrites
    /// an output changes it, an incremental build that copies nothing does not.</summary>
    internal static string Digest(string folder)
    {
        if (!Directory.Exists(folder))
        {
            return "none";
        }

        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var options = new EnumerationOptions { RecurseSubdirectories = false, IgnoreInaccessible = true, AttributesToSkip = FileAttributes.ReparsePoint };
        var pending = new Stack<string>([folder]);
        var files = new List<FileInfo>();
        while (pending.TryPop(out var dir))
        {
            foreach (var sub in Directory.EnumerateDirectories(dir, "*", options))
            {
                if (!Skipped.Contains(Path.GetFileName(sub)) && !Path.GetFileName(sub).StartsWith('.'))
                {
                    pending.Push(sub);
                }
            }

            files.AddRange(Directory.EnumerateFiles(dir, "*", options).Select(f => new FileInfo(f)));
        }

        foreach (var f in files.OrderBy(f => f.FullName, StringComparer.Ordinal))
        {
            hash.AppendData(Encoding.UTF8.GetBytes($"{Path.GetRelativePath(folder, f.FullName)}\0{f.Length}\0{f.LastWriteTimeUtc.Ticks}\n"));
        }

        return Convert.ToHexStringLower(hash.GetHashAndReset())[..16];
    }
}
