using Berth.Cli.Watch;

namespace Berth.Cli.Tests.Shell;

/// <summary>dotnet watch's lines (as .NET SDK 10.0.401 prints them with DOTNET_WATCH_SUPPRESS_EMOJIS=1) read as a verdict; the last one wins.</summary>
public class HotReloadVerdictTests
{
    [Theory]
    [InlineData("dotnet watch : C# and Razor changes applied in 919ms.", "Applied")]
    [InlineData("dotnet watch : [Devloop (net10.0)] /app/Program.cs(2,21): error CS0103: The name 'x' does not exist in the current context", "CompileError")]
    [InlineData("dotnet watch : Restart is needed to apply the changes.", "RestartNeeded")]
    [InlineData("dotnet watch : [Devloop (net10.0)] Exited with error code 134", "RestartNeeded")]
    [InlineData("dotnet watch : [Devloop (net10.0)] /app/Program.cs(4,1): error ENC0015: Updating the kind of a type requires restarting the application.", "RestartNeeded")]
    [InlineData("dotnet watch : File updated: ./Program.cs", "None")]
    [InlineData("info: the app says changes applied", "None")]
    public void Of_OneLine(string line, string expected) => Assert.Equal(expected, HotReloadVerdict.Of(line).Outcome.ToString());

    [Fact]
    public void Of_ACompileErrorThenASaveThatFixesIt_EachVerdictOnItsLineTheRestNone()
    {
        // berth watch acts on the first verdict after a change; the fixing save is a change of its own, answered by the later line.
        var verdicts = new[]
        {
            "dotnet watch : File updated: ./Program.cs",
            "dotnet watch : [Devloop (net10.0)] /app/Program.cs(2,21): error CS1002: ; expected",
            "dotnet watch : File updated: ./Program.cs",
            "dotnet watch : C# and Razor changes applied in 221ms.",
        }.Select(HotReloadVerdict.Of).ToList();

        Assert.Equal(
            [(HotReloadOutcome.None, ""), (HotReloadOutcome.CompileError, "[Devloop (net10.0)] /app/Program.cs(2,21): error CS1002: ; expected"), (HotReloadOutcome.None, ""),
             (HotReloadOutcome.Applied, "C# and Razor changes applied in 221ms.")],
            verdicts);
    }
}
