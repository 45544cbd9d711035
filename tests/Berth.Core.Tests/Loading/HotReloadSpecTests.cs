using Berth.Core.Build;

namespace Berth.Core.Tests.Loading;

/// <summary><c>develop.hot_reload</c>: a process service's replicas run <c>dotnet watch</c> on its project, with its app
/// arguments; refused for a Docker service at its line; written back by the spec writer.</summary>
public class HotReloadSpecTests
{
    private static readonly string Folder = Path.Combine(Path.GetTempPath(), "berth-hot-reload");

    private static LoadResult Load(string yaml) =>
        SpecLoader.LoadText(yaml, Path.Combine(Folder, "berth.yaml"), new LoadOptions { Environment = new Dictionary<string, string>() });

    private static string[] Problems(string yaml) =>
        [.. Load(yaml).Diagnostics.Select(d => $"{d.Severity} {d.Line}:{d.Column}: {d.Path}: {d.Message}")];

    [Fact]
    public void Command_ShopStyleService_WatchesTheBuildsProjectWithTheArgumentsAfterTheDll()
    {
        var result = Load("""
            services:
              api:
                build:
                  command: [dotnet, build, app/Shop.csproj, -c, Release, -o, app/out]
                run: [dotnet, app/out/Shop.dll, api]
                develop:
                  hot_reload: true
              plain:
                run: [dotnet, out/Plain.dll]
                working_dir: ./plain
                develop: {hot_reload: true}
            """);

        Assert.True(result.Succeeded, string.Join("\n", result.Diagnostics));
        var app = result.Application!;
        Assert.True(app.FindService("api")!.HotReload);
        Assert.Equal(["dotnet", "watch", "--project", Path.Combine(Folder, "app/Shop.csproj"), "run", "--no-launch-profile", "--", "api"],
            HotReload.Command(app, app.FindService("api")!).ToArray());
        Assert.Equal(["dotnet", "watch", "--project", Path.Combine(Folder, "plain"), "run", "--no-launch-profile", "--"],
            HotReload.Command(app, app.FindService("plain")!).ToArray());
    }

    [Fact]
    public void Load_HotReloadOnADockerService_IsAnErrorAtItsLine()
    {
        var problems = Problems("""
            services:
              web:
                image: nginx
                develop:
                  hot_reload: true
            """);

        Assert.Equal(["Error 5:19: services.web.develop.hot_reload: is for process services (a .NET project run on this machine under 'dotnet watch'); a Docker service is rebuilt and rolled out by a rebuild rule instead"], problems);
    }

    [Fact]
    public void Load_HotReloadWithLivenessAndNoStartupProbe_WarnsToAddOne()
    {
        var problems = Problems("""
            services:
              api:
                run: [dotnet, out/Api.dll]
                endpoints: {http: 8080}
                probes:
                  liveness: {http: /healthz}
                develop: {hot_reload: true}
            """);

        Assert.Equal(["Warning 7:27: services.api.develop.hot_reload: each replica builds the project under 'dotnet watch' before it listens (tens of seconds), and the liveness probe starts at once, so it may restart the replica before it is up; add a startup probe (e.g. startup: {http: /healthz, period: 2s, failure_threshold: 150})"], problems);
    }

    [Fact]
    public void Load_HotReloadUnderASmallMemoryLimit_WarnsToGiveItMore()
    {
        var small = Problems("""
            services:
              api:
                run: [dotnet, out/Api.dll]
                resources: {limits: {memory: 256Mi}}
                develop: {hot_reload: true}
            """);
        var enough = Load("""
            services:
              api:
                run: [dotnet, out/Api.dll]
                resources: {limits: {memory: 2Gi}}
                develop: {hot_reload: true}
            """).Diagnostics;

        Assert.Equal(["Warning 5:27: services.api.develop.hot_reload: 'dotnet watch' builds the project and compiles each edit inside the replica, under its memory limit (256Mi), which is below 1Gi: it may be OOM-killed at an edit and restart from a full build; give the replica more for development (e.g. resources: {limits: {memory: 2Gi}} in an override file)"], small);
        Assert.Empty(enough);
    }

    [Fact]
    public void Write_HotReload_LoadsBack()
    {
        var first = Load("""
            services:
              api:
                run: [dotnet, out/Api.dll]
                develop: {hot_reload: true}
            """);
        Assert.True(first.Succeeded, string.Join("\n", first.Diagnostics));

        var yaml = SpecWriter.ToYaml(first.Application!);
        var again = Load(yaml);

        Assert.Contains("hot_reload: true", yaml, StringComparison.Ordinal);
        Assert.True(again.Application!.FindService("api")!.HotReload, yaml);
    }
}
