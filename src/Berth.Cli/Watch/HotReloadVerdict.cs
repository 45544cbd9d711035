using System.Text.RegularExpressions;

namespace Berth.Cli.Watch;

/// <summary>What <c>dotnet watch</c> in a hot-reload replica did with a change.</summary>
internal enum HotReloadOutcome
{
    /// <summary>No verdict yet.</summary>
    None,

    /// <summary>Applied in place: the running process has the new code.</summary>
    Applied,

    /// <summary>The code does not compile; the running process keeps the old code.</summary>
    CompileError,

    /// <summary>An edit Hot Reload cannot apply (a rude edit), or the app stopped: the replicas must be replaced.</summary>
    RestartNeeded,
}

/// <summary>Reads <c>dotnet watch</c>'s own lines in a replica's log (with <c>DOTNET_WATCH_SUPPRESS_EMOJIS=1</c>, as
/// <see cref="Core.Build.HotReload.Environment"/> sets: <c>dotnet watch : C# and Razor changes applied in 919ms.</c>).</summary>
internal static partial class HotReloadVerdict
{
    /// <summary>How long berth watch waits for a verdict: 120 s (a first Hot Reload on a loaded 2-core machine took 15 s).</summary>
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(120);

    /// <summary>How long to wait before following the replicas' logs again when the stream ended without a verdict (no
    /// replica yet, or one that was replaced): 250 ms.</summary>
    public static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(250);

    /// <summary>Lines from before the change by this much still count: 1 s (the log's times and this clock are the same
    /// machine's, but dotnet watch may see a save before berth watch's own watcher does on a loaded machine). Never lines
    /// before the previous verdict taken, so a save right after one is not answered with it (a CI run took the first edit's
    /// "changes applied" for the second edit's verdict, 0.3 s after it).</summary>
    public static readonly TimeSpan ClockSlack = TimeSpan.FromSeconds(1);

    private const string Prefix = "dotnet watch";

    /// <summary>The verdict one log line gives, if any. berth watch follows the replicas' logs from a change and acts on the
    /// first line that gives one; a later save is a change of its own, looked for after that line.</summary>
    public static (HotReloadOutcome Outcome, string Line) Of(string raw)
    {
        var start = raw.IndexOf(Prefix, StringComparison.Ordinal);
        if (start < 0)
        {
            return (HotReloadOutcome.None, "");
        }

        var line = raw[start..].Trim();
        var text = line.IndexOf(" : ", StringComparison.Ordinal) is var colon and >= 0 ? line[(colon + 3)..] : line;
        if (text.Contains("changes applied", StringComparison.OrdinalIgnoreCase) || text.Contains("Hot reload succeeded", StringComparison.OrdinalIgnoreCase))
        {
            return (HotReloadOutcome.Applied, text);
        }

        if (RudeEdit().IsMatch(text))
        {
            // dotnet watch reports an edit it cannot apply as a diagnostic ENCnnnn ("error ENC0015: Updating the kind of a
            // type requires restarting the application"), after "Restart is needed": it is no compile error.
            return (HotReloadOutcome.RestartNeeded, text);
        }

        if (CompilerError().IsMatch(text) || text.Contains("Build failed", StringComparison.OrdinalIgnoreCase))
        {
            return (HotReloadOutcome.CompileError, text);
        }

        return text.Contains("Restart is needed", StringComparison.OrdinalIgnoreCase)
            || text.Contains("rude edit", StringComparison.OrdinalIgnoreCase)
            || text.Contains("Unable to apply", StringComparison.OrdinalIgnoreCase)
            || text.Contains("Exited with error code", StringComparison.OrdinalIgnoreCase)
            || text.Contains("before restarting", StringComparison.OrdinalIgnoreCase)
            ? (HotReloadOutcome.RestartNeeded, text)
            : (HotReloadOutcome.None, "");
    }

    [GeneratedRegex(@"\berror ENC\d+:")]
    private static partial Regex RudeEdit();

    [GeneratedRegex(@"\berror [A-Z]{2,}\d{3,}:")]
    private static partial Regex CompilerError();
}
