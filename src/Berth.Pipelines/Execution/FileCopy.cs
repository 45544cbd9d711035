namespace Berth.Pipelines.Execution;

/// <summary>Copies files and folder trees (artifacts, caches) preserving relative paths.</summary>
internal static class FileCopy
{
    public static void CopyTree(string source, string destination)
    {
        if (File.Exists(source))
        {
            Directory.CreateDirectory(Path.GetDirectoryName(destination)!);
            CopyFile(source, destination);
            return;
        }

        if (!Directory.Exists(source))
        {
            return;
        }

        Directory.CreateDirectory(destination);
        foreach (var file in Directory.EnumerateFiles(source, "*", SearchOption.AllDirectories))
        {
            var target = Path.Combine(destination, Path.GetRelativePath(source, file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            CopyFile(file, target);
        }
    }

    /// <summary>Copies beside the target, then renames over it: matrix siblings receive the same artifacts into one
    /// shared workspace at once, and a reader must see the old file or the new one whole, never one being truncated.</summary>
    private static void CopyFile(string source, string destination)
    {
        var temporary = $"{destination}.{Guid.NewGuid():N}.berth-tmp";
        try
        {
            File.Copy(source, temporary, overwrite: false);
            File.Move(temporary, destination, overwrite: true);
        }
        finally
        {
            File.Delete(temporary);
        }
    }

    /// <summary>A job key such as "test (Debug, linux)" as a folder name.</summary>
    public static string SafeName(string key) =>
        string.Concat(key.Select(c => char.IsLetterOrDigit(c) || c is '-' or '_' or '.' ? c : '_'));
}
