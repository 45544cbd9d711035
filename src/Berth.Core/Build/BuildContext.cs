using System.Formats.Tar;
using System.Text;
using System.Text.RegularExpressions;

namespace Berth.Core.Build;

/// <summary>
/// The tar of a build context that a Docker engine receives (the runtime's driver and the pipelines' build-image step
/// both send this one), without what the context's <c>.dockerignore</c> excludes (as the
/// docker CLI): patterns relative to the context, <c>*</c> and <c>?</c> within one path segment, <c>**</c> across segments,
/// <c>!</c> re-includes, the last matching line wins, and an excluded folder excludes everything in it.
/// </summary>
public static class BuildContext
{
    /// <summary>The folder Berth keeps an app's state in (beside the spec), left out of every build context.</summary>
    public const string StateFolderName = ".berth";

    public static async Task<MemoryStream> CreateTarAsync(string context, CancellationToken cancellationToken)
    {
        var rules = ReadIgnore(Path.Combine(context, ".dockerignore"));
        var tar = new MemoryStream();
        await using (var writer = new TarWriter(tar, TarEntryFormat.Pax, leaveOpen: true))
        {
            await AddAsync(writer, context, "", rules, cancellationToken).ConfigureAwait(false);
        }

        tar.Position = 0;
        return tar;
    }

    /// <summary>Whether <paramref name="relativePath"/> (forward slashes) is excluded by <paramref name="rules"/>.</summary>
    public static bool IsExcluded(string relativePath, IReadOnlyList<(Regex Pattern, bool Include)> rules)
    {
        var excluded = false;
        foreach (var (pattern, include) in rules)
        {
            if (pattern.IsMatch(relativePath))
            {
                excluded = !include;
            }
        }

        return excluded;
    }

    public static IReadOnlyList<(Regex Pattern, bool Include)> ParseIgnore(IEnumerable<string> lines)
    {
        var rules = new List<(Regex, bool)>();
        foreach (var raw in lines)
        {
            var line = raw.Trim();
            if (line.Length == 0 || line.StartsWith('#'))
            {
                continue;
            }

            var include = line.StartsWith('!');
            var pattern = (include ? line[1..] : line).Trim().Replace('\\', '/').Trim('/');
            while (pattern.StartsWith("./", StringComparison.Ordinal))
            {
                pattern = pattern[2..];
            }

            if (pattern.Length > 0)
            {
                rules.Add((ToRegex(pattern), include));
            }
        }

        return rules;
    }

    private static IReadOnlyList<(Regex Pattern, bool Include)> ReadIgnore(string path) =>
        File.Exists(path) ? ParseIgnore(File.ReadAllLines(path)) : [];

    private static Regex ToRegex(string pattern)
    {
        var regex = new StringBuilder("^");
        for (var i = 0; i < pattern.Length; i++)
        {
            var c = pattern[i];
            if (c == '*' && i + 1 < pattern.Length && pattern[i + 1] == '*')
            {
                // "**/" matches any number of folders, including none; a trailing "**" anything below.
                i++;
                if (i + 1 < pattern.Length && pattern[i + 1] == '/')
                {
                    i++;
                    regex.Append("(?:.*/)?");
                }
                else
                {
                    regex.Append(".*");
                }
            }
            else
            {
                regex.Append(c switch
                {
                    '*' => "[^/]*",
                    '?' => "[^/]",
                    _ => Regex.Escape(c.ToString()),
                });
            }
        }

        // A match on a folder covers what is inside it.
        regex.Append("(?:/.*)?$");
        return new Regex(regex.ToString(), RegexOptions.CultureInvariant);
    }

    private static async Task AddAsync(TarWriter writer, string root, string relative, IReadOnlyList<(Regex, bool)> rules, CancellationToken cancellationToken)
    {
        var dir = relative.Length == 0 ? root : Path.Combine(root, relative);
        foreach (var entry in new DirectoryInfo(dir).EnumerateFileSystemInfos().OrderBy(e => e.Name, StringComparer.Ordinal))
        {
            cancellationToken.ThrowIfCancellationRequested();
            var path = relative.Length == 0 ? entry.Name : $"{relative}/{entry.Name}";
            var isDirectory = entry is DirectoryInfo && entry.LinkTarget is null;
            // Berth's own state folder (its database, API token and lock) is never build input, whatever .dockerignore says.
            if (isDirectory && entry.Name == StateFolderName)
            {
                continue;
            }

            // The Dockerfile and .dockerignore always go (the engine needs them), as with the docker CLI.
            if (IsExcluded(path, rules) && path is not ("Dockerfile" or ".dockerignore") && !(isDirectory && rules.Any(r => r.Item2)))
            {
                continue;
            }

            if (isDirectory)
            {
                await writer.WriteEntryAsync(entry.FullName, path + "/", cancellationToken).ConfigureAwait(false);
                await AddAsync(writer, root, path, rules, cancellationToken).ConfigureAwait(false);
            }
            else if (entry is FileInfo || entry.LinkTarget is not null)
            {
                if (entry.LinkTarget is null && ((FileInfo)entry).Attributes.HasFlag(FileAttributes.System))
                {
                    continue; // sockets, pipes and devices are not build input
                }

                await writer.WriteEntryAsync(entry.FullName, path, cancellationToken).ConfigureAwait(false);
            }
        }
    }
}
