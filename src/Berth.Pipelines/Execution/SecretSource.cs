using System.Collections.Immutable;

namespace Berth.Pipelines.Execution;

/// <summary>
/// Resolves a pipeline's declared secrets: from the environment variable of the same name, else from a
/// secrets file (KEY=VALUE lines, as a .env) that must live outside the repository so it is never committed.
/// </summary>
public static class SecretSource
{
    /// <summary>The values, or every problem (missing secrets, a secrets file inside the repository) in <paramref name="errors"/>.</summary>
    public static ImmutableDictionary<string, string> Resolve(
        IEnumerable<string> names,
        string? secretsFile,
        string repositoryDirectory,
        Func<string, string?> environment,
        out List<string> errors)
    {
        errors = [];
        var fromFile = new Dictionary<string, string>(StringComparer.Ordinal);
        if (secretsFile is not null)
        {
            var full = Path.GetFullPath(secretsFile);
            var root = RepositoryRoot(repositoryDirectory);
            if (IsUnder(full, root))
            {
                errors.Add($"secrets file {full} is inside the repository {root}; move it outside (e.g. ~/.config/berth/secrets.env) so it is never committed");
            }
            else if (!File.Exists(full))
            {
                errors.Add($"secrets file {full} does not exist");
            }
            else
            {
                fromFile = ReadValuesFile(full, errors);
            }
        }

        var result = ImmutableDictionary.CreateBuilder<string, string>();
        foreach (var name in names)
        {
            if (environment(name) is { Length: > 0 } value)
            {
                result[name] = value;
            }
            else if (fromFile.TryGetValue(name, out var fileValue))
            {
                result[name] = fileValue;
            }
            else
            {
                errors.Add($"secret {name} is not set; export {name}=... or add {name}=... to a secrets file (--secrets-file or BERTH_SECRETS_FILE)");
            }
        }

        return result.ToImmutable();
    }

    /// <summary>
    /// <c>NAME=VALUE</c> lines (blank lines and # comments skipped; a value in matching quotes loses them, and \n in it is a
    /// line break): the secrets file, and the vars file of the <c>vars</c> context.
    /// </summary>
    public static Dictionary<string, string> ReadValuesFile(string full, List<string> errors)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        var lineNumber = 0;
        foreach (var line in File.ReadAllLines(full))
        {
            lineNumber++;
            var trimmed = line.Trim();
            if (trimmed.Length == 0 || trimmed.StartsWith('#'))
            {
                continue;
            }

            var eq = trimmed.IndexOf('=');
            if (eq <= 0)
            {
                errors.Add($"{full}:{lineNumber}: expected NAME=VALUE");
                continue;
            }

            var value = trimmed[(eq + 1)..];
            if (value.Length >= 2 && value[0] == value[^1] && value[0] is '"' or '\'')
            {
                value = value[1..^1].Replace("\\n", "\n", StringComparison.Ordinal);
            }

            values[trimmed[..eq].Trim()] = value;
        }

        return values;
    }

    /// <summary>The nearest folder with .git above <paramref name="directory"/>, else the folder itself.</summary>
    public static string RepositoryRoot(string directory)
    {
        for (var dir = new DirectoryInfo(Path.GetFullPath(directory)); dir is not null; dir = dir.Parent)
        {
            if (Directory.Exists(Path.Combine(dir.FullName, ".git")) || File.Exists(Path.Combine(dir.FullName, ".git")))
            {
                return dir.FullName;
            }
        }

        return Path.GetFullPath(directory);
    }

    /// <summary>The current branch from .git/HEAD (no git process), or "" when detached or not a repository.</summary>
    public static string CurrentBranch(string directory)
    {
        var root = RepositoryRoot(directory);
        var git = Path.Combine(root, ".git");
        if (File.Exists(git))
        {
            // A worktree: ".git" is a file "gitdir: PATH".
            var text = File.ReadAllText(git).Trim();
            if (text.StartsWith("gitdir:", StringComparison.Ordinal))
            {
                git = Path.GetFullPath(text["gitdir:".Length..].Trim(), root);
            }
        }

        var head = Path.Combine(git, "HEAD");
        if (!File.Exists(head))
        {
            return "";
        }

        var content = File.ReadAllText(head).Trim();
        const string prefix = "ref: refs/heads/";
        return content.StartsWith(prefix, StringComparison.Ordinal) ? content[prefix.Length..] : "";
    }

    private static bool IsUnder(string path, string directory)
    {
        var relative = Path.GetRelativePath(directory, path);
        return !relative.StartsWith("..", StringComparison.Ordinal) && !Path.IsPathRooted(relative);
    }
}
