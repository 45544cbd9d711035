using System.Formats.Tar;
using System.Text.RegularExpressions;
using Berth.Core.Model;

namespace Berth.Core.Build;

/// <summary>Which changed files a <see cref="WatchRule"/> acts on, as Compose's watch decides: files under the rule's path,
/// not matched by its <c>ignore</c> patterns nor the build context's <c>.dockerignore</c>, not in <c>.git/</c> or Berth's
/// state folder, not an editor's temporary file, and — when the rule has <c>include</c> patterns — matched by one.</summary>
public sealed class WatchFilter
{
    /// <summary>Folders never watched: version control, Berth's state, build intermediates and package folders (as the build digest skips).</summary>
    private static readonly string[] SkippedFolders = [".git", BuildContext.StateFolderName, "obj", "node_modules"];

    /// <summary>Editors' temporary and backup files, as Compose ignores them (Vim, Emacs, JetBrains, Vim's write test), and
    /// GNU <c>sed -i</c>'s: it writes the new text to <c>sedXXXXXX</c> (six letters or digits) beside the file and renames it
    /// over the file, so the temporary name showed in <c>berth watch</c>'s "changed:" lines.</summary>
    private static readonly Regex EditorTemporary = new(@"(^|/)(\.#[^/]*|#[^/]*#|[^/]*~|[^/]*\.sw[a-p]|4913|[^/]*___jb_(tmp|old)___|sed[A-Za-z0-9]{6})$", RegexOptions.CultureInvariant);

    private readonly string _path;
    private readonly IReadOnlyList<(Regex Pattern, bool Include)> _ignore;
    private readonly IReadOnlyList<(Regex Pattern, bool Include)> _include;
    private readonly string? _context;
    private readonly IReadOnlyList<(Regex Pattern, bool Include)> _dockerIgnore;

    /// <param name="rule">The rule.</param>
    /// <param name="buildContext">The service's build context folder, whose <c>.dockerignore</c> applies (relative to it); null: none.</param>
    public WatchFilter(WatchRule rule, string? buildContext)
    {
        _path = Path.TrimEndingDirectorySeparator(rule.Path);
        _ignore = BuildContext.ParseIgnore(rule.Ignore);
        _include = BuildContext.ParseIgnore(rule.Include);
        _context = buildContext is null ? null : Path.TrimEndingDirectorySeparator(buildContext);
        var dockerIgnore = _context is null ? null : Path.Combine(_context, ".dockerignore");
        _dockerIgnore = dockerIgnore is not null && File.Exists(dockerIgnore) ? BuildContext.ParseIgnore(File.ReadAllLines(dockerIgnore)) : [];
    }

    /// <summary>The watched path (a folder or one file), absolute.</summary>
    public string Root => _path;

    /// <summary>Whether a change at <paramref name="fullPath"/> counts for this rule.</summary>
    public bool Matches(string fullPath)
    {
        var relative = Relative(fullPath);
        if (relative is null)
        {
            return false;
        }

        if (relative.Length == 0)
        {
            return true; // the rule's path is this very file
        }

        if (relative.Split('/').SkipLast(1).Any(d => SkippedFolders.Contains(d)) || SkippedFolders.Contains(relative.Split('/')[0]) || EditorTemporary.IsMatch(relative))
        {
            return false;
        }

        if (BuildContext.IsExcluded(relative, _ignore))
        {
            return false;
        }

        if (_context is not null && _dockerIgnore.Count > 0 && IsUnder(_context, fullPath) is { Length: > 0 } inContext && BuildContext.IsExcluded(inContext, _dockerIgnore))
        {
            return false;
        }

        // include: "*.go" means any .go file below the path, at any depth.
        return _include.Count == 0 || BuildContext.IsExcluded(relative, _include) || BuildContext.IsExcluded(relative.Split('/')[^1], _include);
    }

    /// <summary><paramref name="fullPath"/> relative to the rule's path with forward slashes ("" for the path itself), or null when outside it.</summary>
    public string? Relative(string fullPath) => IsUnder(_path, fullPath);

    /// <summary>Every file under the rule's path that <see cref="Matches"/>, for an initial sync or a new container.</summary>
    public IEnumerable<string> Files()
    {
        if (File.Exists(_path))
        {
            return [_path];
        }

        if (!Directory.Exists(_path))
        {
            return [];
        }

        return Directory.EnumerateFiles(_path, "*", new EnumerationOptions { RecurseSubdirectories = true, IgnoreInaccessible = true, AttributesToSkip = FileAttributes.ReparsePoint })
            .Where(Matches)
            .Order(StringComparer.Ordinal);
    }

    /// <summary>Where a file under the rule's path goes below <paramref name="target"/>: the target itself when the rule watches one file.</summary>
    public string TargetOf(string fullPath, string target) =>
        Relative(fullPath) is { Length: > 0 } relative ? $"{target.TrimEnd('/')}/{relative}" : target;

    /// <summary>A tar to extract at <c>/</c> in a container: each file at its place under <paramref name="target"/> (an absolute
    /// container path), the folders on the way created by the engine.</summary>
    public async Task<MemoryStream> TarAsync(IEnumerable<string> files, string target, CancellationToken cancellationToken)
    {
        var tar = new MemoryStream();
        await using (var writer = new TarWriter(tar, TarEntryFormat.Pax, leaveOpen: true))
        {
            foreach (var file in files)
            {
                cancellationToken.ThrowIfCancellationRequested();
                if (File.Exists(file))
                {
                    await writer.WriteEntryAsync(file, TargetOf(file, target).TrimStart('/'), cancellationToken).ConfigureAwait(false);
                }
            }
        }

        tar.Position = 0;
        return tar;
    }

    private static string? IsUnder(string root, string fullPath)
    {
        if (string.Equals(root, fullPath, StringComparison.Ordinal))
        {
            return "";
        }

        var relative = Path.GetRelativePath(root, fullPath);
        return relative == ".." || relative.StartsWith("../", StringComparison.Ordinal) || Path.IsPathRooted(relative) ? null : relative.Replace('\\', '/');
    }
}
