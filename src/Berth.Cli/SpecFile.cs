using System.CommandLine;
using Berth.Core.Loading;
using Berth.Core.Model;

namespace Berth.Cli;

/// <summary>Finding and loading the spec for any command: <c>-f FILE</c> or the default names in the current folder,
/// diagnostics printed to stderr as <c>file:line:col: error: path: message</c>, and the exit code to return.</summary>
internal static class SpecFile
{
    /// <summary>A fresh <c>-f/--file</c> option (each command needs its own instance).</summary>
    public static Option<string?> CreateFileOption() => new("--file", "-f")
    {
        Description = $"The spec file. Default: the first of {string.Join(", ", SpecLoader.DefaultFileNames)} in the current folder.",
        HelpName = "FILE",
    };

    /// <summary>A fresh <c>-f/--file</c> option that may be repeated: the files are merged in order, later ones overriding,
    /// as <c>docker compose -f a.yaml -f b.yaml</c>.</summary>
    public static Option<string[]> CreateFilesOption() => new("--file", "-f")
    {
        Description = $"The spec file; repeat to merge several in order, later ones overriding (as docker compose). Default: the first of {string.Join(", ", SpecLoader.DefaultFileNames)} in the current folder (with its compose.override.yaml).",
        HelpName = "FILE",
        AllowMultipleArgumentsPerToken = false,
    };

    /// <summary>A fresh <c>--env-file</c> option: files of interpolation variables in place of the <c>.env</c> beside the spec.</summary>
    public static Option<string[]> CreateEnvFileOption() => new("--env-file")
    {
        Description = "An env file with the variables for interpolation, in place of the .env beside the spec (repeatable, later files win; the environment still wins).",
        HelpName = "FILE",
        AllowMultipleArgumentsPerToken = false,
    };

    /// <summary>A fresh <c>--profile</c> option: Compose profiles to activate (repeatable; default <c>COMPOSE_PROFILES</c>).</summary>
    public static Option<string[]> CreateProfileOption() => new("--profile")
    {
        Description = "Activate a Compose profile (repeat for several). Default: COMPOSE_PROFILES.",
        HelpName = "NAME",
        AllowMultipleArgumentsPerToken = false,
    };

    /// <summary>The outcome of finding and loading a spec.</summary>
    public sealed record Outcome(Application? Application, LoadResult? Result, string? Path, int ExitCode)
    {
        /// <summary>The override file merged into <see cref="Path"/> (found beside it when no -f was given), or null.</summary>
        public string? OverridePath { get; init; }

        public bool Succeeded => Application is not null;
    }

    /// <summary>Finds and loads the spec, printing every diagnostic to <paramref name="stderr"/>. On failure
    /// <see cref="Outcome.ExitCode"/> is <see cref="ExitCodes.NotFound"/> or <see cref="ExitCodes.InvalidSpec"/>.</summary>
    public static Outcome Load(string? file, IReadOnlyList<string>? profiles, TextWriter stderr, string? directory = null, bool printWarnings = true) =>
        Load(file is null ? [] : [file], [], profiles, stderr, directory, printWarnings);

    /// <summary>As <see cref="Load(string?, IReadOnlyList{string}?, TextWriter, string?, bool)"/>, with several <c>-f</c> files merged in order
    /// and <c>--env-file</c> files for interpolation.</summary>
    public static Outcome Load(IReadOnlyList<string>? files, IReadOnlyList<string>? envFiles, IReadOnlyList<string>? profiles, TextWriter stderr, string? directory = null, bool printWarnings = true)
    {
        files ??= [];
        foreach (var extra in files.Skip(1).Where(f => !File.Exists(f)))
        {
            stderr.WriteLine($"berth: {Paint("error", Red, stderr)}: {extra}: no such file.");
            return new Outcome(null, null, extra, ExitCodes.NotFound);
        }

        var file = files.Count > 0 ? files[0] : null;
        directory ??= Environment.CurrentDirectory;
        // A file found by the default lookup is shown as its name, as the user would have typed it.
        var path = file ?? (SpecLoader.FindDefaultFile(directory) is { } found ? Relative(found, directory) : null);
        if (path is null)
        {
            stderr.WriteLine($"berth: {Paint("error", Red, stderr)}: no spec file here; looked for {string.Join(", ", SpecLoader.DefaultFileNames)} in {directory}. Create berth.yaml, or pass -f FILE.");
            return new Outcome(null, null, null, ExitCodes.NotFound);
        }

        if (Directory.Exists(path))
        {
            var inside = SpecLoader.FindDefaultFile(path);
            if (inside is null)
            {
                stderr.WriteLine($"berth: {Paint("error", Red, stderr)}: {path} is a folder with no spec file; looked for {string.Join(", ", SpecLoader.DefaultFileNames)}.");
                return new Outcome(null, null, path, ExitCodes.NotFound);
            }

            path = inside;
        }

        if (!File.Exists(path))
        {
            stderr.WriteLine($"berth: {Paint("error", Red, stderr)}: {path}: no such file.");
            return new Outcome(null, null, path, ExitCodes.NotFound);
        }

        // As Compose: without -f, compose.override.yaml beside compose.yaml is merged into it.
        var overrideFile = file is null ? SpecLoader.FindOverrideFile(path) : null;
        var all = overrideFile is not null ? [path, overrideFile] : new List<string> { path }.Concat(files.Skip(1)).ToList();
        var result = SpecLoader.LoadFiles(all, new LoadOptions { Profiles = profiles ?? [], EnvFiles = envFiles ?? [] });
        foreach (var diagnostic in result.Diagnostics)
        {
            if (diagnostic.Severity == DiagnosticSeverity.Error || printWarnings)
            {
                stderr.WriteLine(Format(diagnostic, stderr));
            }
        }

        if (!result.Succeeded)
        {
            var count = result.Errors.Count();
            stderr.WriteLine($"{path}: {count} error{(count == 1 ? "" : "s")}; nothing was changed.");
            return new Outcome(null, result, path, ExitCodes.InvalidSpec);
        }

        // -p NAME names the app, as docker compose -p names the project.
        var app = Shell.GlobalOptions.ProjectName is { Length: > 0 } project ? result.Application! with { Name = project } : result.Application;
        return new Outcome(app, result, path, ExitCodes.Ok) { OverridePath = overrideFile };
    }

    private static string Relative(string path, string directory)
    {
        var relative = System.IO.Path.GetRelativePath(directory, path);
        return directory == Environment.CurrentDirectory && !relative.StartsWith("..", StringComparison.Ordinal) ? relative : path;
    }

    /// <summary><c>file:line:col: error: path: message</c>, with the severity colored on a terminal.</summary>
    public static string Format(Diagnostic d, TextWriter writer)
    {
        var severity = d.Severity == DiagnosticSeverity.Error ? Paint("error", Red, writer) : Paint("warning", Yellow, writer);
        var where = d.Line > 0 ? $"{d.File}:{d.Line}:{d.Column}" : d.File;
        return $"{where}: {severity}: {(d.Path.Length > 0 ? d.Path + ": " : "")}{d.Message}";
    }

    private const string Red = "\u001b[31m";
    private const string Yellow = "\u001b[33m";

    private static string Paint(string text, string color, TextWriter writer) =>
        ColorsOn(writer) ? $"{color}{text}\u001b[0m" : text;

    private static bool ColorsOn(TextWriter writer) =>
        Environment.GetEnvironmentVariable("NO_COLOR") is null
        && ((writer == Console.Error && !Console.IsErrorRedirected) || (writer == Console.Out && !Console.IsOutputRedirected));
}
