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

    [Fact]
    public async Task Logs_EveryServiceMergedByTimeAndFollowingReplicasThatStartLater()
    {
        var all = await _cli.OkAsync("logs", "-t");
        var lines = all.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var times = lines.Select(l => DateTimeOffset.Parse(l.Split(" | ", 2)[1].Split(' ')[0], CultureInfo.InvariantCulture)).ToList();
        Assert.Equal(times.Order(), times);
        Assert.Contains(lines, l => l.StartsWith("web-", StringComparison.Ordinal) && l.Contains(" listening on ", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("api-", StringComparison.Ordinal) && l.Contains(" listening on ", StringComparison.Ordinal));
        Assert.Equal(new CliResult(0, "", ""), await _cli.RunAsync("logs", "web", "api", "--since", "2099-01-01T00:00:00Z"));
        Assert.Equal(new CliResult(ExitCodes.Usage, "", "berth: error: --since: 'yesterday' is neither a time (2026-01-02T15:04:05Z) nor a duration (10m, 1h30m)\n"),
            await _cli.RunAsync("logs", "--since", "yesterday"));
        Assert.Equal(new CliResult(ExitCodes.NotFound, "", "berth: error: no service or replica 'wbe'; did you mean 'web'?\n"), await _cli.RunAsync("logs", "web", "wbe"));

        await using var follow = _cli.Start("logs", "-f", "web");
        await Poll.UntilAsync(() => follow.OutLines.Count(l => l.Contains("| listening on ", StringComparison.Ordinal)) == 2 || follow.HasExited, TimeSpan.FromSeconds(60),
            "'berth logs -f web' printing both replicas' first line");
        await _cli.OkAsync("scale", "web=3");
        await Poll.UntilAsync(() => follow.OutLines.Where(l => l.Contains("| listening on ", StringComparison.Ordinal)).Select(l => l.Split(' ')[0]).Distinct().Count() == 3 || follow.HasExited,
            TimeSpan.FromSeconds(90), $"the replica started by 'scale web=3' followed too; printed:\n{follow.Out}");
        Assert.False(follow.HasExited, follow.Err);

        await _cli.OkAsync("scale", "web=2");
        await Poll.UntilAsync(async () => (await ReplicasAsync("web")).Count == 2, TimeSpan.FromSeconds(60), "web back to 2 replicas");
    }

    [Fact]
    public async Task Describe_ServiceAndReplica_ShowsReplicasLastLogLinesAndEvents()
    {
        var web = await ReplicasAsync("web");
        var service = await _cli.RunAsync("describe", "web");
        var replica = await _cli.RunAsync("describe", web[0].GetProperty("id").GetString()!);
        var unknown = await _cli.RunAsync("describe", "wbe");

        Assert.Equal(0, service.Code);
        var lines = service.Out.Split('\n');
        Assert.Equal(["Service:    web", "Runtime:    process"], lines[..2]);
        Assert.Contains("Replicas:   2 ready / 2 wanted", lines);
        Assert.Contains($"Endpoint:   http http://127.0.0.1:{app.WebPort} (http)", lines);
        Assert.Equal(2, lines.Count(l => l.StartsWith("Replica:    web-", StringComparison.Ordinal) && l.EndsWith("  ready", StringComparison.Ordinal)));
        Assert.Equal(2, lines.Count(l => l.StartsWith("  | listening on ", StringComparison.Ordinal)));
        Assert.Contains(lines, l => l.StartsWith("  ", StringComparison.Ordinal) && l.Contains(" ready ", StringComparison.Ordinal) && l.Contains("web-", StringComparison.Ordinal));
        Assert.Equal(0, replica.Code);
        Assert.StartsWith($"Replica:    {web[0].GetProperty("id").GetString()}  ready\n", replica.Out, StringComparison.Ordinal);
        Assert.Equal(new CliResult(ExitCodes.NotFound, "", "berth: error: no service or replica 'wbe'; did you mean 'web'?\n"), unknown);
    }

    [CgroupFact]
    public async Task Stats_UnderLoad_ShowsRequestsPerSecondOfEachReplicaAndItsService()
    {
        Assert.True(app.Up.Code == 0, app.Up.ToString());
        // Rows in the order the services are named, replicas in id order. Bounded loopback load through web's stable port only; api gets none.
        await using var load = LoopbackLoad.Start(app.WebPort, new LoopbackLoadOptions { Clients = 2, Pace = TimeSpan.FromMilliseconds(20), MaxRequests = 20_000, MaxTime = TimeSpan.FromMinutes(3) });
        await load.MoreAsync(20, TimeSpan.FromSeconds(60));
        List<JsonElement> web = [];
        await Poll.UntilAsync(async () =>
        {
            web = [.. JsonDocument.Parse((await _cli.OkAsync("stats", "--no-stream", "-o", "json", "web")).Out).RootElement.EnumerateArray().Select(r => r.Clone())];
            return web.Count == 2 && web.All(r => r.TryGetProperty("requestsPerSecond", out var rps) && rps.GetDouble() > 0);
        }, TimeSpan.FromSeconds(90), "both web replicas to show requestsPerSecond > 0 in 'berth stats --no-stream -o json web' under load through the stable port");
        var table = await _cli.OkAsync("stats", "--no-stream", "web", "api");
        var api = JsonDocument.Parse((await _cli.OkAsync("stats", "--no-stream", "-o", "json", "api")).Out).RootElement.EnumerateArray().Single();
        var result = await load.StopAsync();

        Assert.Equal(0, result.Failed);
        // The service's rate is what its listener answered; each replica's is its share (retries aside), so no replica's exceeds it by much.
        Assert.All(web, r => Assert.True(r.GetProperty("serviceRequestsPerSecond").GetDouble() > 0, r.ToString()));
        Assert.All(web, r => Assert.InRange(r.GetProperty("requestsPerSecond").GetDouble(), 0.01, r.GetProperty("serviceRequestsPerSecond").GetDouble() * 1.5 + 1));
        Assert.Equal(0, api.GetProperty("requestsPerSecond").GetDouble());
        Assert.Equal(0, api.GetProperty("serviceRequestsPerSecond").GetDouble());
        var lines = table.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(4, lines.Length);
        Assert.Matches(@"^REPLICA +SERVICE +CPU % +MEM USAGE / LIMIT +MEM % +PIDS +RESTARTS +REQ/S +SERVICE REQ/S$", lines[0]);
        Assert.All(lines[1..3], l => Assert.Matches(@"^web-\w+ +web +\d+\.\d\d% +[\d.]+(B|KiB|MiB|GiB) / ([\d.]+(B|KiB|MiB|GiB|TiB)|-) +(\d+\.\d\d%|-) +\d+ +\d+ +\d+\.\d +\d+\.\d$", l));
        Assert.Matches(@"^api-\w+ +api +\d+\.\d\d% +[\d.]+(B|KiB|MiB|GiB) / ([\d.]+(B|KiB|MiB|GiB|TiB)|-) +(\d+\.\d\d%|-) +\d+ +\d+ +0\.0 +0\.0$", lines[3]);
    }
}
