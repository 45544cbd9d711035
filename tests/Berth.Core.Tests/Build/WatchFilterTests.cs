using Berth.Core.Build;
using Berth.Core.Model;

namespace Berth.Core.Tests.Build;

/// <summary>Which changes a watch rule acts on: an editor's (or sed's) temporary file is not a change, the file it is saved to is.</summary>
public class WatchFilterTests
{
    private static readonly string Folder = Path.Combine(Path.GetTempPath(), "berth-watch-filter");

    private static readonly WatchFilter Filter = new(new WatchRule { Action = WatchAction.Rebuild, Path = Folder }, buildContext: null);

    [Theory]
    [InlineData("app/sedAb12Cd")] // GNU sed -i: sedXXXXXX beside the file, renamed over it
    [InlineData("sed0zZ9aQ")]
    [InlineData("app/.Program.cs.swp")]
    [InlineData("app/Program.cs~")]
    [InlineData("app/4913")]
    [InlineData("app/.#Program.cs")]
    [InlineData("app/#Program.cs#")]
    [InlineData("app/Program.cs___jb_tmp___")]
    public void Matches_EditorOrSedTemporaryFile_IsNotAChange(string relative) =>
        Assert.False(Filter.Matches(Path.Combine(Folder, relative)));

    [Theory]
    [InlineData("app/Program.cs")]
    [InlineData("app/sed.cs")]
    [InlineData("app/sedAb12C")] // five after "sed": not sed's name
    [InlineData("app/sedAb12Cde")] // seven
    [InlineData("app/sedAb12C.cs")]
    [InlineData("app/xsedAb12Cd")]
    public void Matches_OrdinaryFile_IsAChange(string relative) =>
        Assert.True(Filter.Matches(Path.Combine(Folder, relative)));
}
