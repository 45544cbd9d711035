using System.Diagnostics;

namespace Berth.Pipelines.Execution;

/// <summary>What the <c>github</c> context takes from git: the commit and the repository's owner/name.</summary>
internal sealed record GitInfo(string Sha, string Repository)
{
    private static readonly TimeSpan GitTimeout = TimeSpan.FromSeconds(5);

    /// <summary>From <c>git rev-parse HEAD</c> and the origin URL; the folder's name and no commit outside a repository.</summary>
    public static GitInfo Read(string directory)
    {
        var root = SecretSource.RepositoryRoot(directory);
        var sha = Git(directory, "rev-parse", "HEAD") ?? "";
        var origin = Git(directory, "config", "--get", "remote.origin.url");
        return new GitInfo(sha, RepositoryName(origin) ?? Path.GetFileName(root.TrimEnd('/')));
    }

    /// <summary><c>git@host:owner/name.git</c> or <c>https://host/owner/name</c> → owner/name.</summary>
    internal static string? RepositoryName(string? url)
    {
        if (string.IsNullOrWhiteSpace(url))
        {
            return null;
        }

        var path = url.Trim();
        if (path.EndsWith(".git", StringComparison.Ordinal))
        {
            path = path[..^4];
        }

        var parts = path.Replace(':', '/').Split('/', StringSplitOptions.RemoveEmptyEntries);
        return parts.Length >= 2 ? $"{parts[^2]}/{parts[^1]}" : null;
    }

    private static string? Git(string directory, params string[] args)
    {
        if (ProcessRunner.ResolveProgram("git", new Dictionary<string, string>(), directory) is not { } git)
        {
            return null;
        }

        var start = new ProcessStartInfo(git) { WorkingDirectory = directory, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        try
        {
            using var process = Process.Start(start)!;
            var output = process.StandardOutput.ReadToEndAsync();
            _ = process.StandardError.ReadToEndAsync();
            if (!process.WaitForExit(GitTimeout))
            {
                process.Kill();
                return null;
            }

            return process.ExitCode == 0 ? output.Result.Trim() : null;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return null;
        }
    }
}
