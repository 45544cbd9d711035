// The shop sample: frontend → api → worker, and api → db (a tiny TCP key-value store).
// Each role finds the others through services__{service}__{endpoint}__0 (set by Berth) and listens on PORT.
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;

var role = args.FirstOrDefault() ?? "";
var port = int.TryParse(Environment.GetEnvironmentVariable("PORT"), out var p) ? p : 0;
var replica = Environment.GetEnvironmentVariable("BERTH_REPLICA") ?? Environment.MachineName;

switch (role)
{
    case "db":
        await KeyValueStore.RunAsync(port == 0 ? 7400 : port);
        return 0;
    case "frontend" or "api" or "worker":
        break;
    default:
        Console.Error.WriteLine("usage: Shop frontend|api|worker|db   (listens on $PORT)");
        return 2;
}

var builder = WebApplication.CreateSlimBuilder();
if (Environment.GetEnvironmentVariable("ASPNETCORE_URLS") is null)
{
    builder.WebHost.UseUrls($"http://127.0.0.1:{(port == 0 ? 8080 : port)}");
}

// Request-by-request framework logs (every health probe) would drown the sample's own output in `berth up`.
builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
builder.Logging.AddFilter("System.Net.Http.HttpClient", LogLevel.Warning);
builder.Services.AddHttpClient();

// Traces, metrics and logs over OTLP to wherever OTEL_EXPORTER_OTLP_ENDPOINT points (berth sets it, with the service
// and replica in OTEL_RESOURCE_ATTRIBUTES); without it the sample runs exactly as before.
if (Environment.GetEnvironmentVariable("OTEL_EXPORTER_OTLP_ENDPOINT") is { Length: > 0 })
{
    builder.Services.AddOpenTelemetry()
        .WithTracing(t => t
            .AddSource(Telemetry.Source.Name)
            .AddAspNetCoreInstrumentation(o => o.Filter = context => context.Request.Path != "/healthz")
            .AddHttpClientInstrumentation())
        .WithMetrics(m => m.AddAspNetCoreInstrumentation().AddHttpClientInstrumentation().AddMeter(Telemetry.Meter.Name))
        .UseOtlpExporter();
}

var app = builder.Build();
app.MapGet("/healthz", () => Results.Text("ok"));

var http = app.Services.GetRequiredService<IHttpClientFactory>();

if (role == "frontend")
{
    // GET / renders the orders the api returns.
    app.MapGet("/", async (CancellationToken ct) =>
    {
        var orders = await http.CreateClient().GetStringAsync(Discovery.Url("api", "http") + "/orders", ct);
        return Results.Text($"shop frontend ({replica})\norders: {orders}\n");
    });

    // POST /orders?item=tea&qty=2 places an order through the api: one trace frontend → mesh → api → mesh → worker, db.
    app.MapPost("/orders", async (string item, int qty, CancellationToken ct) =>
    {
        using var response = await http.CreateClient().PostAsync($"{Discovery.Url("api", "http")}/orders?item={Uri.EscapeDataString(item)}&qty={qty}", null, ct);
        return Results.Content(await response.Content.ReadAsStringAsync(ct), "application/json", statusCode: (int)response.StatusCode);
    });
}
else if (role == "api")
{
    // POST /orders?item=tea&qty=2 prices the order on the worker and stores it in the db; GET /orders lists them.
    app.MapPost("/orders", async (string item, int qty, CancellationToken ct) =>
    {
        var price = await http.CreateClient().GetStringAsync($"{Discovery.Url("worker", "http")}/price?item={Uri.EscapeDataString(item)}&qty={qty}", ct);
        var id = await Db.CommandAsync($"INCR order-id", ct);
        Telemetry.Orders.Add(1);
        app.Logger.LogInformation("order {Id}: {Qty} x {Item} at {Price}", id, qty, item, price);
        await Db.CommandAsync($"SET order-{id} {item}:{qty}:{price}", ct);
        return Results.Json(new { id, item, qty, price = decimal.Parse(price, System.Globalization.CultureInfo.InvariantCulture), replica });
    });
    app.MapGet("/orders", async (CancellationToken ct) =>
    {
        var count = int.Parse(await Db.CommandAsync("GET order-id", ct) is var c && c.Length > 0 ? c : "0", System.Globalization.CultureInfo.InvariantCulture);
        var orders = new List<string>();
        for (var i = 1; i <= count; i++)
        {
            orders.Add(await Db.CommandAsync($"GET order-{i}", ct));
        }

        return Results.Json(orders);
    });
}
else
{
    // GET /price?item=tea&qty=2 — a deterministic price, so callers can check it.
    app.MapGet("/price", (string item, int qty) =>
        Results.Text((qty * (1.5m + item.Length % 5)).ToString(System.Globalization.CultureInfo.InvariantCulture)));
}

await app.RunAsync();
return 0;

/// <summary>Resolves services the way Microsoft.Extensions.ServiceDiscovery's configuration provider reads them.</summary>
internal static class Discovery
{
    public static string Url(string service, string endpoint) =>
        Environment.GetEnvironmentVariable($"services__{service}__{endpoint}__0")?.TrimEnd('/')
        ?? throw new InvalidOperationException($"services__{service}__{endpoint}__0 is not set; run this under berth");
}

/// <summary>The sample's own spans and metrics, beside the ASP.NET Core and HttpClient ones.</summary>
internal static class Telemetry
{
    public static readonly ActivitySource Source = new("Shop");

    public static readonly System.Diagnostics.Metrics.Meter Meter = new("Shop");

    public static readonly System.Diagnostics.Metrics.Counter<long> Orders = Meter.CreateCounter<long>("shop.orders", description: "Orders placed");
}

/// <summary>A one-line-per-command client for the db role.</summary>
internal static class Db
{
    public static async Task<string> CommandAsync(string command, CancellationToken ct)
    {
        // The db speaks TCP, which carries no trace context: the call is a client span of the caller's, named for the peer.
        using var span = Telemetry.Source.StartActivity("db " + command.Split(' ')[0], ActivityKind.Client);
        span?.SetTag("peer.service", "db");
        span?.SetTag("db.system", "shop-kv");
        var uri = new Uri(Discovery.Url("db", "tcp"));
        using var client = new TcpClient();
        await client.ConnectAsync(uri.Host, uri.Port, ct);
        await using var stream = client.GetStream();
        using var reader = new StreamReader(stream, Encoding.UTF8);
        await stream.WriteAsync(Encoding.UTF8.GetBytes(command + "\n"), ct);
        var reply = await reader.ReadLineAsync(ct) ?? "";
        return reply.StartsWith("ERR", StringComparison.Ordinal) ? throw new InvalidOperationException(reply) : reply;
    }
}

/// <summary>The db role: SET key value / GET key / INCR key / PING over TCP, one command per line, held in memory.</summary>
internal static class KeyValueStore
{
    private static readonly ConcurrentDictionary<string, string> Data = new();

    public static async Task RunAsync(int port)
    {
        var listener = new TcpListener(IPAddress.Loopback, port);
        listener.Start();
        Console.WriteLine($"db listening on 127.0.0.1:{port}");
        using var stop = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) => { e.Cancel = true; stop.Cancel(); };
        AppDomain.CurrentDomain.ProcessExit += (_, _) => stop.Cancel();
        try
        {
            while (true)
            {
                var client = await listener.AcceptTcpClientAsync(stop.Token);
                _ = ServeAsync(client, stop.Token);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private static async Task ServeAsync(TcpClient client, CancellationToken ct)
    {
        using var _ = client;
        await using var stream = client.GetStream();
        using var reader = new StreamReader(stream, Encoding.UTF8);
        await using var writer = new StreamWriter(stream, new UTF8Encoding(false)) { AutoFlush = true, NewLine = "\n" };
        try
        {
            while (await reader.ReadLineAsync(ct) is { } line)
            {
                var parts = line.Split(' ', 3);
                var reply = parts[0].ToUpperInvariant() switch
                {
                    "PING" => "PONG",
                    "GET" when parts.Length == 2 => Data.TryGetValue(parts[1], out var v) ? v : "",
                    "SET" when parts.Length == 3 => (Data[parts[1]] = parts[2]) is not null ? "OK" : "OK",
                    "INCR" when parts.Length == 2 => Data.AddOrUpdate(parts[1], "1", (_, old) => (long.Parse(old, System.Globalization.CultureInfo.InvariantCulture) + 1).ToString(System.Globalization.CultureInfo.InvariantCulture)),
                    _ => "ERR unknown command; use PING, GET key, SET key value, INCR key",
                };
                await writer.WriteLineAsync(reply.AsMemory(), ct);
            }
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or FormatException)
        {
        }
    }
}
