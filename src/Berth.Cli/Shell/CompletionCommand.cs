using System.CommandLine;

namespace Berth.Cli.Shell;

/// <summary><c>berth completion bash|zsh|fish|pwsh</c>: a script for the shell that asks berth itself what may come next
/// (System.CommandLine's <c>[suggest:POSITION]</c> directive), so completions always match the installed berth.</summary>
internal static class CompletionCommand
{
    public static Command Create()
    {
        var shell = new Argument<string>("SHELL") { Description = "bash, zsh, fish or pwsh." }.AcceptOnlyFromAmong("bash", "zsh", "fish", "pwsh");
        var command = new Command("completion", "Print a shell completion script: 'source <(berth completion bash)' (add it to ~/.bashrc), "
            + "'berth completion zsh > \"${fpath[1]}/_berth\"', 'berth completion fish | source', 'berth completion pwsh | Out-String | Invoke-Expression'.")
        {
            shell,
        };
        command.SetAction(parse =>
        {
            Console.Out.Write(Script(parse.GetValue(shell)!));
            return ExitCodes.Ok;
        });
        return command;
    }

    internal static string Script(string shell) => shell switch
    {
        "bash" => """
            # berth completion for bash: source <(berth completion bash)
            _berth_complete() {
                local line="${COMP_LINE:0:COMP_POINT}"
                local IFS=$'\n'
                COMPREPLY=($(compgen -W "$(berth "[suggest:${#line}]" "$line" 2>/dev/null)" -- "${COMP_WORDS[COMP_CWORD]}"))
            }
            complete -o default -F _berth_complete berth

            """,
        "zsh" => """
            #compdef berth
            # berth completion for zsh: berth completion zsh > "${fpath[1]}/_berth", or source <(berth completion zsh)
            _berth() {
                local line="${(j: :)words[1,CURRENT]}"
                local -a candidates
                candidates=("${(@f)$(berth "[suggest:${#line}]" "$line" 2>/dev/null)}")
                compadd -a candidates
            }
            compdef _berth berth

            """,
        "fish" => """
            # berth completion for fish: berth completion fish | source
            function __berth_complete
                set -l line (commandline -cp)
                berth "[suggest:"(string length -- "$line")"]" "$line" 2>/dev/null
            end
            complete -c berth -f -a '(__berth_complete)'

            """,
        "pwsh" => """
            # berth completion for PowerShell: berth completion pwsh | Out-String | Invoke-Expression
            Register-ArgumentCompleter -Native -CommandName berth -ScriptBlock {
                param($wordToComplete, $commandAst, $cursorPosition)
                $line = $commandAst.ToString()
                if ($cursorPosition -lt $line.Length) { $line = $line.Substring(0, $cursorPosition) }
                berth "[suggest:$($line.Length)]" "$line" 2>$null | ForEach-Object {
                    [System.Management.Automation.CompletionResult]::new($_, $_, 'ParameterValue', $_)
                }
            }

            """,
        _ => throw new ArgumentOutOfRangeException(nameof(shell), shell, "bash, zsh, fish or pwsh"),
    };
}
