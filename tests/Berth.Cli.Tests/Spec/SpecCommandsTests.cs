
namespace Berth.Cli.Tests.Spec;

/// <summary>berth validate / config / version, run as a real process.</summary>
public class SpecCommandsTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("berth-cli-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Write(string name, string text)
    {
        var path = Path.Combine(_dir, name);
        File.WriteAllText(path, text);
        return path;
    }

    [Fact]
    public async Task Validate_ShopSample_ExitsOkAndNamesTheServices()
    {
        var run = await new BerthCli(Repository.Path(".")).RunAsync("validate", "-f", "samples/shop/berth.yaml");

        Assert.Equal((ExitCodes.Ok, ""), (run.Code, run.Err));
        Assert.Equal("samples/shop/berth.yaml: valid — 4 services (frontend, api, worker, db)\n", run.Out);
    }

    [Fact]
    public async Task Validate_InvalidSpec_ExitsInvalidSpecWithEveryErrorOnStderr()
    {
        Write("berth.yaml", "services:\n  web:\n    run: [app]\n    replicas: -1\n    restart: allways\n");

        var run = await new BerthCli(_dir).RunAsync("validate");

        Assert.Equal(ExitCodes.InvalidSpec, run.Code);
        Assert.Equal("", run.Out);
        Assert.Equal(
            "berth.yaml:4:15: error: services.web.replicas: must be 0 or more, got -1\n" +
            "berth.yaml:5:14: error: services.web.restart: 'allways' is not one of always, on-failure, never; did you mean 'always'?\n" +
            "berth.yaml: 2 errors; nothing was changed.\n",
            run.Err);
    }

    [Fact]
    public async Task Validate_NoSpecInFolder_ExitsNotFoundAndSaysWhereItLooked()
    {
        var run = await new BerthCli(_dir).RunAsync("validate");

        Assert.Equal(ExitCodes.NotFound, run.Code);
        Assert.Equal($"berth: error: no spec file here; looked for berth.yaml, berth.yml, compose.yaml, compose.yml, docker-compose.yaml, docker-compose.yml in {_dir}. Create berth.yaml, or pass -f FILE.\n", run.Err);
    }

    [Fact]
    public async Task Config_SeveralFilesAndEnvFile_MergedInOrderAsDockerCompose()
    {
        Write("compose.yaml", "name: app\nservices:\n  web:\n    image: web:${TAG}\n");
        Write("compose.prod.yaml", "services:\n  web:\n    deploy: {replicas: 3}\n");
        Write("prod.env", "TAG=2.0\n");

        var run = await new BerthCli(_dir).RunAsync("config", "-f", "compose.yaml", "-f", "compose.prod.yaml", "--env-file", "prod.env", "-o", "json");

        Assert.True(run.Code == ExitCodes.Ok, run.Err);
        using var json = JsonDocument.Parse(run.Out);
        var web = json.RootElement.GetProperty("services").GetProperty("web");
        Assert.Equal(("web:2.0", 3), (web.GetProperty("image").GetString(), web.GetProperty("replicas").GetInt32()));
    }

    [Fact]
    public async Task Validate_MissingFile_ExitsNotFound()
    {
        var run = await new BerthCli(_dir).RunAsync("validate", "-f", "nope.yaml");

        Assert.Equal((ExitCodes.NotFound, "berth: error: nope.yaml: no such file.\n"), (run.Code, run.Err));
    }

    [Theory]
    [InlineData(new[] { "berth.yaml", "compose.yaml" }, "berth.yaml")]
    [InlineData(new[] { "compose.yml", "docker-compose.yaml" }, "compose.yml")]
    [InlineData(new[] { "docker-compose.yml" }, "docker-compose.yml")]
    public async Task Validate_NoFileGiven_FindsTheDefaultInOrder(string[] present, string chosen)
    {
        foreach (var name in present)
        {
            Write(name, name.StartsWith("berth", StringComparison.Ordinal) ? "services:\n  a: {run: [a]}\n" : "services:\n  a: {image: a}\n");
        }

        var run = await new BerthCli(_dir).RunAsync("validate");

        Assert.Equal(ExitCodes.Ok, run.Code);
        Assert.StartsWith(chosen + ": valid", run.Out, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Validate_NoFileGiven_MergesComposeOverrideAsComposeDoes()
    {
        Write("compose.yaml", "services:\n  web: {image: a}\n");
        Write("compose.override.yaml", "services:\n  debug: {image: b}\n");

        var run = await new BerthCli(_dir).RunAsync("validate");

        Assert.Equal((ExitCodes.Ok, "compose.yaml + compose.override.yaml: valid — 2 services (web, debug)\n"), (run.Code, run.Out.Replace(_dir + "/", "", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task Validate_JsonOutput_ReportsDiagnosticsOnStdout()
    {
        Write("compose.yaml", "services:\n  web:\n    image: nginx\n    depend_on: [db]\n");

        var run = await new BerthCli(_dir).RunAsync("validate", "-o", "json");

        Assert.Equal((ExitCodes.InvalidSpec, ""), (run.Code, run.Err));
        using var json = JsonDocument.Parse(run.Out);
        Assert.False(json.RootElement.GetProperty("valid").GetBoolean());
        var diagnostic = Assert.Single(json.RootElement.GetProperty("diagnostics").EnumerateArray());
        Assert.Equal(("error", 4, 5, "services.web.depend_on", "unknown key 'depend_on' in a Compose service; did you mean 'depends_on'?"),
            (diagnostic.GetProperty("severity").GetString(), diagnostic.GetProperty("line").GetInt32(), diagnostic.GetProperty("column").GetInt32(),
             diagnostic.GetProperty("path").GetString(), diagnostic.GetProperty("message").GetString()));
    }

    [Fact]
    public async Task Config_ComposeFile_PrintsTheNormalizedSpecOnStdoutAndWarningsOnStderr()
    {
        var file = Repository.Path("samples/compose/traefik-whoami/compose.yaml");

        var run = await new BerthCli(_dir).RunAsync("config", "-f", file);

        Assert.Equal((ExitCodes.Ok, ""), (run.Code, run.Err));
        var expected = SpecLoader.LoadFile(file, new LoadOptions { Environment = new Dictionary<string, string>() });
        Assert.Equal(SpecWriter.ToYaml(expected.Application!), run.Out);
    }

    [Fact]
    public async Task Config_JsonOutput_IsTheModelAsJson()
    {
        var run = await new BerthCli(Repository.Path("samples/shop")).RunAsync("config", "-o", "json");

        Assert.Equal(ExitCodes.Ok, run.Code);
        using var json = JsonDocument.Parse(run.Out);
        Assert.Equal("shop", json.RootElement.GetProperty("name").GetString());
        Assert.Equal(2, json.RootElement.GetProperty("services").GetProperty("api").GetProperty("replicas").GetInt32());
    }

    [Fact]
    public async Task Config_SecretEnv_IsMaskedUnlessShowSecrets()
    {
        Write("berth.yaml", "services:\n  web:\n    run: [app]\n    secrets:\n      DB_PASSWORD: hunter2\n    environment:\n      MODE: prod\n");

        var masked = await new BerthCli(_dir).RunAsync("config");
        var shown = await new BerthCli(_dir).RunAsync("config", "--show-secrets");

        Assert.Contains("DB_PASSWORD: '***'", masked.Out, StringComparison.Ordinal);
        Assert.DoesNotContain("hunter2", masked.Out + masked.Err, StringComparison.Ordinal);
        Assert.Contains("DB_PASSWORD: hunter2", shown.Out, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Config_ProfileOption_ActivatesProfiledServices()
    {
        Write("compose.yaml", "services:\n  web: {image: a}\n  debug: {image: b, profiles: [debug]}\n");

        var off = await new BerthCli(_dir).RunAsync("config", "-o", "json");
        var on = await new BerthCli(_dir).RunAsync("config", "-o", "json", "--profile", "debug");

        Assert.Equal(["web"], JsonDocument.Parse(off.Out).RootElement.GetProperty("services").EnumerateObject().Select(p => p.Name));
        Assert.Equal(["web", "debug"], JsonDocument.Parse(on.Out).RootElement.GetProperty("services").EnumerateObject().Select(p => p.Name));
    }

    [Fact]
    public async Task Config_UnknownOutputFormat_ExitsUsage()
    {
        var run = await new BerthCli(_dir).RunAsync("config", "-o", "xml");

        Assert.Equal(ExitCodes.Usage, run.Code);
        Assert.Equal("berth config: --output wants one of yaml, json; not 'xml'\nRun 'berth config --help' for usage.\n", run.Err);
    }

    [Fact]
    public async Task UnknownCommand_ExitsUsage()
    {
        var run = await new BerthCli(_dir).RunAsync("valdate");

        Assert.Equal(ExitCodes.Usage, run.Code);
        Assert.StartsWith("berth: ", run.Err, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("validate")]
    [InlineData("config")]
    [InlineData("version")]
    public async Task Help_EveryCommand_DescribesItself(string command)
    {
        var run = await new BerthCli(_dir).RunAsync(command, "--help");

        Assert.Equal(ExitCodes.Ok, run.Code);
        Assert.Contains($"berth {command} [options]", run.Out, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Version_PrintsTheVersionAndRuntime()
    {
        var run = await new BerthCli(_dir).RunAsync("version");

        Assert.Equal(ExitCodes.Ok, run.Code);
        Assert.Matches(@"^berth \S+ \(\.NET 10\.\d+\.\d+\)\n$", run.Out);
    }
}
