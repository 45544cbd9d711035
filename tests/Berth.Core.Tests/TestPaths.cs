namespace Berth.Core.Tests;

/// <summary>Paths into the repository, found from the test assembly's folder.</summary>
internal static class TestPaths
{
    public static string Root { get; } = FindRoot();

    public static string Repo(string relative) => Path.GetFullPath(Path.Combine(Root, relative));

    private static string FindRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Berth.slnx")))
        {
            dir = dir.Parent;
        }

        return dir?.FullName ?? throw new InvalidOperationException("Berth.slnx not found above " + AppContext.BaseDirectory);
    }
}
