
namespace Berth.Cli.Tests.ControlPlane;

/// <summary>Issue #3 through the real <c>berth</c> program: with no usable cgroup hierarchy (BERTH_CGROUP_ROOT pointed at an
/// empty folder) the replica runs, and <c>berth up -d</c> and <c>berth ps</c> say on stderr that its limits are not enforced.</summary>
[Collection("real processes")]
public sealed class LimitsWarningCliTests : IDisposable
{
    private readonly AppFolder _app = new("berth-cli-limits-");

    public LimitsWarningCliTests()
    {
        _app.Cli.Environment["BERTH_CGROUP_ROOT"] = NoCgroups;
        Directory.CreateDirectory(NoCgroups);
        _app.WriteSpec("name: limits\nservices:\n" + IdleService.Entry("api", limits: "{cpu: 500m, memory: 256Mi}") + IdleService.Entry("free"));
    }

    private string NoCgroups => _app.File("no-cgroups-here");

    private string Warning => $"berth: warning: limits not enforced for api (cpu 500m, memory 256Mi): no cgroup hierarchy at {NoCgroups}; " +
        "replicas run without CPU and memory limits; run the control plane as root, or point BERTH_CGROUP_ROOT at a delegated cgroup v2 subtree";

    /// <summary>The machine-level line for the same cause: 'up' prints it once, 'ps' with the per-service warnings.</summary>
    private string CgroupsWarning => $"berth: warning: cgroups: CPU and memory limits not enforced: no cgroup hierarchy at {NoCgroups}; " +
        "fix: run the control plane as root, or point BERTH_CGROUP_ROOT at a delegated cgroup v2 subtree";

    public void Dispose() => _app.Dispose();

    private CliResult Berth(params string[] args) => _app.Cli.Run(args);

    [Fact]
    public async Task UpAndPs_NoUsableCgroups_ReplicaRunsAndStderrSaysLimitsNotEnforced()
    {
        var up = Berth("up", "-d");
        Assert.True(up.Code == 0, $"berth up -d failed ({up.Code}): {up.Err}");
        Assert.Single(up.Err.Split('\n'), l => l == Warning);
        Assert.Single(up.Err.Split('\n'), l => l == CgroupsWarning);

        await Poll.UntilAsync(() => Berth("ps").Out.Split('\n').Count(l => l.Contains(" running ", StringComparison.Ordinal) || l.Contains(" ready ", StringComparison.Ordinal)) == 2,
            TimeSpan.FromSeconds(60), "both replicas running");
        var ps = Berth("ps");
        Assert.Equal(0, ps.Code);
        // The warnings, then (the table on stdout being for a person) the dashboard's sign-in link.
        Assert.Equal([CgroupsWarning, Warning], ps.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries).Take(2));
        Assert.Matches(@"^berth: dashboard: http://127\.0\.0\.1:\d+/login\?code=\w+ ", Assert.Single(ps.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries).Skip(2)));
        Assert.DoesNotContain("limits not enforced", ps.Out, StringComparison.Ordinal); // stdout stays the table

        var json = Berth("ps", "-o", "json");
        Assert.Equal([CgroupsWarning, Warning], json.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("[", json.Out.TrimStart(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Events_RetentionFromEnvironment_OnlyTheNewestKept()
    {
        _app.Cli.Environment["BERTH_EVENT_RETENTION"] = "5";
        var up = Berth("up", "-d");
        Assert.True(up.Code == 0, $"berth up -d failed ({up.Code}): {up.Err}");

        // Each scale is a revision and a scaled event at least; well past 5 events in all.
        for (var n = 2; n <= 6; n++)
        {
            Assert.Equal(0, Berth("scale", $"free={n % 2}").Code);
        }

        List<System.Text.Json.JsonElement> Events() => [.. Berth("events", "-o", "json").Out.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => System.Text.Json.JsonDocument.Parse(l).RootElement)];
        await Poll.UntilAsync(() =>
        {
            Berth("scale", "free=1");
            return Events().Count <= 6;
        }, TimeSpan.FromSeconds(60), "at most 5 events kept (plus a tenth, at least one, before the next trim)");

        var kept = Events();
        Assert.True(kept[0].GetProperty("id").GetInt64() > 10, $"the oldest kept event is id {kept[0].GetProperty("id").GetInt64()}; older ones should be gone");
    }

    [Fact]
    public async Task UpForeground_NoUsableCgroups_WarnsOnceOnStderr()
    {
        await using var up = _app.Cli.Start("up");
        await Poll.UntilAsync(() => up.ErrLines.Any(l => l.Contains("'limits' is up: 2/2 replicas ready", StringComparison.Ordinal)), TimeSpan.FromSeconds(60),
            "the foreground control plane to report all ready");
        await up.InterruptAsync();
        await up.WaitAsync(TimeSpan.FromSeconds(60), "berth up to exit after Ctrl-C");

        var stderr = up.ErrLines;
        Assert.Single(stderr, l => l == Warning);
        Assert.Single(stderr, l => l == CgroupsWarning);
        Assert.Single(stderr, l => l.Contains(" limits-not-enforced ", StringComparison.Ordinal) && l.EndsWith(Warning["berth: warning: ".Length..], StringComparison.Ordinal));
    }
}
