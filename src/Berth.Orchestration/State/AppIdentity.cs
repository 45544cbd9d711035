using System.Security.Cryptography;

namespace Berth.Orchestration.State;

/// <summary>An app's identity beside its name (issue #14 §6): a random id made once and kept in the state folder
/// (<c>.berth/app-id</c>), put on every container as the <c>berth.app-id</c> label. Two apps may share a name (two
/// checkouts of one repository, as two Compose projects in folders of the same name); the id keeps each control plane's
/// adoption and orphan collection to its own containers, as Kubernetes matches owned objects by the owner's UID rather
/// than by its name.</summary>
public static class AppIdentity
{
    public const string FileName = "app-id";

    /// <summary>The id kept in <paramref name="stateDirectory"/>, made (128 random bits, hex) the first time.</summary>
    public static string LoadOrCreate(string stateDirectory)
    {
        var path = Path.Combine(stateDirectory, FileName);
        if (Read(path) is { } existing)
        {
            return existing;
        }

        StateFolder.EnsurePrivate(stateDirectory);
        var id = RandomNumberGenerator.GetHexString(32, lowercase: true);
        var temp = $"{path}.{Environment.ProcessId}.tmp";
        File.WriteAllText(temp, id + "\n");
        StateFolder.MakePrivate(temp);
        try
        {
            // Never replace an id another process wrote meanwhile: the first one stays the app's.
            File.Move(temp, path, overwrite: false);
            return id;
        }
        catch (IOException) when (Read(path) is { } winner)
        {
            File.Delete(temp);
            return winner;
        }
    }

    private static string? Read(string path)
    {
        try
        {
            var text = File.ReadAllText(path).Trim();
            return text.Length > 0 ? text : null;
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }
    }
}
