
namespace Berth.Core.Tests.Loading;

/// <summary>compose.yaml + compose.override.yaml, merged as Compose merges them.</summary>
public class OverrideFileTests : IDisposable
{
    private readonly TempFolder _temp = new("berth-override-");

    public void Dispose() => _temp.Dispose();

    [Fact]
    public void LoadFiles_Override_ReplacesScalarsAndAddsToLists()
    {
        var main = _temp.Write("compose.yaml", """
            services:
              web:
                image: web:1
                command: ["serve"]
                ports: ["8080:80"]
                environment: {MODE: prod, LEVEL: info}
                labels: {team: shop}
                volumes: ["./a:/data"]
                depends_on: [db]
              db:
                image: postgres:16
            """);
        var over = _temp.Write("compose.override.yaml", """
            services:
              web:
                image: web:dev
                ports: ["8080:80", "9229:9229"]
                environment:
                  - MODE=dev
                labels: {debug: "true"}
                volumes: ["./b:/data"]
                depends_on:
                  db: {condition: service_started, required: false}
              adminer:
                image: adminer
            """);

        var result = SpecLoader.LoadFiles([main, over], new LoadOptions { Environment = new Dictionary<string, string>() });

        Assert.True(result.Succeeded, string.Join("\n", result.Diagnostics));
        var app = result.Application!;
        Assert.Equal(["web", "db", "adminer"], app.Services.Select(s => s.Name));
        var web = app.Services[0];
        Assert.Equal("web:dev", web.Image);
        Assert.Equal(["serve"], web.Command.ToArray());
        Assert.Equal([(8080, 80), (9229, 9229)], web.Endpoints.Select(e => (e.Port!.Value, e.TargetPort!.Value)));
        Assert.Equal(new Dictionary<string, string> { ["LEVEL"] = "info", ["MODE"] = "dev" }, web.Env);
        Assert.Equal(new Dictionary<string, string> { ["debug"] = "true", ["team"] = "shop" }, web.Labels);
        Assert.Equal(Path.Combine(_temp.Path, "b"), Assert.Single(web.Volumes).Source);
        Assert.Equal(new Dependency("db") { Required = false }, Assert.Single(web.DependsOn));
        Assert.Equal(main, app.SourceFile);
    }

    [Fact]
    public void LoadFiles_ErrorInOverride_NamesTheOverrideFile()
    {
        var main = _temp.Write("compose.yaml", "services:\n  web:\n    image: web:1\n");
        var over = _temp.Write("compose.override.yaml", "services:\n  web:\n    replicas: 2\n");

        var result = SpecLoader.LoadFiles([main, over], new LoadOptions { Environment = new Dictionary<string, string>() });

        Assert.Equal([$"{over}:3:5: error: services.web.replicas: unknown key 'replicas' in a Compose service; see docs/spec.md for the keys a Compose service takes"],
            result.Diagnostics.Select(d => d.ToString()));
    }

    [Fact]
    public void LoadFiles_OverrideOnlyAddsHealthcheck_MakesHealthyDependencyValid()
    {
        var main = _temp.Write("compose.yaml", "services:\n  web:\n    image: w\n    depends_on: {db: {condition: service_healthy}}\n  db:\n    image: postgres\n");
        var over = _temp.Write("compose.override.yaml", "services:\n  db:\n    healthcheck: {test: [\"CMD\", \"pg_isready\"]}\n");

        Assert.False(SpecLoader.LoadFile(main, new LoadOptions { Environment = new Dictionary<string, string>() }).Succeeded);
        Assert.True(SpecLoader.LoadFiles([main, over], new LoadOptions { Environment = new Dictionary<string, string>() }).Succeeded);
    }

    [Fact]
    public void LoadFiles_OverrideWithoutRestart_KeepsTheFilesRestartAndCanDisableHealthcheck()
    {
        var main = _temp.Write("compose.yaml", "services:\n  db:\n    image: postgres\n    restart: always\n    healthcheck: {test: [\"CMD\", \"pg_isready\"]}\n");
        var over = _temp.Write("compose.override.yaml", "services:\n  db:\n    healthcheck: {disable: true}\n");

        var db = SpecLoader.LoadFiles([main, over], new LoadOptions { Environment = new Dictionary<string, string>() }).Application!.Services[0];

        Assert.Equal(RestartMode.Always, db.Restart.Mode);
        Assert.Null(db.Readiness);
    }

    [Theory]
    [InlineData("compose.yaml", "compose.override.yaml", true)]
    [InlineData("compose.yml", "compose.override.yml", true)]
    [InlineData("docker-compose.yml", "docker-compose.override.yml", true)]
    [InlineData("docker-compose.yaml", "compose.override.yaml", false)]
    [InlineData("berth.yaml", "berth.override.yaml", false)]
    public void FindOverrideFile_FollowsComposeNaming(string main, string candidate, bool found)
    {
        _temp.Write(candidate, "services: {}\n");

        Assert.Equal(found ? Path.Combine(_temp.Path, candidate) : null, SpecLoader.FindOverrideFile(Path.Combine(_temp.Path, main)));
    }
}
