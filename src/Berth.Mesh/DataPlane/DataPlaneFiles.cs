using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Berth.Mesh.DataPlane;

/// <summary>
/// The data plane's files in the app's state folder (<c>.berth/</c>): the channel token (0600, made by the control
/// plane), the running data plane's record (pid, socket, admin address), its last applied snapshot and its log.
/// </summary>
public static class DataPlaneFiles
{
    /// <summary>The channel's token, 0600, as the API's: whoever can read it may configure the data plane.</summary>
    public const string TokenFile = "data-plane-token";

    /// <summary>The running data plane: <see cref="DataPlaneInfo"/> as JSON, written once it listens.</summary>
    public const string InfoFile = "data-plane.json";

    /// <summary>The standby data plane (<see cref="DataPlaneInfo"/>): started and warm, serving nothing until it is sent a
    /// snapshot — which the control plane does the moment the active one dies, or to hand over during an upgrade.</summary>
    public const string StandbyFile = "data-plane-standby.json";

    /// <summary>The last snapshot applied (the same envelope as the channel's <c>snapshot</c>), served again at start.</summary>
    public const string RoutesFile = "data-plane-routes.json";

    public const string LogFile = "data-plane.log";

    /// <summary>Unix socket paths are limited to 108 bytes (sun_path); longer state folders get a socket in the temp folder.</summary>
    private const int MaxSocketPath = 100;

    /// <summary>The channel socket of the data plane process <paramref name="pid"/>: one per process, so an old and a new
    /// data plane can both listen during a hand-over.</summary>
    public static string SocketPath(string stateDirectory, int pid) => LocalSocket(stateDirectory, pid, "sock");

    /// <summary>The Unix socket where the data plane process <paramref name="pid"/> hands its listening sockets to its
    /// successor during an upgrade (0600, there only for the hand-over).</summary>
    public static string PassSocketPath(string stateDirectory, int pid) => LocalSocket(stateDirectory, pid, "pass.sock");

    private static string LocalSocket(string stateDirectory, int pid, string suffix)
    {
        var local = Path.Combine(Path.GetFullPath(stateDirectory), $"data-plane-{pid}.{suffix}");
        if (Encoding.UTF8.GetByteCount(local) <= MaxSocketPath)
        {
            return local;
        }

        var hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(Path.GetFullPath(stateDirectory))))[..16];
        return Path.Combine(Path.GetTempPath(), $"berth-dp-{hash}-{pid}.{suffix}");
    }

    /// <summary>Reads the token, making a new random one (0600) first when there is none.</summary>
    public static string EnsureToken(string stateDirectory)
    {
        var path = Path.Combine(stateDirectory, TokenFile);
        if (File.Exists(path))
        {
            return File.ReadAllText(path).Trim();
        }

        Directory.CreateDirectory(stateDirectory);
        var token = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));
        var temp = path + ".tmp";
        using (var stream = new FileStream(temp, PrivateFile()))
        using (var writer = new StreamWriter(stream))
        {
            writer.Write(token);
        }

        File.Move(temp, path, overwrite: true);
        return token;
    }

    /// <summary>The token, or null when the control plane has not made one.</summary>
    public static string? ReadToken(string stateDirectory)
    {
        var path = Path.Combine(stateDirectory, TokenFile);
        return File.Exists(path) ? File.ReadAllText(path).Trim() : null;
    }

    public static DataPlaneInfo? ReadInfo(string stateDirectory, string file = InfoFile)
    {
        try
        {
            return JsonSerializer.Deserialize<DataPlaneInfo>(File.ReadAllText(Path.Combine(stateDirectory, file)), DataPlaneWire.Json);
        }
        catch (Exception e) when (e is IOException or JsonException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>The data plane <paramref name="file"/> records, when its process still runs (and is a data plane: a pid is
    /// reused); null otherwise.</summary>
    public static DataPlaneInfo? ReadLive(string stateDirectory, string file = InfoFile) =>
        ReadInfo(stateDirectory, file) is { } info && IsDataPlaneProcess(info.Pid) ? info : null;

    /// <summary>Writes <paramref name="contents"/> whole or not at all (temp file, then rename), 0600.</summary>
    public static void WriteAtomically(string path, byte[] contents)
    {
        var temp = $"{path}.{Environment.ProcessId}.tmp";
        using (var stream = new FileStream(temp, PrivateFile()))
        {
            stream.Write(contents);
        }

        File.Move(temp, path, overwrite: true);
    }

    private static FileStreamOptions PrivateFile()
    {
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        return options;
    }

    /// <summary>Whether process <paramref name="pid"/> is alive and is a data plane (its command line says so), not a reused pid.</summary>
    public static bool IsDataPlaneProcess(int pid)
    {
        try
        {
            var cmdline = File.ReadAllText($"/proc/{pid}/cmdline");
            var state = File.ReadAllText($"/proc/{pid}/stat");
            // A zombie (state Z after the command's closing parenthesis) has exited; it only waits to be reaped.
            var afterName = state[(state.LastIndexOf(')') + 1)..].TrimStart();
            return cmdline.Contains(DataPlaneServer.Command, StringComparison.Ordinal) && !afterName.StartsWith('Z');
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }
}

/// <summary>The running data plane, as it records itself in <see cref="DataPlaneFiles.InfoFile"/>.</summary>
public sealed record DataPlaneInfo(int Pid, string Socket, string Admin, string Build, DateTimeOffset Started);
