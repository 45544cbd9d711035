namespace Berth.EndToEnd.Tests;

/// <summary>
/// The README's sample on Docker, offline: the real <c>berth</c> binary runs samples/shop (a copy on free ports, its own app
/// name and image tag) with <c>BERTH_RUNTIME=docker</c>, which builds the app on the host, makes the base image from the
/// host's .NET runtime, builds the image and runs every replica as a host-network container.
/// </summary>
public sealed class ShopOnDockerTests : IDisposable
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(90);
    private readonly DockerApp _docker = new("shop");
    private readonly string _image;
    private readonly Dictionary<string, int> _ports = new()
    {
        ["frontend"] = Ports.Free(), ["api"] = Ports.Free(), ["worker"] = Ports.Free(), ["db"] = Ports.Free(),
    };

    public ShopOnDockerTests()
    {
        _image = $"berth-shop-e2e:{_docker.Name}";
        _docker.Berth.Environment["BERTH_RUNTIME"] = "docker";
        _docker.RemoveOnDispose("rmi", "-f", _image);
        Repository.CopySample("samples/shop", _docker.Dir);
        var spec = File.ReadAllText(Path.Combine(_docker.Dir, "berth.yaml"));
        // The sample's fixed stable ports would collide with other tests: each endpoint gets a free one.
        foreach (var (service, fixedPort) in new[] { ("frontend", "7100"), ("api", "7200"), ("worker", "7300"), ("db", "7400") })
        {
            Assert.Contains(fixedPort, spec, StringComparison.Ordinal);
            spec = spec.Replace(fixedPort, _ports[service].ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal);
        }

        spec = Replace(spec, "name: shop\n", $"name: {_docker.Name}\n");
        spec = Replace(spec, "image: berth-shop:dev", $"image: {_image}");
        File.WriteAllText(Path.Combine(_docker.Dir, "berth.yaml"), spec);
    }

    // Everything this test created goes, even when it failed half-way: the control plane, the containers, the image.
    public void Dispose() => _docker.Dispose();

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
            throw new TimeoutException($"{e.Message}; last berth ps: {last}; control plane log: {_docker.ControlPlaneLogTail()}", e);
        }

        // They are containers of the image berth built, not processes.
        var containers = DockerApp.Docker("ps", "--filter", $"label=berth.app={_docker.Name}", "--format", "{{.Image}} {{.Label \"berth.service\"}}").Out
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
        Assert.Empty(DockerApp.Docker("ps", "-aq", "--filter", $"label=berth.app={_docker.Name}").Out.Trim());
    }

    private List<JsonElement> Ps() => new BerthCli(_docker.Dir).PsAsync().GetAwaiter().GetResult();

    /// <summary>Image builds make 'berth up -d' slow: four minutes per command.</summary>
    private CliResult Berth(params string[] args) => _docker.Berth.RunAsync(TimeSpan.FromSeconds(240), args).GetAwaiter().GetResult();

    private static string Replace(string text, string old, string replacement)
    {
        Assert.Contains(old, text, StringComparison.Ordinal);
        return text.Replace(old, replacement, StringComparison.Ordinal);
    }
}
