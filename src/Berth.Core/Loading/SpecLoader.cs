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
    public static LoadResult LoadFile(string path, LoadOptions? options = null)
    {
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            var reason = e is FileNotFoundException or DirectoryNotFoundException ? "does not exist" : $"cannot be read: {e.Message}";
            return new LoadResult(null, [new Diagnostic(DiagnosticSeverity.Error, path, 0, 0, "", $"the spec file {reason}")]);
        }

        return LoadText(text, path, options);
    }

    /// <summary>Loads from text; <paramref name="fileName"/> is used in diagnostics and to resolve relative paths.</summary>
    public static LoadResult LoadText(string text, string fileName, LoadOptions? options = null)
    {
        options ??= new LoadOptions();
        var fullPath = Path.GetFullPath(fileName);
        var baseDirectory = Path.GetDirectoryName(fullPath) ?? Environment.CurrentDirectory;
        var diagnostics = new List<Diagnostic>();

        var variables = Variables(options, baseDirectory, fileName, diagnostics);
        var format = options.Format ?? DetectFormat(fileName);

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
                return new LoadResult(null, diagnostics);
            }

            root = stream.Documents.Count == 0 ? null : stream.Documents[0].RootNode;
        }
        catch (YamlException e)
        {
            diagnostics.Add(new Diagnostic(DiagnosticSeverity.Error, fileName, (int)e.Start.Line, (int)e.Start.Column, "", YamlMessage(e)));
            return new LoadResult(null, diagnostics);
        }
        catch (InvalidOperationException)
        {
            // YamlDotNet's scanner can fail this way at the end of an unclosed [ or { (no position of its own).
            var at = tracking.LastGood;
            diagnostics.Add(new Diagnostic(DiagnosticSeverity.Error, fileName, (int)at.Line, (int)at.Column, "",
                "is not valid YAML after this point; look for a [ or { that is never closed, or an unclosed quote"));
            return new LoadResult(null, diagnostics);
        }

        if (root is not null)
        {
            MergeKeys.Resolve(root);
        }

        if (root is null || NodeReader.IsNull(root))
        {
            diagnostics.Add(new Diagnostic(DiagnosticSeverity.Error, fileName, 1, 1, "", "is empty; a spec needs services: with at least one service"));
            return new LoadResult(null, diagnostics);
        }

        var profiles = options.Profiles.Count > 0 ? options.Profiles
            : variables.TryGetValue("COMPOSE_PROFILES", out var fromEnv) ? fromEnv.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            : [];
        var reader = new SpecReader(fileName, baseDirectory, new Interpolator(variables), format)
        {
            SourcePath = fullPath,
            ActiveProfiles = profiles,
        };
        var application = reader.Read(root);
        diagnostics.AddRange(reader.Diagnostics);
        // File order (stable, so problems at one place keep the order they were found in); other files (.env, env files) first.
        var ordered = diagnostics.OrderBy(d => d.File == fileName ? 1 : 0).ThenBy(d => d.Line).ThenBy(d => d.Column).ToList();
        return new LoadResult(reader.HasErrors ? null : application, ordered);
    }

    /// <summary>The dialect a file name implies: <c>compose.yaml</c>, <c>docker-compose.yml</c>, <c>compose.prod.yaml</c> … are Compose.</summary>
    public static SpecFormat DetectFormat(string fileName) =>
        Path.GetFileName(fileName).Contains("compose", StringComparison.OrdinalIgnoreCase) ? SpecFormat.Compose : SpecFormat.Berth;

    /// <summary>The interpolation variables: <c>.env</c> beside the file, overridden by the environment (as Compose).</summary>
    private static Dictionary<string, string> Variables(LoadOptions options, string baseDirectory, string fileName, List<Diagnostic> diagnostics)
    {
        var variables = new Dictionary<string, string>(StringComparer.Ordinal);
        var dotEnv = Path.Combine(baseDirectory, ".env");
        if (File.Exists(dotEnv))
        {
            var problems = new List<DotEnv.Problem>();
            var display = Path.Combine(Path.GetDirectoryName(fileName) ?? "", ".env");
            foreach (var (key, value) in DotEnv.Parse(File.ReadAllText(dotEnv), problems))
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

        if (options.Environment is { } given)
        {
            foreach (var (key, value) in given)
            {
                variables[key] = value;
            }
        }
        else
        {
            foreach (System.Collections.DictionaryEntry entry in Environment.GetEnvironmentVariables())
            {
                variables[(string)entry.Key] = (string?)entry.Value ?? "";
            }
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
