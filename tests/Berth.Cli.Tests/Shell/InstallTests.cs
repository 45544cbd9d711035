using System.Text.RegularExpressions;

namespace Berth.Cli.Tests.Shell;

/// <summary>Installing berth as a user would: the package packed to a local feed, <c>dotnet tool install -g berth --add-source FEED</c>
/// into a HOME of its own, then the installed <c>berth</c> answering, and its bash completion asked through a real bash.</summary>
public sealed partial class InstallTests : IDisposable
{
    private readonly string _home = Directory.CreateTempSubdirectory("berth-install-").FullName;

    public void Dispose() => Directory.Delete(_home, recursive: true);

    [Fact]
    public async Task ToolInstallGlobal_FromLocalFeed_BerthAnswersAndCompletes()
    {
        // The configuration the tests were built in (bin/<Configuration>/net10.0): pack what is built, as CI has it.
        var configuration = new DirectoryInfo(AppContext.BaseDirectory).Parent!.Name;
        var feed = Path.Combine(_home, "feed");
        var pack = await RunAsync("dotnet", ["pack", Repository.Path("src/Berth.Cli"), "--no-build", "-c", configuration, "-o", feed, "--nologo", "-v", "q"]);
        Assert.True(pack.Code == 0, $"dotnet pack: {pack}");
        Assert.Single(Directory.GetFiles(feed, "berth.*.nupkg"));

        var install = await RunAsync("dotnet", ["tool", "install", "-g", "berth", "--add-source", feed]);
        Assert.True(install.Code == 0, $"dotnet tool install: {install}");
        Assert.Contains("You can invoke the tool using the following command: berth", install.Out, StringComparison.Ordinal);

        var berth = Path.Combine(_home, ".dotnet", "tools", "berth");
        var version = await RunAsync(berth, ["--version"]);
        Assert.Equal(0, version.Code);
        Assert.Matches(VersionLine(), version.Out);

        // Tab after 'berth sc' and after 'berth ps --o', through the script 'berth completion bash' prints, in a real bash.
        var completed = await RunAsync("bash", ["-c", """
            source <(berth completion bash)
            COMP_LINE='berth sc'; COMP_POINT=${#COMP_LINE}; COMP_WORDS=(berth sc); COMP_CWORD=1
            _berth_complete; echo "${COMPREPLY[*]}"
            COMP_LINE='berth ps --o'; COMP_POINT=${#COMP_LINE}; COMP_WORDS=(berth ps --o); COMP_CWORD=2
            _berth_complete; echo "${COMPREPLY[*]}"
            """]);
        Assert.True(completed.Code == 0, completed.ToString());
        Assert.Equal("scale\n--output\n", completed.Out);
    }

    [GeneratedRegex(@"^\d+\.\d+\.\d+(\+[0-9a-f]+)?\n$")]
    private static partial Regex VersionLine();

    private async Task<CliResult> RunAsync(string program, string[] args)
    {
        var info = ChildProcess.Start(program, args);

        // A HOME (and so ~/.dotnet/tools and the NuGet caches) of its own: the machine's tools stay as they were.
        info.Environment["HOME"] = _home;
        info.Environment["DOTNET_CLI_HOME"] = _home;
        info.Environment["NUGET_PACKAGES"] = Path.Combine(_home, "packages");
        info.Environment["PATH"] = $"{Path.Combine(_home, ".dotnet", "tools")}:{Environment.GetEnvironmentVariable("PATH")}";
        info.Environment["DOTNET_NOLOGO"] = "1";
        info.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        info.Environment["NO_COLOR"] = "1";
        var (exit, stdout, stderr) = await ChildProcess.RunAsync(info, TimeSpan.FromMinutes(5), $"{program} {string.Join(' ', args)}");
        return new CliResult(exit, stdout, stderr);
    }
}
