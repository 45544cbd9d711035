using System.Formats.Tar;
using Berth.Core.Build;
using Berth.Runtime.Docker;

namespace Berth.Runtime.Tests.Docker;

/// <summary>The build context sent to the engine honours .dockerignore as the docker CLI does.</summary>
public sealed class BuildContextTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("berth-context-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Theory]
    [InlineData("app/obj", "app/obj/x.dll", true)]
    [InlineData("app/obj", "app/obj", true)]
    [InlineData("app/obj/", "app/obj/deep/x.dll", true)]
    [InlineData("app/obj", "app/object.cs", false)]
    [InlineData("app/obj", "other/app/obj/x", false)]
    [InlineData("*.log", "a.log", true)]
    [InlineData("*.log", "logs/a.log", false)]
    [InlineData("**/*.log", "logs/deep/a.log", true)]
    [InlineData("**/*.log", "a.log", true)]
    [InlineData("/.berth", ".berth/state.db", true)]
    [InlineData("./app/out", "app/out/Shop.dll", true)]
    [InlineData("a?c", "abc", true)]
    [InlineData("a?c", "a/c", false)]
    public void IsExcluded_Pattern_MatchesAsTheDockerCli(string pattern, string path, bool excluded) =>
        Assert.Equal(excluded, BuildContext.IsExcluded(path, BuildContext.ParseIgnore([pattern])));

    [Fact]
    public void IsExcluded_ExceptionAfterExclusion_LastMatchWins()
    {
        var rules = BuildContext.ParseIgnore(["# comment", "", "*.md", "!README.md"]);
        Assert.True(BuildContext.IsExcluded("NOTES.md", rules));
        Assert.False(BuildContext.IsExcluded("README.md", rules));
        Assert.False(BuildContext.IsExcluded("app.cs", rules));
    }

    /// <summary>The names of the entries of the build context's tar made from the test folder.</summary>
    private async Task<List<string>> ContextEntriesAsync()
    {
        using var tar = await BuildContext.CreateTarAsync(_dir, CancellationToken.None);
        var names = new List<string>();
        await using var reader = new TarReader(tar);
        while (await reader.GetNextEntryAsync() is { } entry)
        {
            names.Add(entry.Name);
        }

        return names;
    }

    [Fact]
    public async Task CreateTarAsync_BerthStateFolderNotIgnored_IsLeftOutAnyway()
    {
        Write("Dockerfile", "FROM scratch\n");
        Write("app/a.txt", "a");
        Write(".berth/api-token", "secret-token");
        Write("app/.berth/state.db", "db");

        var names = await ContextEntriesAsync();

        Assert.Equal(["Dockerfile", "app/", "app/a.txt"], names.Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task CreateTarAsync_DockerIgnore_LeavesOutIgnoredKeepsTheRestAndTheDockerfile()
    {
        Write("Dockerfile", "FROM scratch\n");
        Write(".dockerignore", "app/obj\n.berth\nDockerfile\n");
        Write("app/out/Shop.dll", "dll");
        Write("app/obj/cache", "obj");
        Write(".berth/state.db", "db");

        var names = await ContextEntriesAsync();

        Assert.Equal([".dockerignore", "Dockerfile", "app/", "app/out/", "app/out/Shop.dll"], names.Order(StringComparer.Ordinal));
    }

    private void Write(string relative, string content)
    {
        var path = Path.Combine(_dir, relative);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, content);
    }
}
