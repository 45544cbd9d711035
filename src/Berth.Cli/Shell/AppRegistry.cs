using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Berth.Cli.Shell;

/// <summary>Every Berth app started on this machine, for <c>berth ls</c> and <c>-p NAME</c>: one small JSON file per state folder
/// in <c>$XDG_STATE_HOME/berth/apps</c> (default <c>~/.local/state/berth/apps</c>, the XDG base directory spec's state home),
/// written when a control plane starts. An entry whose state folder is gone is dropped when listed.</summary>
internal static class AppRegistry
{
    /// <summary>One app: its name, the spec it was started from and its state folder.</summary>
    internal sealed record Entry(string Name, string Spec, string State);

    public static string Folder
    {
        get
        {
            var stateHome = Environment.GetEnvironmentVariable("XDG_STATE_HOME") is { Length: > 0 } x
                ? x
                : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".local", "state");
            return Path.Combine(stateHome, "berth", "apps");
        }
    }

    /// <summary>Records (or updates) the app whose state folder is <paramref name="state"/>. Best effort: a registry that
    /// cannot be written never stops an app from starting.</summary>
    public static void Record(string name, string spec, string state)
    {
        try
        {
            Directory.CreateDirectory(Folder);
            var file = Path.Combine(Folder, Key(state) + ".json");
            File.WriteAllText(file + ".tmp", JsonSerializer.Serialize(new Entry(name, Path.GetFullPath(spec), Path.GetFullPath(state)), RegistryJson.Default.Entry));
            File.Move(file + ".tmp", file, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
    }

    /// <summary>The apps recorded here whose state folder still exists, by name.</summary>
    public static IReadOnlyList<Entry> List()
    {
        if (!Directory.Exists(Folder))
        {
            return [];
        }

        var entries = new List<Entry>();
        foreach (var file in Directory.EnumerateFiles(Folder, "*.json"))
        {
            try
            {
                if (JsonSerializer.Deserialize(File.ReadAllText(file), RegistryJson.Default.Entry) is { } entry && Directory.Exists(entry.State))
                {
                    entries.Add(entry);
                }
                else
                {
                    File.Delete(file);
                }
            }
            catch (Exception e) when (e is IOException or JsonException or UnauthorizedAccessException)
            {
            }
        }

        return [.. entries.OrderBy(e => e.Name, StringComparer.Ordinal).ThenBy(e => e.Spec, StringComparer.Ordinal)];
    }

    private static string Key(string state) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(Path.GetFullPath(state))))[..16];
}

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, WriteIndented = true)]
[JsonSerializable(typeof(AppRegistry.Entry))]
[JsonSerializable(typeof(List<Commands.ServiceCommands.AppListing>))]
internal sealed partial class RegistryJson : JsonSerializerContext;
