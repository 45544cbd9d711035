namespace Berth.Cli.Tests.Shell;

/// <summary>Usage errors through the real berth: "did you mean" for mistyped commands and options, plain words for bad option values.</summary>
public sealed class UsageErrorTests
{
    private readonly BerthCli _cli = new(Repository.Path("."));

    [Theory]
    [InlineData(new[] { "sclae", "api=3" }, "berth: 'sclae' is not a berth command; did you mean 'scale'?\nRun 'berth --help' for usage.\n")]
    [InlineData(new[] { "rollout", "stauts", "api" }, "berth rollout: 'stauts' is not a berth rollout command; did you mean 'status'?\nRun 'berth rollout --help' for usage.\n")]
    [InlineData(new[] { "frobnicate" }, "berth: 'frobnicate' is not a berth command; see the list in 'berth --help'\nRun 'berth --help' for usage.\n")]
    [InlineData(new[] { "ps", "--otput", "json" }, "berth ps: unknown option '--otput'; did you mean '--output'?\nRun 'berth ps --help' for usage.\n")]
    [InlineData(new[] { "logs", "-n", "abc", "api" }, "berth logs: --tail wants a whole number (e.g. 100), not 'abc'\nRun 'berth logs --help' for usage.\n")]
    [InlineData(new[] { "events", "--limit", "ten" }, "berth events: --limit wants a whole number (e.g. 100), not 'ten'\nRun 'berth events --help' for usage.\n")]
    public async Task Parse_BadCommandLine_SaysWhatToTypeAndExits2(string[] args, string expected)
    {
        var result = await _cli.RunAsync(args);

        Assert.Equal(ExitCodes.Usage, result.Code);
        Assert.Equal("", result.Out);
        Assert.Equal(expected, result.Err);
    }

    [Fact]
    public async Task Completion_UnknownShell_ListsTheShells()
    {
        var result = await _cli.RunAsync("completion", "tcsh");

        Assert.Equal(ExitCodes.Usage, result.Code);
        Assert.Equal("berth completion: SHELL wants one of bash, zsh, fish, pwsh; not 'tcsh'\nRun 'berth completion --help' for usage.\n", result.Err);
    }
}
