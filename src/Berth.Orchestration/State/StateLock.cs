namespace Berth.Orchestration.State;

/// <summary>The exclusive lock one control plane holds on its state folder for its whole life, so two never run for the
/// same app (as kubelet's <c>--lock-file</c> and Nomad's data-dir lock).</summary>
/// <remarks>.NET opens a file with <see cref="FileShare.None"/> by taking <c>flock(LOCK_EX | LOCK_NB)</c> on it, so the lock is
/// the kernel's: it goes with the process (even on SIGKILL) and other tools (<c>flock -n</c>) see it.</remarks>
public sealed class StateLock : IDisposable
{
    /// <summary>The lock file in the state folder.</summary>
    public const string FileName = "control-plane.lock";

    private readonly FileStream _file;

    private StateLock(FileStream file, string path)
    {
        _file = file;
        Path = path;
    }

    public string Path { get; }

    /// <summary>Takes the lock, or returns null when another control plane holds it. On a read-only folder the existing
    /// lock file is opened for reading (flock needs no write access), so <c>berth down</c> can still take it there.</summary>
    public static StateLock? TryAcquire(string stateDirectory)
    {
        var path = System.IO.Path.Combine(stateDirectory, FileName);
        try
        {
            StateFolder.EnsurePrivate(stateDirectory);
            return Open(path, FileAccess.ReadWrite);
        }
        catch (Exception e) when (e is UnauthorizedAccessException || (e is IOException && e.HResult == ReadOnlyFileSystem))
        {
            if (!File.Exists(path))
            {
                throw StateStoreException.From(e, path)!;
            }

            return Open(path, FileAccess.Read);
        }
    }

    private const int ReadOnlyFileSystem = 30; // EROFS: .NET's HResult for an unmapped errno is the errno

    private static StateLock? Open(string path, FileAccess access)
    {
        try
        {
            var options = new FileStreamOptions { Mode = access == FileAccess.Read ? FileMode.Open : FileMode.OpenOrCreate, Access = access, Share = FileShare.None };
            if (!OperatingSystem.IsWindows() && access != FileAccess.Read)
            {
                options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
            }

            return new StateLock(new FileStream(path, options), path);
        }
        catch (IOException e) when (e.HResult != ReadOnlyFileSystem && File.Exists(path))
        {
            return null;
        }
    }

    public void Dispose() => _file.Dispose();
}
