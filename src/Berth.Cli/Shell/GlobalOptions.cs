using System.CommandLine;

namespace Berth.Cli.Shell;

/// <summary>The options every command takes, before or after the command as in <c>docker compose -f x ps</c>:
/// <c>-f/--file</c> (the spec) and <c>-p/--project-name</c> (the app's name). After <c>logs</c> and <c>events</c> <c>-f</c> means
/// --follow, as in <c>docker compose logs -f</c>; before the command it is always the file.</summary>
internal static class GlobalOptions
{
    /// <summary><c>-p/--project-name</c>: on the root and so on every command (recursive).</summary>
    public static readonly Option<string?> Project = new("--project-name", "-p")
    {
        Description = "The app's name, in place of the spec's name: (or its folder's). Commands that only talk to a running app find it "
            + "by this name from any folder ('berth ls' lists them), as docker compose -p.",
        HelpName = "NAME",
        Recursive = true,
    };

    /// <summary>The <c>-p</c> of this invocation (one command per process).</summary>
    public static string? ProjectName { get; set; }

    /// <summary>Moves <c>-f FILE</c> and <c>-p NAME</c> written before the command to just after it (as <c>--file</c>), where
    /// each command's own options are: <c>berth -f x logs -f api</c> becomes <c>berth logs --file x -f api</c>.</summary>
    public static string[] Normalize(Command root, string[] args)
    {
        if (args.Length == 0 || args[0].StartsWith('['))
        {
            return args; // [suggest:N] and other directives: as typed
        }

        var globals = new List<string>();
        var i = 0;
        while (i < args.Length)
        {
            switch (args[i])
            {
                case "-f" or "--file" when i + 1 < args.Length:
                    globals.AddRange(["--file", args[i + 1]]);
                    i += 2;
                    continue;
                case "-p" or "--project-name" when i + 1 < args.Length:
                    globals.AddRange(["--project-name", args[i + 1]]);
                    i += 2;
                    continue;
                case var a when a.StartsWith("--file=", StringComparison.Ordinal) || a.StartsWith("--project-name=", StringComparison.Ordinal):
                    globals.AddRange(a.Split('=', 2));
                    i++;
                    continue;
            }

            break;
        }

        if (globals.Count == 0)
        {
            return args;
        }

        var command = root;
        var end = i;
        while (end < args.Length && command.Subcommands.FirstOrDefault(c => c.Name == args[end] || c.Aliases.Contains(args[end])) is { } sub)
        {
            command = sub;
            end++;
        }

        return [.. args[i..end], .. globals, .. args[end..]];
    }

    /// <summary>For <c>exec</c> and <c>run</c>: everything after the target (the first argument that is no option) is the
    /// command to run, options included (<c>berth exec api ls -la</c>), as compose stops reading its options there. A
    /// <c>--</c> is put after the target so the parser does so too.</summary>
    public static string[] SeparateCommand(Command root, string[] args)
    {
        if (args.Length == 0 || root.Subcommands.FirstOrDefault(c => c.Name == args[0]) is not { } command || !Commands.ExecCommands.CommandTaking.Contains(command.Name))
        {
            return args;
        }

        for (var i = 1; i < args.Length; i++)
        {
            var token = args[i];
            if (token == "--")
            {
                return args;
            }

            if (token.StartsWith('-') && token.Length > 1)
            {
                var name = token.Split('=', 2)[0];
                var option = command.Options.Concat(root.Options).FirstOrDefault(o => o.Name == name || o.Aliases.Contains(name));
                if (option is not null && option.ValueType != typeof(bool) && !token.Contains('=', StringComparison.Ordinal))
                {
                    i++;
                }

                continue;
            }

            return i + 1 < args.Length && args[i + 1] == "--" ? args : [.. args[..(i + 1)], "--", .. args[(i + 1)..]];
        }

        return args;
    }
}
