namespace Berth.Pipelines.Definition;

/// <summary>
/// How a script runs, as GitHub Actions' Linux runners run it: the script goes to a file, and the shell's command
/// line has <c>{0}</c> where the file goes. Without <c>shell:</c>, <c>bash -e {0}</c>, falling back to <c>sh -e {0}</c>
/// where bash is missing (GitHub's "unspecified"); <c>shell: bash</c> adds <c>--noprofile --norc -o pipefail</c>.
/// </summary>
public static class ShellCommand
{
    /// <summary>The shell keywords GitHub documents, with its command lines.</summary>
    private static readonly Dictionary<string, string[]> Keywords = new(StringComparer.Ordinal)
    {
        ["bash"] = ["bash", "--noprofile", "--norc", "-eo", "pipefail", "{0}"],
        ["sh"] = ["sh", "-e", "{0}"],
        ["pwsh"] = ["pwsh", "-command", ". '{0}'"],
        ["python"] = ["python", "{0}"],
        ["python3"] = ["python3", "{0}"],
    };

    /// <summary>A keyword, or a custom command line with {0} (e.g. <c>perl {0}</c>, <c>bash {0}</c> without -e).</summary>
    public static bool IsKnown(string shell) => Keywords.ContainsKey(shell) || (shell.Contains("{0}", StringComparison.Ordinal) && shell.Trim() != "{0}");

    /// <summary>The file extension the script gets (pwsh and python need theirs).</summary>
    public static string Extension(string? shell) => shell switch
    {
        "pwsh" => ".ps1",
        "python" or "python3" => ".py",
        _ => ".sh",
    };

    /// <summary>The argv that runs <paramref name="scriptFile"/>; <paramref name="hasBash"/> picks the default shell.</summary>
    public static IReadOnlyList<string> Argv(string? shell, string scriptFile, bool hasBash)
    {
        string[] template = shell switch
        {
            null => hasBash ? ["bash", "-e", "{0}"] : ["sh", "-e", "{0}"],
            _ when Keywords.TryGetValue(shell, out var known) => known,
            _ => shell.Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
        };
        return [.. template.Select(part => part.Replace("{0}", scriptFile, StringComparison.Ordinal))];
    }
}
