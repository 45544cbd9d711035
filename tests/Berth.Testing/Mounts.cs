using System.Diagnostics;

namespace Berth.Testing;

/// <summary>A fact that mounts file systems (a small tmpfs for a full disk, a read-only bind): needs root, which CI is.
/// Skips with the reason elsewhere; under BERTH_REQUIRE_NO_SKIPS=1 test.sh counts the skip as a failure.</summary>
public sealed class RootFactAttribute : FactAttribute
{
    public RootFactAttribute()
    {
        if (Environment.UserName != "root")
        {
            Skip = "mounts a tmpfs or a read-only bind over a state folder, which needs root (CI runs as root)";
        }
    }
}

/// <summary>A mount made by a test over one folder, undone on dispose (lazily, so a process still in it cannot keep it).</summary>
public sealed class Mount : IDisposable
{
    private Mount(string path) => Path = path;

    public string Path { get; }

    /// <summary>A tmpfs of <paramref name="kibibytes"/> KiB, mode 0700, over <paramref name="folder"/> (created if missing): a
    /// disk that fills up in a moment and is freed by deleting a file.</summary>
    public static Mount SmallTmpfs(string folder, int kibibytes)
    {
        Directory.CreateDirectory(folder);
        Run("mount", "-t", "tmpfs", "-o", $"size={kibibytes}k,mode=0700", "tmpfs", folder);
        return new Mount(folder);
    }

    /// <summary><paramref name="folder"/> made read-only in place (a read-only bind of itself), its content unchanged.</summary>
    public static Mount ReadOnly(string folder)
    {
        Run("mount", "--bind", "-o", "ro", folder, folder);
        return new Mount(folder);
    }

    /// <summary>Fills the mount's file system with one file (<c>fill</c>) until it is full; <see cref="Free"/> deletes it.</summary>
    public void Fill()
    {
        using var file = new FileStream(System.IO.Path.Combine(Path, "fill"), FileMode.Create, FileAccess.Write, FileShare.None, bufferSize: 0);
        var block = new byte[4096];
        try
        {
            // Bounded: a tmpfs of at most a few MiB fills long before this.
            for (var i = 0; i < 1 << 20; i++)
            {
                file.Write(block);
            }

            file.Flush();
        }
        catch (IOException)
        {
            // ENOSPC: full, as wanted.
        }
    }

    /// <summary>Deletes the filler: the disk has room again.</summary>
    public void Free() => File.Delete(System.IO.Path.Combine(Path, "fill"));

    /// <summary>Free bytes on the mount's file system.</summary>
    public long Available => new DriveInfo(Path).AvailableFreeSpace;

    public void Dispose() => Run("umount", "-l", Path);

    private static void Run(string file, params string[] args)
    {
        using var p = Process.Start(new ProcessStartInfo(file, args) { RedirectStandardError = true, RedirectStandardOutput = true })!;
        var err = p.StandardError.ReadToEnd();
        p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0)
        {
            throw new InvalidOperationException($"{file} {string.Join(' ', args)} failed ({p.ExitCode}): {err}");
        }
    }
}
