namespace Berth.Cli.Tests.Shell;

/// <summary>One detached app (web ×2, api ×1, fixed stable ports) started with <c>up --wait</c>, driven as a user would:
/// global -f/-p before or after the command, output formats, atomic multi-argument commands, stop/start, port, ls.</summary>
public sealed class DayTwoApp : IAsyncLifetime
{
    public string Dir { get; } = Directory.CreateTempSubdirectory("berth-cli-day2-").FullName;

    /// <summary>A registry (XDG_STATE_HOME) of this app's own, so 'berth ls' shows only it.</summary>
    public string StateHome => Path.Combine(Dir, "xdg");

    public int WebPort { get; } = Ports.Free();

    public int ApiPort { get; } = Ports.Free();

    public CliResult Up { get; private set; } = new(-1, "", "");

    /// <summary>The app's name, unique so that no other test's app on the machine shares it.</summary>
    public string Name { get; } = "day2-" + Guid.NewGuid().ToString("N")[..8];

    public BerthCli Cli(string? directory = null) => new(directory ?? Dir) { Environment = { ["XDG_STATE_HOME"] = StateHome } };

    public async Task InitializeAsync()
    {
        await File.WriteAllTextAsync(Path.Combine(Dir, "berth.yaml"), $$"""
            name: {{Name}}
            services:
              web:
                run: {{TestHttpServer.Yaml}}
                replicas: 2
                endpoints:
                  http: {{WebPort}}
                probes:
                  readiness: {http: /, period: 500ms}
                stop_grace_period: 2s
              api:
                run: {{TestHttpServer.Yaml}}
                endpoints:
                  http: {{ApiPort}}
                stop_grace_period: 2s
            """);
        Up = await Cli().RunAsync("up", "--wait");
    }

    public async Task DisposeAsync()
    {
        await Cli().DownAsync();
        Directory.Delete(Dir, recursive: true);
    }
}

[Collection("real processes")]
public sealed class DayTwoCliTests(DayTwoApp app) : IClassFixture<DayTwoApp>
{
    private readonly BerthCli _cli = app.Cli();

    private async Task<List<JsonElement>> ReplicasAsync(string service) =>
        [.. (await _cli.PsAsync()).Where(r => r.GetProperty("service").GetString() == service)];

    [Fact]
    public void UpWait_TwoServices_PrintsEachStableAddressAndReturnsWhenReady()
    {
        Assert.True(app.Up.Code == ExitCodes.Ok, app.Up.ToString());
        var lines = app.Up.Err.Split('\n');
        Assert.StartsWith("berth: control plane running in the background (pid ", lines[0], StringComparison.Ordinal);
        Assert.StartsWith("berth: dashboard: http://127.0.0.1:", lines[1], StringComparison.Ordinal);
        Assert.Contains("/login?code=", lines[1], StringComparison.Ordinal);
        Assert.Contains($"berth:   web  http://127.0.0.1:{app.WebPort}", lines);
        Assert.Contains($"berth:   api  http://127.0.0.1:{app.ApiPort}", lines);
        Assert.Matches(@"^berth: ready: web 2/2, api 1/1 \(\d+\.\ds\)$", lines[^2]);
    }

    [Fact]
    public async Task Ps_Table_ShowsStablePortToReplicaPort()
    {
        var replicas = await _cli.PsAsync();
        var result = await _cli.OkAsync("ps");

        var expected = new List<string> { "REPLICA    SERVICE  PHASE  NODE   PORTS                   RESTARTS  REV  REASON" };
        foreach (var r in replicas)
        {
            var stable = r.GetProperty("service").GetString() == "web" ? app.WebPort : app.ApiPort;
            var row = $"{r.GetProperty("id").GetString(),-9}  {r.GetProperty("service").GetString(),-7}  ready  local  "
                + $"{$"127.0.0.1:{stable}->{r.GetProperty("ports").GetProperty("http").GetInt32()}",-22}  "
                + $"{r.GetProperty("restarts").GetInt32(),-8}  {r.GetProperty("revision").GetInt64(),-3}";
            expected.Add(row.TrimEnd());
        }

        Assert.Equal(string.Join('\n', expected) + "\n", result.Out);
        Assert.Matches(@"berth: dashboard: http://127\.0\.0\.1:\d+/login\?code=", result.Err);
    }

    [Fact]
    public async Task GlobalOptions_FileBeforeCommandAndProjectNameFromElsewhere_FindTheApp()
    {
        var elsewhere = app.Cli(Path.GetTempPath());
        var spec = Path.Combine(app.Dir, "berth.yaml");

        var byFile = await elsewhere.RunAsync("-f", spec, "port", "web");
        var byFileAfter = await elsewhere.RunAsync("port", "web", "--file", spec);
        var byName = await elsewhere.RunAsync("-p", app.Name, "port", "api");
        var byNameAfter = await elsewhere.RunAsync("port", "api", "-p", app.Name);
        var unknown = await elsewhere.RunAsync("-p", "nope-app", "ps");
        var ls = await elsewhere.RunAsync("ls");

        Assert.Equal(new CliResult(0, $"http://127.0.0.1:{app.WebPort}\n", ""), byFile);
        Assert.Equal(byFile, byFileAfter);
        Assert.Equal(new CliResult(0, $"http://127.0.0.1:{app.ApiPort}\n", ""), byName);
        Assert.Equal(byName, byNameAfter);
        Assert.Equal(new CliResult(ExitCodes.NotFound, "", "berth: error: no app named 'nope-app' has run on this machine; 'berth ls' lists them\n"), unknown);
        var name = app.Name.PadRight(Math.Max(4, app.Name.Length));
        Assert.Equal(new CliResult(0, $"{"NAME".PadRight(name.Length)}  STATUS   READY  SPEC\n{name}  running  3/3    {spec}\n", ""), ls);
    }

    [Fact]
    public async Task LogsAndEvents_FileBeforeCommand_DashFAfterIsFollow()
    {
        var elsewhere = app.Cli(Path.GetTempPath());
        var spec = Path.Combine(app.Dir, "berth.yaml");

        await using var follow = elsewhere.Start("-f", spec, "events", "-f", "-o", "json");
        await Poll.UntilAsync(() => follow.OutLines.Count > 0 || follow.HasExited, TimeSpan.FromSeconds(60), "'berth -f FILE events -f' printing events");
        Assert.False(follow.HasExited, $"-f after events means --follow, so it keeps running: {follow.Err}");
        var first = JsonDocument.Parse(follow.OutLines[0]).RootElement;
        Assert.True(first.TryGetProperty("type", out _), follow.OutLines[0]);
    }

    [Fact]
    public async Task Formats_TemplateJsonpathYamlJson_OneStyleReadableTimes()
    {
        var replicas = await _cli.PsAsync();
        var ids = replicas.Select(r => r.GetProperty("id").GetString()!).ToList();

        var go = await _cli.OkAsync("ps", "--format", "{{.ID}} {{.Phase}} {{.ports.http}}");
        var table = await _cli.OkAsync("ps", "--format", "table {{.Id}}\\t{{.Service}}");
        var jsonpath = await _cli.OkAsync("ps", "--format", "jsonpath={range [*]}{.id}{\"\\t\"}{.service}{\"\\n\"}{end}");
        var yaml = await _cli.OkAsync("ps", "-o", "yaml");
        var json = await _cli.OkAsync("ps", "-o", "json");
        var events = await _cli.OkAsync("events", "--format", "{{.type}}");
        var history = await _cli.OkAsync("rollout", "history", "web", "--format", "{{.revision}} {{.current}}");

        Assert.Equal(string.Concat(replicas.Select(r => $"{r.GetProperty("id").GetString()} ready {r.GetProperty("ports").GetProperty("http").GetInt32()}\n")), go.Out);
        Assert.Equal("ID         SERVICE\n" + string.Concat(replicas.Select(r => $"{r.GetProperty("id").GetString()}  {r.GetProperty("service").GetString()}\n")), table.Out);
        Assert.Equal(string.Concat(replicas.Select(r => $"{r.GetProperty("id").GetString()}\t{r.GetProperty("service").GetString()}\n")), jsonpath.Out);
        Assert.Equal(ids.Select(id => $"- id: {id}"), yaml.Out.Split('\n').Where(l => l.StartsWith("- id: ", StringComparison.Ordinal)));
        Assert.DoesNotContain("\\u002B", json.Out, StringComparison.Ordinal);
        Assert.Matches(@"""createdAt"": ""\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+\+00:00""", json.Out);
        Assert.Contains("ready\n", events.Out, StringComparison.Ordinal);
        Assert.Equal("1 true\n", history.Out);
    }

    [Fact]
    public async Task Scale_OneUnknownService_ChangesNothingAndNamesIt()
    {
        var result = await _cli.RunAsync("scale", "web=3", "wbe=1", "api=x");

        Assert.Equal(ExitCodes.Usage, result.Code);
        Assert.Equal(
            "berth: error: no service 'wbe'; did you mean 'web'?\n"
            + "berth: error: 'api=x' is not SERVICE=N with N a whole number 0 or more; write e.g. api=5\n"
            + "berth: nothing was scaled\n", result.Err);
        Assert.Equal(2, (await ReplicasAsync("web")).Count);
        var unknownOnly = await _cli.RunAsync("scale", "web=3", "nope=1");
        Assert.Equal(new CliResult(ExitCodes.NotFound, "", "berth: error: no service 'nope'; the services are web, api\nberth: nothing was scaled\n"), unknownOnly);
    }

    [Fact]
    public async Task Restart_WaitAndAnUnknownName_ChecksFirstThenWaitsForReady()
    {
        var before = (await ReplicasAsync("api")).Single().GetProperty("restarts").GetInt32();

        var refused = await _cli.RunAsync("restart", "api", "nope", "--wait");
        Assert.Equal(new CliResult(ExitCodes.NotFound, "", "berth: error: no service or replica 'nope'; see 'berth ps'\nberth: nothing was restarted\n"), refused);
        Assert.Equal(before, (await ReplicasAsync("api")).Single().GetProperty("restarts").GetInt32());

        var restarted = await _cli.RunAsync("restart", "api", "--wait");
        Assert.Equal(ExitCodes.Ok, restarted.Code);
        Assert.Matches(@"^berth: api: restarting 1 replica\(s\)\nberth: ready: api 1/1 \(\d+\.\ds\)\n$", restarted.Err);
        var api = (await ReplicasAsync("api")).Single();
        Assert.Equal("ready", api.GetProperty("phase").GetString());
        Assert.Equal(before + 1, api.GetProperty("restarts").GetInt32());
    }

    [Fact]
    public async Task StopStartPort_Service_StopsOnlyItAndStartsItAgain()
    {
        var stop = await _cli.RunAsync("stop", "api");
        Assert.Equal(new CliResult(0, "", "berth: api: stopped\n"), stop);
        await Poll.UntilAsync(async () => (await ReplicasAsync("api")).Count == 0, TimeSpan.FromSeconds(60), "api's replica gone after 'berth stop api'");
        var ps = await _cli.OkAsync("ps");
        Assert.EndsWith("api: stopped ('berth start api')\n", ps.Out, StringComparison.Ordinal);
        Assert.Equal(2, (await ReplicasAsync("web")).Count(r => r.GetProperty("phase").GetString() == "ready"));

        var start = await _cli.RunAsync("start", "api", "nope");
        Assert.Equal(new CliResult(ExitCodes.NotFound, "", "berth: error: no service 'nope'; the services are web, api\nberth: nothing was started\n"), start);
        Assert.Equal(new CliResult(0, "", "berth: api: started\n"), await _cli.RunAsync("start", "api"));
        await Poll.UntilAsync(async () => (await ReplicasAsync("api")).Any(r => r.GetProperty("phase").GetString() == "ready"), TimeSpan.FromSeconds(60), "api Ready after 'berth start api'");

        Assert.Equal(new CliResult(0, $"http://127.0.0.1:{app.ApiPort}\n", ""), await _cli.RunAsync("port", "api"));
        Assert.Equal(new CliResult(0, $"http://127.0.0.1:{app.ApiPort}\n", ""), await _cli.RunAsync("port", "api", "http"));
        Assert.Equal(new CliResult(ExitCodes.NotFound, "", "berth: error: api has no endpoint 'grpc'; it has http\n"), await _cli.RunAsync("port", "api", "grpc"));
    }
}
