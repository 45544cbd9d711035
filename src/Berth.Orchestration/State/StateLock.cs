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

    /// <summary>Takes the lock, or returns null when another control plane holds it.</summary>
    public static StateLock? TryAcquire(string stateDirectory)
    {
        StateFolder.EnsurePrivate(stateDirectory);
        var path = System.IO.Path.Combine(stateDirectory, FileName);
        try
        {
            var options = new FileStreamOptions { Mode = FileMode.OpenOrCreate, Access = FileAccess.ReadWrite, Share = FileShare.None };
            if (!OperatingSystem.IsWindows())
            {
                options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
            }

            return new StateLock(new FileStream(path, options), path);
        }
        catch (IOException) when (File.Exists(path))
        {
            return null;
        }
    }

    public void Dispose() => _file.Dispose();
}
