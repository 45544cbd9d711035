using Berth.Core.Model;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Berth.Core.Loading;

/// <summary>Loads berth.yaml or a Compose file into a validated <see cref="Application"/>.</summary>
public static class SpecLoader
{
    /// <summary>Names looked for, in order, when no file is given.</summary>
    public static readonly IReadOnlyList<string> DefaultFileNames =
        ["berth.yaml", "berth.yml", "compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml"];

    /// <summary>The first default file in <paramref name="directory"/>, or null.</summary>
    public static string? FindDefaultFile(string directory) =>
        DefaultFileNames.Select(n => Path.Combine(directory, n)).FirstOrDefault(File.Exists);

    /// <summary>Loads a spec file. A missing or unreadable file is reported as a diagnostic, not thrown.</summary>
    public static LoadResult LoadFile(string path, LoadOptions? options = null) => LoadFiles([path], options);

    /// <summary>Loads from text; <paramref name="fileName"/> is used in diagnostics and to resolve relative paths.</summary>
    public static LoadResult LoadText(string text, string fileName, LoadOptions? options = null) =>
        Load([(text, fileName)], options);

    /// <summary>Loads a file and the files that override it, in order, as Compose merges <c>compose.override.yaml</c>
    /// (or several <c>-f</c> files): later scalars win, lists add to or replace earlier entries. The first file decides
    /// the dialect, the project folder and <see cref="Application.SourceFile"/>.</summary>
    public static LoadResult LoadFiles(IReadOnlyList<string> paths, LoadOptions? options = null)
    {
        var texts = new List<(string, string)>();
        foreach (var path in paths)
        {
            try
            {
                texts.Add((File.ReadAllText(path), path));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                var reason = e is FileNotFoundException or DirectoryNotFoundException ? "does not exist" : $"cannot be read: {e.Message}";
                return new LoadResult(null, [new Diagnostic(DiagnosticSeverity.Error, path, 0, 0, "", $"the spec file {reason}")]);
            }
        }

        return Load(texts, options);
    }

    /// <summary>The override file Compose would merge into <paramref name="path"/> when no -f is given
    /// (<c>compose.override.yaml</c> beside <c>compose.yaml</c>, <c>docker-compose.override.yml</c> beside
    /// <c>docker-compose.yml</c>, …), or null.</summary>
    public static string? FindOverrideFile(string path)
    {
        var name = Path.GetFileNameWithoutExtension(path);
        if (name is not ("compose" or "docker-compose"))
        {
            return null;
        }

        var dir = Path.GetDirectoryName(path) ?? "";
        return new[] { ".yaml", ".yml" }.Select(ext => Path.Combine(dir, $"{name}.override{ext}")).FirstOrDefault(File.Exists);
    }

    private static LoadResult Load(IReadOnlyList<(string Text, string FileName)> files, LoadOptions? options)
    {
        options ??= new LoadOptions();
        var fileName = files[0].FileName;
        var fullPath = Path.GetFullPath(fileName);
        var baseDirectory = Path.GetDirectoryName(fullPath) ?? Environment.CurrentDirectory;
        var diagnostics = new List<Diagnostic>();

        var variables = Variables(options, baseDirectory, fileName, diagnostics);
        var format = options.Format ?? DetectFormat(fileName);

        var roots = new List<YamlNode>();
        foreach (var (text, name) in files)
        {
            if (Parse(text, name, diagnostics) is { } root)
            {
                roots.Add(root);
            }
        }

        if (roots.Count < files.Count)
        {
            return new LoadResult(null, Ordered(diagnostics, fileName));
        }

        var profiles = options.Profiles.Count > 0 ? options.Profiles
            : variables.TryGetValue("COMPOSE_PROFILES", out var fromEnv) ? fromEnv.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            : [];
        var reader = new SpecReader(fileName, baseDirectory, new Interpolator(variables), format)
        {
            SourcePath = fullPath,
            ActiveProfiles = profiles,
            StringKeysOnly = format == SpecFormat.Compose,
        };
        for (var i = 1; i < roots.Count; i++)
        {
            reader.Claim(roots[i], files[i].FileName);
        }

        var application = reader.Read(roots);
        diagnostics.AddRange(reader.Diagnostics);
        return new LoadResult(reader.HasErrors ? null : application, Ordered(diagnostics, fileName));
    }

    // File order (stable, so problems at one place keep the order they were found in); other files (.env, env files) first.
    private static List<Diagnostic> Ordered(List<Diagnostic> diagnostics, string mainFile) =>
        diagnostics.OrderBy(d => d.File == mainFile ? 1 : 0).ThenBy(d => d.Line).ThenBy(d => d.Column).ToList();

    /// <summary>One file's YAML as a node tree with merge keys resolved, or null with the problem in <paramref name="diagnostics"/>.</summary>
    internal static YamlNode? Parse(string text, string fileName, List<Diagnostic> diagnostics)
    {
        YamlNode? root;
        var tracking = new TrackingParser(new Parser(new StringReader(text)));
        try
        {
            var stream = new YamlStream();
            stream.Load(tracking);
            if (stream.Documents.Count > 1)
            {
                var second = stream.Documents[1].RootNode;
                diagnostics.Add(new Diagnostic(DiagnosticSeverity.Error, fileName, (int)second.Start.Line, (int)second.Start.Column, "",
                    "has more than one YAML document (---); a spec is one document, so keep one"));
                return null;
            }

            root = stream.Documents.Count == 0 ? null : stream.Documents[0].RootNode;
        }
        catch (YamlException e)
        {
            diagnostics.Add(new Diagnostic(DiagnosticSeverity.Error, fileName, (int)e.Start.Line, (int)e.Start.Column, "", YamlMessage(e)));
            return null;
        }
        catch (InvalidOperationException)
        {
            // YamlDotNet's scanner can fail this way at the end of an unclosed [ or { (no position of its own).
            var at = tracking.LastGood;
            diagnostics.Add(new Diagnostic(DiagnosticSeverity.Error, fileName, (int)at.Line, (int)at.Column, "",
                "is not valid YAML after this point; look for a [ or { that is never closed, or an unclosed quote"));
            return null;
        }

        if (root is null || NodeReader.IsNull(root))
        {
            diagnostics.Add(new Diagnostic(DiagnosticSeverity.Error, fileName, 1, 1, "", "is empty; a spec needs services: with at least one service"));
            return null;
        }

        foreach (var bad in MergeKeys.Resolve(root))
        {
            diagnostics.Add(new Diagnostic(DiagnosticSeverity.Error, fileName, (int)bad.Start.Line, (int)bad.Start.Column, "",
                "'<<:' merges a mapping (or a list of mappings) into this one, not a single value; point it at an anchored mapping (<<: *defaults)"));
        }

        return root;
    }

    /// <summary>The dialect a file name implies: <c>compose.yaml</c>, <c>docker-compose.yml</c>, <c>compose.prod.yaml</c> … are Compose.</summary>
    public static SpecFormat DetectFormat(string fileName) =>
        Path.GetFileName(fileName).Contains("compose", StringComparison.OrdinalIgnoreCase) ? SpecFormat.Compose : SpecFormat.Berth;

    /// <summary>The interpolation variables: <c>.env</c> beside the file, overridden by the environment (as Compose).</summary>
    private static Dictionary<string, string> Variables(LoadOptions options, string baseDirectory, string fileName, List<Diagnostic> diagnostics)
    {
        var environment = new Dictionary<string, string>(StringComparer.Ordinal);
        if (options.Environment is { } given)
        {
            foreach (var (key, value) in given)
            {
                environment[key] = value;
            }
        }
        else
        {
            foreach (System.Collections.DictionaryEntry entry in Environment.GetEnvironmentVariables())
            {
                environment[(string)entry.Key] = (string?)entry.Value ?? "";
            }
        }

        // --env-file replaces the .env beside the spec, as docker compose --env-file does; several are read in order.
        var envFiles = options.EnvFiles.Count > 0
            ? options.EnvFiles.Select(f => (Path: Path.GetFullPath(f), Display: f, Required: true)).ToList()
            : [(Path.Combine(baseDirectory, ".env"), Path.Combine(Path.GetDirectoryName(fileName) ?? "", ".env"), false)];
        var variables = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (path, display, required) in envFiles)
        {
            if (!File.Exists(path))
            {
                if (required)
                {
                    diagnostics.Add(new Diagnostic(DiagnosticSeverity.Error, display, 0, 0, "", $"the env file does not exist (looked for {path})"));
                }

                continue;
            }

            var problems = new List<DotEnv.Problem>();
            // Expansion inside the file sees its earlier lines (and earlier files), then the environment.
            var scope = new Dictionary<string, string>(environment, StringComparer.Ordinal);
            foreach (var (key, value) in variables)
            {
                scope[key] = value;
            }

            foreach (var (key, value) in DotEnv.Parse(File.ReadAllText(path), problems, scope))
            {
                if (value is not null)
                {
                    variables[key] = value;
                }
            }

            foreach (var problem in problems)
            {
                diagnostics.Add(new Diagnostic(DiagnosticSeverity.Error, display, problem.Line, problem.Column, "", problem.Message));
            }
        }

        foreach (var (key, value) in environment)
        {
            variables[key] = value;
        }

        return variables;
    }

    private static string YamlMessage(YamlException e)
    {
        // YamlDotNet prefixes "(Line: 3, Col: 5, Idx: 20) - (Line: …): "; the position is reported separately.
        var message = e.Message;
        var dash = message.IndexOf("): ", StringComparison.Ordinal);
        if (message.StartsWith("(Line:", StringComparison.Ordinal) && dash >= 0)
        {
            message = message[(dash + 3)..];
        }

        var inner = e.InnerException?.Message;
        if (message.Contains("Duplicate key", StringComparison.OrdinalIgnoreCase) || inner?.Contains("same key", StringComparison.Ordinal) == true)
        {
            return "this key appears twice in the same mapping; keep one";
        }

        return $"is not valid YAML: {message.TrimEnd('.')}";
    }

    /// <summary>Remembers where the last well-formed YAML event ended, for errors that come without a position.</summary>
    private sealed class TrackingParser(IParser inner) : IParser
    {
        public Mark LastGood { get; private set; } = new(0, 1, 1);

        public YamlDotNet.Core.Events.ParsingEvent? Current => inner.Current;

        public bool MoveNext()
        {
            if (inner.Current is { } current)
            {
                LastGood = current.End;
            }

            return inner.MoveNext();
        }
    }
}
