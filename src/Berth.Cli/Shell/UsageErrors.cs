using System.CommandLine;
using System.CommandLine.Parsing;
using Berth.Core.Loading;

namespace Berth.Cli.Shell;

/// <summary>Usage errors a user can act on: a mistyped command or option gets "did you mean", a bad option value says what
/// the option wants (never a .NET type name), and the last line says where the usage is.</summary>
internal static class UsageErrors
{
    public static void Report(ParseResult parse, TextWriter stderr)
    {
        var command = parse.CommandResult.Command;
        var path = CommandPath(parse.CommandResult);
        var reported = false;
        // The first unknown word, with the closest command or option (the words after it are its arguments or value).
        if (parse.UnmatchedTokens.Count > 0)
        {
            stderr.WriteLine(Unknown(path, command, parse.UnmatchedTokens[0]));
            reported = true;
        }

        foreach (var error in parse.Errors)
        {
            if (error.Message.Contains("Unrecognized command or argument", StringComparison.Ordinal))
            {
                continue; // said above, with a suggestion
            }

            if (reported && error.SymbolResult is CommandResult && command.Subcommands.Count > 0 && command.Action is null)
            {
                continue; // "Required command was not provided": the unknown word above was meant as that command
            }

            stderr.WriteLine(Plain(path, error));
            reported = true;
        }

        stderr.WriteLine($"Run '{path} --help' for usage.");
    }

    private static string Unknown(string path, Command command, string token)
    {
        if (token.StartsWith('-'))
        {
            var name = token.Split('=', 2)[0];
            var options = Options(command).SelectMany(o => o.Aliases.Prepend(o.Name)).Where(a => a.StartsWith("--", StringComparison.Ordinal));
            return Suggestions.Closest(name.TrimStart('-'), options.Select(o => o[2..])) is { } close
                ? $"{path}: unknown option '{name}'; did you mean '--{close}'?"
                : $"{path}: unknown option '{name}'";
        }

        if (command.Subcommands.Count > 0)
        {
            var names = command.Subcommands.Where(c => !c.Hidden).Select(c => c.Name);
            return Suggestions.Closest(token, names) is { } close
                ? $"{path}: '{token}' is not a {path} command; did you mean '{close}'?"
                : $"{path}: '{token}' is not a {path} command; see the list in '{path} --help'";
        }

        return $"{path}: unexpected argument '{token}'";
    }

    /// <summary>The error in the words of the option it is about: <c>--tail wants a whole number, not 'abc'</c>.</summary>
    private static string Plain(string path, ParseError error)
    {
        if (error.SymbolResult is OptionResult { Option: var option } result && error.Message.StartsWith("Cannot parse argument", StringComparison.Ordinal))
        {
            var value = result.Tokens.Count > 0 ? result.Tokens[0].Value : "";
            return $"{path}: {option.Name} wants {Wants(option.ValueType)}, not '{value}'";
        }

        if (error.SymbolResult is ArgumentResult { Argument: var argument } argResult && error.Message.StartsWith("Cannot parse argument", StringComparison.Ordinal))
        {
            var value = argResult.Tokens.Count > 0 ? argResult.Tokens[0].Value : "";
            return $"{path}: {argument.Name} wants {Wants(argument.ValueType)}, not '{value}'";
        }

        // AcceptOnlyFromAmong: "Argument 'x' not recognized. Must be one of:\n\t'a'\n\t'b'".
        var oneOf = error.Message.IndexOf("Must be one of:", StringComparison.Ordinal);
        if (oneOf > 0 && error.SymbolResult is OptionResult or ArgumentResult)
        {
            var name = error.SymbolResult is OptionResult o ? o.Option.Name : ((ArgumentResult)error.SymbolResult).Argument.Name;
            var allowed = error.Message[(oneOf + "Must be one of:".Length)..].Split('\'', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Where(v => v.Length > 0);
            var given = error.Message.Split('\'')[1];
            return $"{path}: {name} wants one of {string.Join(", ", allowed)}; not '{given}'";
        }

        return $"{path}: {error.Message}";
    }

    private static string Wants(Type type)
    {
        var t = Nullable.GetUnderlyingType(type) ?? (type.IsArray ? type.GetElementType()! : type);
        return t == typeof(int) || t == typeof(long) ? "a whole number (e.g. 100)"
            : t == typeof(double) ? "a number (e.g. 0.5)"
            : t == typeof(bool) ? "true or false"
            : "a value";
    }

    private static IEnumerable<Option> Options(Command command)
    {
        for (Symbol? s = command; s is Command c; s = c.Parents.FirstOrDefault())
        {
            foreach (var o in c.Options.Where(o => c == command || o.Recursive))
            {
                yield return o;
            }
        }
    }

    private static string CommandPath(CommandResult result)
    {
        var names = new List<string>();
        for (SymbolResult? r = result; r is CommandResult c; r = c.Parent)
        {
            names.Add(c.Command is RootCommand ? "berth" : c.Command.Name);
        }

        names.Reverse();
        return string.Join(' ', names);
    }
}
