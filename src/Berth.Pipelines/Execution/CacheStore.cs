using Berth.Pipelines.Definition;

namespace Berth.Pipelines.Execution;

/// <summary>
/// Job caches in <c>.berth/pipelines/cache/</c>: an exact key hit restores, else the newest entry whose key starts
/// with a restore key (as actions/cache); saved after the job succeeded when the exact key missed.
/// </summary>
internal sealed class CacheStore(string stateDirectory)
{
    private readonly string _root = Path.Combine(stateDirectory, "pipelines", "cache");

    /// <summary>Restores and returns the key that was restored, or null.</summary>
    public string? Restore(CacheDefinition cache, string key, IReadOnlyList<string> restoreKeys, string workspace, Action<string> log)
    {
        var entries = Entries();
        var hit = entries.FirstOrDefault(e => e.Key == key)
            ?? restoreKeys.Select(prefix => entries.Where(e => e.Key.StartsWith(prefix, StringComparison.Ordinal)).MaxBy(e => e.Saved)).FirstOrDefault(e => e is not null);
        if (hit is null)
        {
            log($"cache miss for key {key}");
            return null;
        }

        for (var i = 0; i < cache.Paths.Length; i++)
        {
            FileCopy.CopyTree(Path.Combine(hit.Directory, "files", i.ToString(System.Globalization.CultureInfo.InvariantCulture)), Resolve(cache.Paths[i], workspace));
        }

        log(hit.Key == key ? $"cache hit for key {key}" : $"cache restored from key {hit.Key} (restore key)");
        return hit.Key;
    }

    public void Save(CacheDefinition cache, string key, string workspace, Action<string> log)
    {
        var directory = Path.Combine(_root, FileHasher.Sha256(key)[..32]);
        var temporary = directory + ".tmp-" + Environment.ProcessId;
        if (Directory.Exists(temporary))
        {
            Directory.Delete(temporary, recursive: true);
        }

        for (var i = 0; i < cache.Paths.Length; i++)
        {
            FileCopy.CopyTree(Resolve(cache.Paths[i], workspace), Path.Combine(temporary, "files", i.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        }

        Directory.CreateDirectory(temporary);
        File.WriteAllText(Path.Combine(temporary, "key"), key);
        if (Directory.Exists(directory))
        {
            Directory.Delete(directory, recursive: true);
        }

        Directory.Move(temporary, directory);
        log($"cache saved for key {key}");
    }

    private static string Resolve(string path, string workspace) =>
        path.StartsWith("~/", StringComparison.Ordinal)
            ? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), path[2..])
            : Path.GetFullPath(path, workspace);

    private List<Entry> Entries()
    {
        if (!Directory.Exists(_root))
        {
            return [];
        }

        return Directory.EnumerateDirectories(_root)
            .Where(d => File.Exists(Path.Combine(d, "key")))
            .Select(d => new Entry(File.ReadAllText(Path.Combine(d, "key")), d, Directory.GetLastWriteTimeUtc(d)))
            .ToList();
    }

    private sealed record Entry(string Key, string Directory, DateTime Saved);
}
