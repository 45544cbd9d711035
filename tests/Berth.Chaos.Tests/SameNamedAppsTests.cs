using Berth.Runtime.Docker;
using Berth.Runtime.Tests.Docker;

namespace Berth.Chaos.Tests;

/// <summary>Needs Docker and app identity (issue #14 §6, the relruntime branch: the <c>berth.app-id</c> label). Before that
/// lands, the second app's orphan collection stops the first's containers, which is the bug this scenario measures.</summary>
public sealed class AppIdentityFactAttribute : FactAttribute
{
    public AppIdentityFactAttribute()
    {
        if (!Environments.DockerAvailable && !Environments.Required("BERTH_REQUIRE_DOCKER"))
        {
            Skip = "Docker engine not reachable (CI sets BERTH_REQUIRE_DOCKER=1 so this fails there instead)";
        }
        else if (typeof(BerthLabels).GetField("AppId") is null)
        {
            Skip = "needs app identity (issue #14 §6: the berth.app-id label, branch relruntime); without it the second app's orphan collection stops the first's containers";
        }
    }
}

[Collection("chaos")]
[Trait("Category", "Chaos")]
public sealed class SameNamedAppsTests(ITestOutputHelper output)
{
    private static string Spec => $$"""
        name: twin
        services:
          box:
            image: {{TestImages.App}}
            stop_grace_period: 1s
        """;

    [AppIdentityFact]
    public async Task TwoSameNamedApps_SecondUpThenDown_FirstKeepsItsContainer()
    {
        await TestImages.EnsureAsync();

        await using var firstApp = new AppFolder("berth-chaos-twin-a-", Spec);
        await using var secondApp = new AppFolder("berth-chaos-twin-b-", Spec);
        var (first, second) = (firstApp.Cli, secondApp.Cli);
        await first.OkAsync("up", "-d");
        var container = await RunningContainerAsync(first);
        var clock = Stopwatch.StartNew();

        await second.OkAsync("up", "-d");
        var theirs = await RunningContainerAsync(second);
        var afterUp = await RunningContainerAsync(first);
        await second.OkAsync("down");
        var afterDown = await RunningContainerAsync(first);

        var lost = (afterUp == container ? 0 : 1) + (afterDown == container ? 0 : 1);
        output.WriteLine($"| two same-named apps: the second up, then down | first's container {(lost == 0 ? "untouched" : "replaced or stopped")} | {clock.ElapsedMilliseconds} ms |");
        Assert.NotEqual(container, theirs);
        Assert.Equal(container, afterUp);
        Assert.Equal(container, afterDown);
    }

    /// <summary>The app's one container id once it runs (by <c>berth ps</c>).</summary>
    private static async Task<string> RunningContainerAsync(BerthCli cli)
    {
        var id = "";
        await Poll.UntilAsync(async () =>
        {
            var replica = (await cli.PsAsync()).SingleOrDefault();
            id = replica.ValueKind == JsonValueKind.Object && replica.GetProperty("phase").GetString() is "running" or "ready"
                && replica.TryGetProperty("containerId", out var c) ? c.GetString() ?? "" : "";
            return id.Length > 0;
        }, TimeSpan.FromSeconds(60), $"one running container of 'twin' in {cli.Directory}");
        return id;
    }
}
