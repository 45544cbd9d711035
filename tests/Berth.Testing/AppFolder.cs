namespace Berth.Testing;

/// <summary>The spec-file fixture of the tests that run the real <c>berth</c>: a temporary app folder, its <c>berth.yaml</c>,
/// the CLI that runs in it, and on dispose the app taken down whatever state the test left it in
/// (<see cref="BerthCli.DownAsync"/>) before the folder is deleted.</summary>
public sealed class AppFolder : IAsyncDisposable, IDisposable
{
    public AppFolder(string prefix, string? spec = null)
    {
        Path = Directory.CreateTempSubdirectory(prefix).FullName;
        Name = $"{(prefix.StartsWith("berth-", StringComparison.Ordinal) ? prefix["berth-".Length..] : prefix).Trim('-')}-{Guid.NewGuid().ToString("N")[..8]}";
        Cli = new BerthCli(Path);
        if (spec is not null)
        {
            WriteSpec(spec);
        }
    }

    /// <summary>The folder's full path (the app's project directory).</summary>
    public string Path { get; }

    /// <summary>An app name for this folder's spec, unique to this instance (so tests running at once never share an app's
    /// cgroups or registry entry): the prefix without a leading "berth-", then 8 hex digits, e.g. "e2e-ship-1f0c9a2b".</summary>
    public string Name { get; }

    /// <summary>The <c>berth</c> runner for this folder.</summary>
    public BerthCli Cli { get; }

    /// <summary>The app's state folder (<c>.berth</c> beside the spec).</summary>
    public string State => Cli.State;

    /// <summary>The full path of <paramref name="name"/> in the folder.</summary>
    public string File(string name) => System.IO.Path.Combine(Path, name);

    /// <summary>Writes <paramref name="text"/> to <paramref name="name"/> (relative to the folder) and returns the file's full path.</summary>
    public string Write(string name, string text)
    {
        var path = File(name);
        System.IO.File.WriteAllText(path, text);
        return path;
    }

    /// <summary>(Re)writes <c>berth.yaml</c>.</summary>
    public string WriteSpec(string yaml) => Write("berth.yaml", yaml);

    public async ValueTask DisposeAsync()
    {
        try
        {
            await Cli.DownAsync();
        }
        finally
        {
            Directory.Delete(Path, recursive: true);
        }
    }

    /// <summary>For a test class with a synchronous Dispose.</summary>
    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();
}
