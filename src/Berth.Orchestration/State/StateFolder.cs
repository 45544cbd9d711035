namespace Berth.Orchestration.State;

/// <summary>Keeps the state folder private to its owner: 0700, its files 0600, as kubelet keeps /var/lib/kubelet and
/// Docker /var/lib/docker (0700/0710). The store holds the app's environment, secrets included, and the API token.</summary>
public static class StateFolder
{
    private const UnixFileMode FolderMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    private const UnixFileMode FileMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    /// <summary>Creates the folder 0700, or narrows an existing one (made by an older Berth with the umask's 0755) to 0700.</summary>
    public static void EnsurePrivate(string directory)
    {
        if (OperatingSystem.IsWindows())
        {
            Directory.CreateDirectory(directory);
            return;
        }

        Directory.CreateDirectory(directory, FolderMode);
        if (File.GetUnixFileMode(directory) != FolderMode)
        {
            File.SetUnixFileMode(directory, FolderMode);
        }
    }

    /// <summary>Narrows each existing file to 0600.</summary>
    public static void MakePrivate(params string[] files)
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        foreach (var file in files.Where(File.Exists))
        {
            if (File.GetUnixFileMode(file) != FileMode)
            {
                File.SetUnixFileMode(file, FileMode);
            }
        }
    }

    /// <summary>Creates an empty file 0600 if it is not there, so what opens it next (SQLite) keeps that mode and gives it to
    /// the files it makes beside it (the WAL and shared-memory files take the database's mode).</summary>
    public static void CreatePrivate(string file)
    {
        if (OperatingSystem.IsWindows() || File.Exists(file))
        {
            return;
        }

        using var _ = new FileStream(file, new FileStreamOptions { Mode = System.IO.FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = FileMode });
    }

    /// <summary>Writes a new file that is 0600 from its first byte (never briefly readable by others); throws
    /// <see cref="IOException"/> when it exists already.</summary>
    public static void WriteNewPrivate(string file, ReadOnlySpan<byte> content)
    {
        using var stream = OperatingSystem.IsWindows()
            ? new FileStream(file, System.IO.FileMode.CreateNew, FileAccess.Write)
            : new FileStream(file, new FileStreamOptions { Mode = System.IO.FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = FileMode });
        stream.Write(content);
        stream.Flush(flushToDisk: true);
    }
}
