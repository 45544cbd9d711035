namespace Berth.Cli.Tests.Shell;

/// <summary><c>berth completion zsh|fish|pwsh</c> loaded in the real shells (bash is in <see cref="InstallTests"/>): each script
/// loads without a word on stderr and hands the shell what berth suggests for <c>berth sc</c> and <c>berth ps --o</c>.
/// PowerShell is not packaged by Debian: its script is checked for shape and for the very call it makes.</summary>
public sealed class CompletionTests : IDisposable
{
    private readonly string _home = Directory.CreateTempSubdirectory("berth-completion-").FullName;

    public void Dispose() => Directory.Delete(_home, recursive: true);

    [ShellFact("zsh")]
    public async Task Zsh_ScriptLoadedWithCompinit_HandsCompaddWhatBerthSuggests()
    {
        // compinit for real (compdef must exist and register _berth); compadd captured, since it only works inside a completion
        // widget — zsh itself narrows the candidates to the word's prefix there.
        var result = await RunAsync("zsh", "-f", "-c", """
            autoload -Uz compinit && compinit -u -d "$HOME/.zcompdump"
            source <(berth completion zsh)
            print -- "registered: ${_comps[berth]}"
            compadd() { [[ $1 == -a ]] && print -l -- "${(@P)2}" }
            words=(berth sc); CURRENT=2; _berth
            words=(berth ps --o); CURRENT=3; _berth
            """);

        Assert.Equal("", result.Err);
        Assert.Equal(0, result.Code);
        Assert.Equal("registered: _berth\nscale\ndescribe\n--output\n", result.Out);
    }

    [ShellFact("fish")]
    public async Task Fish_ScriptSourced_CompletesCommandsAndOptions()
    {
        var result = await RunAsync("fish", "--no-config", "-c", """
            berth completion fish | source
            complete -C 'berth sc'
            complete -C 'berth ps --o'
            """);

        Assert.Equal("", result.Err);
        Assert.Equal(0, result.Code);
        Assert.Equal("scale\n--output\n", result.Out);
    }

    [Fact]
    public async Task Pwsh_Script_RegistersANativeCompleterThatAsksBerthAsTheShellWould()
    {
        var script = await RunAsync("berth", "completion", "pwsh");
        Assert.Equal(0, script.Code);
        Assert.Contains("Register-ArgumentCompleter -Native -CommandName berth -ScriptBlock {", script.Out, StringComparison.Ordinal);
        Assert.Contains("berth \"[suggest:$($line.Length)]\" \"$line\" 2>$null | ForEach-Object {", script.Out, StringComparison.Ordinal);
        Assert.Contains("[System.Management.Automation.CompletionResult]::new($_, $_, 'ParameterValue', $_)", script.Out, StringComparison.Ordinal);
        Assert.Equal(script.Out.Count(c => c == '{'), script.Out.Count(c => c == '}'));

        // What the script block runs for 'berth sc<TAB>' (the line up to the cursor, and its length); PowerShell then keeps
        // the results that start with the word, as its native completion does.
        var asked = await RunAsync("berth", "[suggest:8]", "berth sc");
        Assert.Equal("scale\ndescribe\n", asked.Out);
    }

    private async Task<CliResult> RunAsync(string program, params string[] args)
    {
        var info = ChildProcess.Start(program, args);

        // berth on PATH: the apphost built beside the tests; a HOME of its own so no rc file or history of the machine's is read.
        info.Environment["PATH"] = $"{AppContext.BaseDirectory}:{Environment.GetEnvironmentVariable("PATH")}";
        info.Environment["HOME"] = _home;
        info.Environment["XDG_CONFIG_HOME"] = Path.Combine(_home, ".config");
        info.Environment["XDG_DATA_HOME"] = Path.Combine(_home, ".local", "share");
        info.Environment["NO_COLOR"] = "1";
        var (exit, stdout, stderr) = await ChildProcess.RunAsync(info, TimeSpan.FromMinutes(2), $"{program} {string.Join(' ', args)}");
        return new CliResult(exit, stdout, stderr);
    }
}
