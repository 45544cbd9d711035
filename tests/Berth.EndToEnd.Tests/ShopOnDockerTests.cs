
namespace Berth.EndToEnd.Tests;

/// <summary>
/// The README's sample on Docker, offline: the real <c>berth</c> binary runs samples/shop (a copy on free ports, its own app
/// name and image tag) with <c>BERTH_RUNTIME=docker</c>, which builds the app on the host, makes the base image from the
/// host's .NET runtime, builds the image and runs every replica as a host-network container.
/// </summary>
public sealed class ShopOnDockerTests : IDisposable
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(90);
    private readonly string _dir = Directory.CreateTempSubdirectory("berth-shop-docker-").FullName;
    private readonly string _app = "shop" + Guid.NewGuid().ToString("N")[..8];
    private readonly string _image;
    private readonly Dictionary<string, int> _ports = new()
    {
        ["frontend"] = Ports.Free(), ["api"] = Ports.Free(), ["worker"] = Ports.Free(), ["db"] = Ports.Free(),
    };

    public ShopOnDockerTests()
    {
        _image = $"berth-shop-e2e:{_app}";
        Repository.CopySample("samples/shop", _dir);
        var spec = File.ReadAllText(Path.Combine(_dir, "berth.yaml"));
        // The sample's fixed stable ports would collide with other tests: each endpoint gets a free one.
        foreach (var (service, fixedPort) in new[] { ("frontend", "7100"), ("api", "7200"), ("worker", "7300"), ("db", "7400") })
        {
            Assert.Contains(fixedPort, spec, StringComparison.Ordinal);
            spec = spec.Replace(fixedPort, _ports[service].ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal);
        }

        spec = Replace(spec, "name: shop\n", $"name: {_app}\n");
        spec = Replace(spec, "image: berth-shop:dev", $"image: {_image}");
        File.WriteAllText(Path.Combine(_dir, "berth.yaml"), spec);
    }

    public void Dispose()
    {
        // Everything this test created goes, even when it failed half-way: the control plane, the containers, the image.
        try
        {
            Berth("down");
        }
        finally
        {
            var left = Docker("ps", "-aq", "--filter", $"label=berth.app={_app}").Out.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            if (left.Length > 0)
            {
                Docker(["rm", "-f", .. left]);
            }

            Docker("rmi", "-f", _image);
            Directory.Delete(_dir, recursive: true);
        }
    }

    [DockerFact]
    public async Task UpDetached_ShopOnDocker_OrderPlacedThroughApiReadBackThroughFrontend()
    {
        var (code, _, err) = Berth("up", "-d");
        Assert.True(code == 0, $"berth up -d failed ({code}): {err}");
        Assert.Contains($"building image {_image}", err, StringComparison.Ordinal);

        var last = "";
        try
        {
            await Poll.UntilAsync(
                () =>
                {
                    var replicas = Ps();
                    last = string.Join(", ", replicas.Select(r => $"{r.GetProperty("id")}={r.GetProperty("phase")}"));
                    return replicas.Count(r => r.GetProperty("phase").GetString() == "ready") == 6;
                },
                Wait,
                "6 Ready replicas (frontend 1, api 2, worker 2, db 1)");
        }
        catch (TimeoutException e)
        {
            throw new TimeoutException($"{e.Message}; last berth ps: {last}; control plane log: {ReadLog()}", e);
        }

        // They are containers of the image berth built, not processes.
        var containers = Docker("ps", "--filter", $"label=berth.app={_app}", "--format", "{{.Image}} {{.Label \"berth.service\"}}").Out
            .Split('\n', StringSplitOptions.RemoveEmptyEntries).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(
            new[] { "api", "api", "db", "frontend", "worker", "worker" }.Select(s => $"{_image} {s}"),
            containers);

        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        var placed = await http.PostAsync($"http://127.0.0.1:{_ports["api"]}/orders?item=tea&qty=2", null);
        var body = await placed.Content.ReadAsStringAsync();
        Assert.True(placed.IsSuccessStatusCode, $"POST /orders: {(int)placed.StatusCode} {body}");
        using (var order = JsonDocument.Parse(body))
        {
            Assert.Equal("tea", order.RootElement.GetProperty("item").GetString());
            Assert.Equal(9.0m, order.RootElement.GetProperty("price").GetDecimal()); // the worker's price: 2 × (1.5 + 3)
        }

        var page = await http.GetStringAsync($"http://127.0.0.1:{_ports["frontend"]}/");
        Assert.Contains("tea:2:9", page, StringComparison.Ordinal);

        var down = Berth("down");
        Assert.True(down.Code == 0, $"berth down failed ({down.Code}): {down.Err}");
        Assert.Empty(Docker("ps", "-aq", "--filter", $"label=berth.app={_app}").Out.Trim());
    }

    private string ReadLog()
    {
        var log = Path.Combine(_dir, ".berth", "control-plane.log");
        return File.Exists(log) ? string.Join('\n', File.ReadLines(log).TakeLast(30)) : "(none)";
    }

    private List<JsonElement> Ps() => new BerthCli(_dir).PsAsync().GetAwaiter().GetResult();

    /// <summary>Image builds make 'berth up -d' slow: four minutes per command.</summary>
    private CliResult Berth(params string[] args) => new BerthCli(_dir) { Environment = { ["BERTH_RUNTIME"] = "docker" } }
        .RunAsync(TimeSpan.FromSeconds(240), args).GetAwaiter().GetResult();

    private (int Code, string Out, string Err) Docker(params string[] args) => Run("docker", args, TimeSpan.FromSeconds(60));

    private (int Code, string Out, string Err) Run(string program, string[] args, TimeSpan timeout)
    {
        var info = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = _dir, UseShellExecute = false };
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        using var p = Process.Start(info)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeout))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{program} {string.Join(' ', args)} did not finish in {timeout.TotalSeconds:0}s");
        }

        return (p.ExitCode, stdout.Result, stderr.Result);
    }

    private static string Replace(string text, string old, string replacement)
    {
        Assert.Contains(old, text, StringComparison.Ordinal);
        return text.Replace(old, replacement, StringComparison.Ordinal);
    }
}
