namespace Berth.Core.Loading;

public enum DiagnosticSeverity
{
    Error,
    Warning,
}

/// <summary>One problem in a spec: where it is (file:line:column and key path), what is wrong, and how to fix it.</summary>
public sealed record Diagnostic(
    DiagnosticSeverity Severity,
    string File,
    int Line,
    int Column,
    string Path,
    string Message)
{
    /// <summary>e.g. <c>berth.yaml:12:7: error: services.api.replicas: must be 0 or more, got -1</c>.</summary>
    public override string ToString() =>
        $"{File}:{Line}:{Column}: {(Severity == DiagnosticSeverity.Error ? "error" : "warning")}: {(Path.Length > 0 ? Path + ": " : "")}{Message}";
}

/// <summary>What loading produced: the model when there were no errors, and every diagnostic either way.</summary>
public sealed record LoadResult(Berth.Core.Model.Application? Application, IReadOnlyList<Diagnostic> Diagnostics)
{
    public bool Succeeded => Application is not null && !Diagnostics.Any(d => d.Severity == DiagnosticSeverity.Error);

    public IEnumerable<Diagnostic> Errors => Diagnostics.Where(d => d.Severity == DiagnosticSeverity.Error);

    public IEnumerable<Diagnostic> Warnings => Diagnostics.Where(d => d.Severity == DiagnosticSeverity.Warning);
}

/// <summary>Options for loading a spec.</summary>
public sealed record LoadOptions
{
    /// <summary>Variables for interpolation; null: the process environment (plus <c>.env</c> beside the file).</summary>
    public IReadOnlyDictionary<string, string>? Environment { get; init; }

    /// <summary>Compose profiles to activate (services with no profile are always on).</summary>
    public IReadOnlyList<string> Profiles { get; init; } = [];
}

/// <summary>Loads berth.yaml or a Compose file into a validated <see cref="Berth.Core.Model.Application"/>.</summary>
public static class SpecLoader
{
    /// <summary>Names looked for, in order, when no file is given.</summary>
    public static readonly IReadOnlyList<string> DefaultFileNames =
        ["berth.yaml", "berth.yml", "compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml"];

    /// <summary>The first default file in <paramref name="directory"/>, or null.</summary>
    public static string? FindDefaultFile(string directory) =>
        DefaultFileNames.Select(n => System.IO.Path.Combine(directory, n)).FirstOrDefault(File.Exists);

    public static LoadResult LoadFile(string path, LoadOptions? options = null) =>
        throw new NotImplementedException("filled by the foundation issue");

    /// <summary>Loads from text; <paramref name="fileName"/> is used in diagnostics and to resolve relative paths.</summary>
    public static LoadResult LoadText(string text, string fileName, LoadOptions? options = null) =>
        throw new NotImplementedException("filled by the foundation issue");
}
