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

    /// <summary>Compose profiles to activate (services with no profile are always on). Empty: <c>COMPOSE_PROFILES</c>
    /// from the variables, as Compose.</summary>
    public IReadOnlyList<string> Profiles { get; init; } = [];

    /// <summary>Env files for interpolation in place of the <c>.env</c> beside the spec (<c>docker compose --env-file</c>),
    /// read in order, later files winning; the environment still wins over them.</summary>
    public IReadOnlyList<string> EnvFiles { get; init; } = [];

    /// <summary>The dialect; null: from the file name (<c>*compose*</c> is Compose, anything else berth.yaml).</summary>
    public SpecFormat? Format { get; init; }
}
