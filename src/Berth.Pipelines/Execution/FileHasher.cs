using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.FileSystemGlobbing;

namespace Berth.Pipelines.Execution;

/// <summary>hashFiles(): SHA-256 over the SHA-256 of each matching file in path order, '' when none match (as GitHub Actions).</summary>
public static class FileHasher
{
    public static string HashFiles(string root, IReadOnlyList<string> patterns)
    {
        var files = Match(root, patterns);
        if (files.Count == 0)
        {
            return "";
        }

        using var outer = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var file in files)
        {
            using var stream = File.OpenRead(file);
            outer.AppendData(SHA256.HashData(stream));
        }

        return Convert.ToHexStringLower(outer.GetHashAndReset());
    }

    /// <summary>
    /// Files under <paramref name="root"/> matching the globs (a leading '!' excludes), sorted by path; .git and .berth
    /// are never matched. A pattern that matches a folder takes in every file inside it, as GitHub's globber does.
    /// </summary>
    public static List<string> Match(string root, IEnumerable<string> patterns)
    {
        var matcher = new Matcher(StringComparison.Ordinal);
        foreach (var raw in patterns)
        {
            var exclude = raw.StartsWith('!');
            var pattern = (exclude ? raw[1..] : raw).TrimStart('/');
            var inside = pattern.TrimEnd('/') + "/**";
            if (exclude)
            {
                matcher.AddExclude(pattern);
                matcher.AddExclude(inside);
            }
            else
            {
                matcher.AddInclude(pattern);
                matcher.AddInclude(inside);
            }
        }

        matcher.AddExclude(".git/**");
        matcher.AddExclude(".berth/**");
        return matcher.GetResultsInFullPath(root).Order(StringComparer.Ordinal).ToList();
    }

    public static string Sha256(string text) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)));
}
