using System.Globalization;
using Berth.Core.Model;

namespace Berth.Runtime;

/// <summary>Writes a replica's secrets and configs as files under its state folder, with their mode and owner, for a
/// driver to mount (Docker) or to point the process at (process driver). The folder is readable by its owner only.</summary>
internal static partial class MountedFiles
{
    /// <summary>0444, world-readable, as Compose's default for secrets and configs.</summary>
    public const int DefaultMode = 0b100_100_100;

    /// <summary>Writes each file; returns (file, host path) in spec order.</summary>
    public static async Task<IReadOnlyList<(MountedFile File, string HostPath)>> WriteAsync(ReplicaSpec spec, CancellationToken cancellationToken)
    {
        if (spec.Files.IsDefaultOrEmpty)
        {
            return [];
        }

        var root = Path.Combine(Path.GetFullPath(spec.StateDirectory), "files");
        Directory.CreateDirectory(root);
        SetMode(root, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var written = new List<(MountedFile, string)>();
        foreach (var file in spec.Files)
        {
            var dir = Path.Combine(root, file.Kind == MountedFileKind.Secret ? "secrets" : "configs");
            Directory.CreateDirectory(dir);
            var path = Path.Combine(dir, file.Name);
            if (File.Exists(path))
            {
                SetMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            }

            if (file.SourceFile is { } source)
            {
                try
                {
                    File.Copy(source, path, overwrite: true);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    throw new ReplicaStartException($"replica {spec.ReplicaId}: {file.Kind.ToString().ToLowerInvariant()} {file.Name} cannot be read from {source}: {e.Message}", e);
                }
            }
            else
            {
                await File.WriteAllTextAsync(path, file.Content ?? "", cancellationToken).ConfigureAwait(false);
            }

            if (file.Uid is not null || file.Gid is not null)
            {
                Chown(path, file, spec.ReplicaId);
            }

            SetMode(path, (UnixFileMode)(file.Mode ?? DefaultMode));
            written.Add((file, path));
        }

        return written;
    }

    private static void SetMode(string path, UnixFileMode mode)
    {
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(path, mode);
        }
    }

    private static void Chown(string path, MountedFile file, string replicaId)
    {
        static int Id(string? text) => text is null ? -1 : int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var id) ? id : -2;
        var (uid, gid) = (Id(file.Uid), Id(file.Gid));
        if (uid == -2 || gid == -2)
        {
            throw new ReplicaStartException($"replica {replicaId}: {file.Name} has uid '{file.Uid}' / gid '{file.Gid}'; give numeric ids (names are resolved inside the image, which Berth cannot do)");
        }

        if (Native.Chown(path, uid, gid) != 0)
        {
            throw new ReplicaStartException($"replica {replicaId}: {file.Name} cannot be given uid {file.Uid ?? "-"} / gid {file.Gid ?? "-"} (chown failed with errno {System.Runtime.InteropServices.Marshal.GetLastPInvokeError()}); run the control plane as root, or leave uid/gid out");
        }
    }

    private static partial class Native
    {
        [System.Runtime.InteropServices.LibraryImport("libc", EntryPoint = "chown", SetLastError = true, StringMarshalling = System.Runtime.InteropServices.StringMarshalling.Utf8)]
        public static partial int Chown(string path, int owner, int group);
    }
}
