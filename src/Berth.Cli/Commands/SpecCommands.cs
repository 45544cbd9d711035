using System.CommandLine;
using System.Reflection;
using System.Text.Encodings.Web;
using System.Text.Json;
using Berth.Core.Loading;

namespace Berth.Cli.Commands;

/// <summary>validate, config, version (foundation).</summary>
internal static class SpecCommands
{
    public static IEnumerable<Command> Create() => [Validate(), Config(), Version()];

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private static Command Validate()
    {
        var file = SpecFile.CreateFilesOption();
        var envFile = SpecFile.CreateEnvFileOption();
        var profiles = SpecFile.CreateProfileOption();
        var output = new Option<string>("--output", "-o")
        {
            Description = "text (diagnostics on stderr) or json (a report on stdout).",
            DefaultValueFactory = _ => "text",
            HelpName = "FORMAT",
        }.AcceptOnlyFromAmong("text", "json");
        var command = new Command("validate", "Check a spec (berth.yaml or a Compose file) and report every problem with file:line:column.")
        {
            file, envFile, profiles, output,
        };
        command.SetAction(parse =>
        {
            var json = parse.GetValue(output) == "json";
            // With -o json the report carries the diagnostics; stderr stays quiet so stdout is the whole answer.
            var outcome = SpecFile.Load(parse.GetValue(file), parse.GetValue(envFile), parse.GetValue(profiles), json ? TextWriter.Null : Console.Error);
            if (json)
            {
                var report = new
                {
                    valid = outcome.Succeeded,
                    file = outcome.Path,
                    services = outcome.Application?.Services.Select(s => s.Name).ToArray() ?? [],
                    diagnostics = outcome.Result?.Diagnostics.Select(d => new
                    {
                        severity = d.Severity.ToString().ToLowerInvariant(),
                        file = d.File,
                        line = d.Line,
                        column = d.Column,
                        path = d.Path,
                        message = d.Message,
                    }).ToArray() ?? [],
                    exitCode = outcome.ExitCode,
                };
                Console.Out.WriteLine(JsonSerializer.Serialize(report, Json));
            }
            else if (outcome.Application is { } app)
            {
                var warnings = outcome.Result!.Warnings.Count();
                Console.Out.WriteLine($"{outcome.Path}{(outcome.OverridePath is { } o ? " + " + o : "")}: valid — {app.Services.Length} service{(app.Services.Length == 1 ? "" : "s")} ({string.Join(", ", app.Services.Select(s => s.Name))})"
                    + (warnings > 0 ? $", {warnings} warning{(warnings == 1 ? "" : "s")}" : ""));
            }

            return outcome.ExitCode;
        });
        return command;
    }

    private static Command Config()
    {
        var file = SpecFile.CreateFilesOption();
        var envFile = SpecFile.CreateEnvFileOption();
        var profiles = SpecFile.CreateProfileOption();
        var output = new Option<string>("--output", "-o")
        {
            Description = "yaml (berth.yaml syntax, loadable again) or json.",
            DefaultValueFactory = _ => "yaml",
            HelpName = "FORMAT",
        }.AcceptOnlyFromAmong("yaml", "json");
        var showSecrets = new Option<bool>("--show-secrets")
        {
            Description = "Print secret env values instead of ***.",
        };
        var command = new Command("config", "Print the normalized spec: after interpolation, env files and defaults, in berth.yaml syntax.")
        {
            file, envFile, profiles, output, showSecrets,
        };
        command.SetAction(parse =>
        {
            var outcome = SpecFile.Load(parse.GetValue(file), parse.GetValue(envFile), parse.GetValue(profiles), Console.Error);
            if (outcome.Application is not { } app)
            {
                return outcome.ExitCode;
            }

            var secrets = parse.GetValue(showSecrets);
            Console.Out.Write(parse.GetValue(output) == "json" ? SpecWriter.ToJson(app, secrets) : SpecWriter.ToYaml(app, secrets));
            return ExitCodes.Ok;
        });
        return command;
    }

    private static Command Version()
    {
        var command = new Command("version", "Print Berth's version and the .NET runtime it runs on.");
        command.SetAction(_ =>
        {
            var assembly = typeof(SpecCommands).Assembly;
            var version = assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? assembly.GetName().Version?.ToString() ?? "unknown";
            Console.Out.WriteLine($"berth {version} (.NET {Environment.Version})");
            return ExitCodes.Ok;
        });
        return command;
    }
}
