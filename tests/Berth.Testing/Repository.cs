namespace Berth.Testing;

/// <summary>Paths into the repository, found from the test assembly's folder (the one with Berth.slnx above it).</summary>
public static class Repository
{
    public static string Root { get; } = FindRoot();

    /// <summary>The full path of <paramref name="relative"/> (e.g. "samples/shop/berth.yaml") in the repository.</summary>
    public static string Path(string relative) => System.IO.Path.GetFullPath(System.IO.Path.Combine(Root, relative));

    /// <summary>Copies a sample (e.g. "samples/shop") to <paramref name="to"/> as a user would have it: sources only, none of its
    /// build output (bin/, obj/, out/) or state (.berth/).</summary>
    public static void CopySample(string relative, string to)
    {
        var from = Path(relative);
        foreach (var file in Directory.EnumerateFiles(from, "*", SearchOption.AllDirectories))
        {
            var inside = System.IO.Path.GetRelativePath(from, file).Replace('\\', '/');
            if (inside.Split('/') is var parts && parts.Any(p => p is "bin" or "obj" or "out" or ".berth" or "node_modules"))
            {
                continue;
            }

            Directory.CreateDirectory(System.IO.Path.GetDirectoryName(System.IO.Path.Combine(to, inside))!);
            File.Copy(file, System.IO.Path.Combine(to, inside));
        }
    }

    /// <summary>The repository's sample specs, relative to its root: the shop sample's berth.yaml, then every real-world
    /// Compose file under samples/compose (a folder each), in name order.</summary>
    public static TheoryData<string> SampleSpecs()
    {
        var data = new TheoryData<string> { "samples/shop/berth.yaml" };
        foreach (var dir in Directory.GetDirectories(Path("samples/compose")).Order(StringComparer.Ordinal))
        {
            data.Add($"samples/compose/{System.IO.Path.GetFileName(dir)}/compose.yaml");
        }

        return data;
    }

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(System.IO.Path.Combine(dir.FullName, "Berth.slnx")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException($"no Berth.slnx above {AppContext.BaseDirectory}; tests run inside the repository");
    }
}
