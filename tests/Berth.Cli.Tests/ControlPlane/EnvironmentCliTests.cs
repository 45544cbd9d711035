
namespace Berth.Cli.Tests.ControlPlane;

/// <summary>Issue #14 §3 through the real <c>berth</c> program: a process replica gets the minimal environment plus its
/// spec's, not the operator's whole shell; <c>inherit_env: true</c> gives it everything.</summary>
[Collection("real processes")]
public sealed class EnvironmentCliTests : AppFolderTest
{
    public EnvironmentCliTests()
        : base("berth-cli-env-")
    {
        App.Cli.Environment["GITHUB_TOKEN"] = "ghp_operator";
        App.Cli.Environment["LC_TIME"] = "C.UTF-8";
        App.Cli.Environment["https_proxy"] = "http://127.0.0.1:3128";
        const string print = "[perl, -e, \"$$|=1; print qq($$_=$$ENV{$$_}\\\\n) for sort keys %ENV; sleep 600\"]";
        App.WriteSpec($$"""
            name: envs
            services:
              minimal:
                run: {{print}}
                environment: {APP_MODE: minimal}
                stop_grace_period: 1s
              whole:
                run: {{print}}
                inherit_env: true
                stop_grace_period: 1s
            """);
    }

    [Fact]
    public async Task Up_OperatorShellWithAToken_MinimalReplicaDoesNotSeeItInheritEnvReplicaDoes()
    {
        await App.Cli.UpDetachedAsync(ready: 2);
        var minimal = await EnvironmentOfAsync("minimal");
        var whole = await EnvironmentOfAsync("whole");

        Assert.DoesNotContain("GITHUB_TOKEN", minimal.Keys);
        Assert.Equal("minimal", minimal["APP_MODE"]);
        Assert.Equal("C.UTF-8", minimal["LC_TIME"]);
        Assert.Equal("http://127.0.0.1:3128", minimal["https_proxy"]);
        Assert.Equal(Environment.GetEnvironmentVariable("PATH"), minimal["PATH"]);
        Assert.All(minimal.Keys, k => Assert.True(
            Berth.Runtime.Process.InheritedEnvironment.IsInherited(k) || k is "APP_MODE" or "PORT" || k.StartsWith("BERTH_", StringComparison.Ordinal) ||
            k.StartsWith("OTEL_", StringComparison.Ordinal) || k.StartsWith("services__", StringComparison.Ordinal),
            $"{k} reached the replica: neither the minimal set nor what Berth or the spec sets"));

        Assert.Equal("ghp_operator", whole["GITHUB_TOKEN"]);
        Assert.True(whole.Count > minimal.Count, $"inherit_env: {whole.Count} variables vs {minimal.Count}");
    }

    /// <summary>The replica's printed environment, read through <c>berth logs</c>.</summary>
    private async Task<Dictionary<string, string>> EnvironmentOfAsync(string service)
    {
        Dictionary<string, string> env = [];
        await Poll.UntilAsync(async () =>
        {
            var logs = await App.Cli.OkAsync("logs", service);
            env = logs.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries)
                .Select(l => l[(l.IndexOf("| ", StringComparison.Ordinal) + 2)..])
                .Where(l => l.Contains('=', StringComparison.Ordinal))
                .ToDictionary(l => l[..l.IndexOf('=', StringComparison.Ordinal)], l => l[(l.IndexOf('=', StringComparison.Ordinal) + 1)..]);
            return env.ContainsKey("PATH") && env.ContainsKey("BERTH_REPLICA");
        }, TimeSpan.FromSeconds(30), $"the {service} replica's environment in berth logs");
        return env;
    }
}
