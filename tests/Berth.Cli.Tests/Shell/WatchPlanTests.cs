using Berth.Cli.Watch;
using Berth.Core.Loading;

namespace Berth.Cli.Tests.Shell;

/// <summary>The default rebuild rule of a service with a build and no develop.watch rules, and which services are watched as one.</summary>
public class WatchPlanTests
{
    [Fact]
    public void For_BuildWritingIntoASubfolder_ItsOutputAtAnyDepthIsNotAChange()
    {
        var folder = Path.Combine(Path.GetTempPath(), "berth-watch-plan");
        var result = SpecLoader.LoadText("""
            services:
              api:
                build:
                  command: [dotnet, build, app/Shop.csproj, -o, app/out]
                run: [dotnet, app/out/Shop.dll, api]
            """, Path.Combine(folder, "berth.yaml"), new LoadOptions { Environment = new Dictionary<string, string>() });
        Assert.True(result.Succeeded, string.Join("\n", result.Diagnostics));

        var target = Assert.Single(WatchPlan.For(result.Application!));

        Assert.True(target.Filter.Matches(Path.Combine(folder, "app", "Program.cs")));
        Assert.False(target.Filter.Matches(Path.Combine(folder, "app", "out", "Shop")));
        Assert.False(target.Filter.Matches(Path.Combine(folder, "app", "bin", "Debug", "net10.0", "Shop.dll")));
        Assert.False(target.Filter.Matches(Path.Combine(folder, "out", "x.dll")));
    }

    [Fact]
    public void Groups_ServicesSharingOneBuildCommand_WatchedAsOneAndTheRestEachAlone()
    {
        var folder = Path.Combine(Path.GetTempPath(), "berth-watch-groups");
        var result = SpecLoader.LoadText("""
            x-shop: &shop
              build:
                command: [dotnet, build, app/Shop.csproj, -o, app/out]
            services:
              frontend:
                <<: *shop
                run: [dotnet, app/out/Shop.dll, frontend]
                develop: {hot_reload: true}
              api:
                <<: *shop
                run: [dotnet, app/out/Shop.dll, api]
              worker:
                <<: *shop
                run: [dotnet, app/out/Shop.dll, worker]
              db:
                <<: *shop
                run: [dotnet, app/out/Shop.dll, db]
              other:
                build: {command: [make]}
                run: [./other]
              synced:
                <<: *shop
                run: [dotnet, app/out/Shop.dll, api]
                develop:
                  watch:
                    - {action: sync, path: ./app/wwwroot, target: wwwroot}
              plain:
                run: [sleep, infinity]
            """, Path.Combine(folder, "berth.yaml"), new LoadOptions { Environment = new Dictionary<string, string>() });
        Assert.True(result.Succeeded, string.Join("\n", result.Diagnostics));
        var app = result.Application!;

        var groups = WatchPlan.Groups(app, WatchPlan.For(app)).Select(g => string.Join(" ", g)).ToList();

        Assert.Equal(["frontend", "api worker db", "other", "synced"], groups);
    }
}
