namespace Berth.Runtime.Process;

/// <summary>What a process replica inherits from the control plane's environment before the spec's own is laid over it
/// (issue #14 §3). Not the operator's whole shell — tokens, SSH agents and cloud credentials stay out — but what a
/// program needs to run as it would from that shell: where programs are (PATH), who and where the user is (HOME, USER,
/// LOGNAME, SHELL), language and time zone (LANG, LANGUAGE, LC_*, TZ), where temporary files go (TMPDIR), the .NET
/// runtime's own settings (DOTNET_*, ASPNETCORE_*, e.g. DOTNET_ROOT for a framework-dependent app) and the proxy
/// settings (http_proxy, https_proxy, no_proxy, all_proxy in either case). systemd passes a service a similarly small
/// set; Compose passes a container nothing, and the Docker driver does not either. <c>inherit_env: true</c> restores
/// the whole environment, as Aspire and Tye run projects.</summary>
public static class InheritedEnvironment
{
    /// <summary>Names inherited as they are.</summary>
    public static readonly IReadOnlySet<string> Names = new HashSet<string>(StringComparer.Ordinal)
    {
        "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TMPDIR",
        "http_proxy", "https_proxy", "no_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY",
    };

    /// <summary>Prefixes inherited: every name that starts with one.</summary>
    public static readonly IReadOnlyList<string> Prefixes = ["LC_", "DOTNET_", "ASPNETCORE_"];

    /// <summary>PATH when the control plane has none.</summary>
    public const string DefaultPath = "/usr/local/bin:/usr/bin:/bin";

    /// <summary>The control plane's environment now.</summary>
    public static IReadOnlyDictionary<string, string> Current()
    {
        var env = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (System.Collections.DictionaryEntry e in Environment.GetEnvironmentVariables())
        {
            env[(string)e.Key] = (string?)e.Value ?? "";
        }

        return env;
    }

    /// <summary>Whether <paramref name="name"/> is in the minimal set.</summary>
    public static bool IsInherited(string name) =>
        Names.Contains(name) || Prefixes.Any(p => name.StartsWith(p, StringComparison.Ordinal) && name.Length > p.Length);

    /// <summary>The variables a replica starts from: all of <paramref name="host"/> with <paramref name="all"/>, else the
    /// minimal set; PATH is always there.</summary>
    public static Dictionary<string, string> Select(IReadOnlyDictionary<string, string> host, bool all)
    {
        var env = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (key, value) in host)
        {
            if (all || IsInherited(key))
            {
                env[key] = value;
            }
        }

        env.TryAdd("PATH", DefaultPath);
        return env;
    }
}
