
namespace Berth.Core.Tests.Samples;

/// <summary>The shop sample's program honours Berth's discovery convention: built with the command its berth.yaml gives, each
/// role started by this test (not by Berth) with the argv from the spec on free loopback ports and wired by hand through
/// services__{service}__{endpoint}__0, it serves an order end to end. The path through Berth itself (berth up, the mesh,
/// Ctrl-C) is Berth.EndToEnd.Tests' ReadmeMainPathTests.</summary>
public sealed class ShopSampleWiringTests : IAsyncLifetime
{
    private readonly string _copy = Directory.CreateTempSubdirectory("berth-shop-").FullName;
    private readonly List<Process> _processes = [];

    public Task InitializeAsync() => Task.CompletedTask;

    public Task DisposeAsync()
    {
        foreach (var process in _processes)
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
                process.WaitForExit(TimeSpan.FromSeconds(10));
            }

            process.Dispose();
        }

        Directory.Delete(_copy, recursive: true);
        return Task.CompletedTask;
    }

    [Fact]
    public async Task ShopSample_RolesWiredByHandPerDiscoveryConvention_FrontendShowsOrdersPricedByWorkerAndStoredInDb()
    {
        // A private copy, so a concurrent build of the sample elsewhere cannot collide with this one.
        var source = Repository.Path("samples/shop");
        foreach (var file in new[] { "Directory.Build.props", "Directory.Packages.props", "app/Shop.csproj", "app/Program.cs" })
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.Combine(_copy, file))!);
            File.Copy(Path.Combine(source, file), Path.Combine(_copy, file));
        }

        var app = SpecLoader.LoadFile(Path.Combine(source, "berth.yaml"), new LoadOptions { Environment = new Dictionary<string, string>() }).Application!;
        var build = app.Services[0].Build!.Command;
        await RunToEndAsync(build[0], build[1..], _copy);

        var ports = app.Services.ToDictionary(s => s.Name, _ => Ports.Free());
        var discovery = app.Services.ToDictionary(s => $"services__{s.Name}__{s.Endpoints[0].Name}__0", s => $"http://127.0.0.1:{ports[s.Name]}");
        foreach (var service in app.Services)
        {
            Start(service.Command[0], service.Command[1..], _copy, new Dictionary<string, string>(discovery) { ["PORT"] = ports[service.Name].ToString() });
        }

        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        foreach (var name in new[] { "frontend", "api", "worker" })
        {
            await Poll.UntilAsync(async () => await Healthy(http, $"http://127.0.0.1:{ports[name]}/healthz"), TimeSpan.FromSeconds(90), $"{name} answers /healthz");
        }

        var order = await http.PostAsync($"http://127.0.0.1:{ports["api"]}/orders?item=tea&qty=2", null);
        Assert.True(order.IsSuccessStatusCode, await order.Content.ReadAsStringAsync());
        var page = await http.GetStringAsync($"http://127.0.0.1:{ports["frontend"]}/");

        // tea: 2 × (1.5 + len("tea") % 5) = 9.0, computed by the worker, stored in and read back from the db.
        Assert.Contains("orders: [\"tea:2:9.0\"]", page, StringComparison.Ordinal);
    }

    private static async Task<bool> Healthy(HttpClient http, string url)
    {
        try
        {
            return (await http.GetAsync(url)).IsSuccessStatusCode;
        }
        catch (HttpRequestException)
        {
            return false;
        }
    }

    private void Start(string program, IEnumerable<string> args, string dir, Dictionary<string, string> env)
    {
        var start = ChildProcess.Start(program, args);
        start.WorkingDirectory = dir;
        foreach (var (key, value) in env)
        {
            start.Environment[key] = value;
        }

        _processes.Add(ChildProcess.StartDrained(start));
    }

    private static async Task RunToEndAsync(string program, IEnumerable<string> args, string dir)
    {
        var start = ChildProcess.Start(program, args);
        start.WorkingDirectory = dir;
        start.Environment["DOTNET_NOLOGO"] = "1";

        // A build of its own: no MSBuild nodes or build server shared with the build that is running these tests.
        start.Environment["MSBUILDDISABLENODEREUSE"] = "1";
        start.Environment["DOTNET_CLI_DO_NOT_USE_MSBUILD_SERVER"] = "1";
        // 4 minutes: generous, the machine may be busy.
        var (exit, output, errors) = await ChildProcess.RunAsync(start, TimeSpan.FromMinutes(4), $"{program} {string.Join(' ', args)}");
        Assert.True(exit == 0, $"{program} {string.Join(' ', args)} exited {exit}:\n{output}\n{errors}");
    }
}
