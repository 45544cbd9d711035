using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Net;
using Berth.Server.Telemetry;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using OpenTelemetry;
using OpenTelemetry.Exporter;
using OpenTelemetry.Logs;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using TelemetrySpan = Berth.Server.Telemetry.TelemetrySpan;

namespace Berth.Server.Tests;

/// <summary>The OTLP receiver fed by the official OpenTelemetry .NET SDK and OTLP exporter, over real gRPC and HTTP/protobuf.</summary>
public sealed class OtlpReceiverTests : IAsyncLifetime
{
    private readonly TelemetryStore _store = new(new TelemetryOptions { MaxSpans = 100 });
    private OtlpReceiver _receiver = null!;

    public async Task InitializeAsync() => _receiver = await OtlpReceiver.StartAsync(_store, null, null, CancellationToken.None);

    public async Task DisposeAsync() => await _receiver.DisposeAsync();

    [Theory]
    [InlineData(OtlpExportProtocol.Grpc)]
    [InlineData(OtlpExportProtocol.HttpProtobuf)]
    public void Export_OfficialExporter_SpansLogsAndMetricsStoredWithTheirReplica(OtlpExportProtocol protocol)
    {
        var source = new ActivitySource("test-" + protocol);
        using var meter = new Meter("test-" + protocol);
        var resource = ResourceBuilder.CreateEmpty().AddService("api").AddAttributes([new("berth.replica", "api-1"), new("berth.service", "api")]);
        void Exporter(OtlpExporterOptions o, string path)
        {
            o.Protocol = protocol;
            o.Endpoint = protocol == OtlpExportProtocol.Grpc ? _receiver.GrpcEndpoint : new Uri(_receiver.HttpEndpoint, path);
            o.Headers = $"{OtlpReceiver.KeyHeader}={_receiver.Key}";
        }

        string traceId, parentId;
        using (var tracer = Sdk.CreateTracerProviderBuilder().SetResourceBuilder(resource).AddSource(source.Name).AddOtlpExporter(o => Exporter(o, "v1/traces")).Build())
        {
            using (var parent = source.StartActivity("POST /orders", ActivityKind.Server)!)
            {
                traceId = parent.TraceId.ToHexString();
                parentId = parent.SpanId.ToHexString();
                using var child = source.StartActivity("db SET", ActivityKind.Client)!;
                child.SetTag("peer.service", "db");
                child.SetStatus(ActivityStatusCode.Error, "db down");
            }

            Assert.True(tracer.ForceFlush(10_000), "trace export did not finish");
        }

        using (var loggers = LoggerFactory.Create(b => b.AddOpenTelemetry(o =>
        {
            o.SetResourceBuilder(resource);
            o.AddOtlpExporter(e => Exporter(e, "v1/logs"));
        })))
        {
            loggers.CreateLogger("shop").LogWarning("order {Id} is late", 42);
        }

        using (var meters = Sdk.CreateMeterProviderBuilder().SetResourceBuilder(resource).AddMeter(meter.Name).AddOtlpExporter(o => Exporter(o, "v1/metrics")).Build())
        {
            meter.CreateCounter<long>("shop.orders").Add(3);
            Assert.True(meters.ForceFlush(10_000), "metric export did not finish");
        }

        var spans = _store.GetTrace(traceId);
        Assert.NotNull(spans);
        Assert.Equal(["POST /orders", "db SET"], spans.Select(s => s.Name));
        var db = spans[1];
        Assert.Equal(parentId, db.ParentSpanId);
        Assert.Equal(("api", "api-1", "client", true, "db down"), (db.Service, db.Replica, db.Kind, db.Error, db.StatusMessage));
        Assert.Contains(KeyValuePair.Create("peer.service", "db"), db.Attributes);
        Assert.True(db.Duration > TimeSpan.Zero && db.Duration < TimeSpan.FromSeconds(10), $"duration {db.Duration}");

        var log = Assert.Single(_store.Logs(0, "api", "api-1", 10)).Log;
        Assert.InRange(log.SeverityNumber, 13, 16); // OTLP's WARN range
        Assert.StartsWith("order ", log.Body, StringComparison.Ordinal);

        var orders = _store.MetricPoints("api", "shop.orders", DateTimeOffset.UnixEpoch);
        // Flushed, then exported once more as the provider is disposed: a cumulative sum, 3 each time.
        Assert.NotEmpty(orders);
        Assert.All(orders, p => Assert.Equal(("sum", 3.0), (p.Type, p.Value)));
    }

    [Fact]
    public async Task Export_WithoutKey_Refused()
    {
        using var http = new HttpClient();
        using var content = new ByteArrayContent([]);
        content.Headers.ContentType = new("application/x-protobuf");
        using var response = await http.PostAsync(new Uri(_receiver.HttpEndpoint, "v1/traces"), content);
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal(0, _store.SpanCount);
    }

    [Fact]
    public async Task Export_Garbage_BadRequestNamingTheProblem()
    {
        using var http = new HttpClient();
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(_receiver.HttpEndpoint, "v1/traces")) { Content = new ByteArrayContent([0x0a, 0x05, 0x01]) };
        request.Content.Headers.ContentType = new("application/x-protobuf");
        request.Headers.Add(OtlpReceiver.KeyHeader, _receiver.Key);
        using var response = await http.SendAsync(request);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("not a valid OTLP traces export: truncated message", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }
}

/// <summary>Forwarding to the user's own collector (<c>telemetry: {otlp_endpoint: …}</c>): every export, as received, over
/// OTLP/HTTP protobuf, to a real listening collector stand-in; and a collector that is down costs the dashboard nothing.</summary>
public sealed class OtlpForwardingTests : IAsyncLifetime
{
    private readonly System.Collections.Concurrent.ConcurrentQueue<(string Path, string? ContentType, byte[] Body)> _received = new();
    private WebApplication _collector = null!;

    public async Task InitializeAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, 0));
        _collector = builder.Build();
        _collector.MapPost("/{**path}", async (HttpContext context) =>
        {
            using var body = new MemoryStream();
            await context.Request.Body.CopyToAsync(body);
            _received.Enqueue((context.Request.Path.Value!, context.Request.ContentType, body.ToArray()));
            return Results.Bytes([], "application/x-protobuf");
        });
        await _collector.StartAsync();
    }

    public async Task DisposeAsync() => await _collector.DisposeAsync();

    private static void Export(OtlpReceiver receiver, OtlpExportProtocol protocol, string spanName)
    {
        var source = new ActivitySource("forward-" + spanName);
        using var tracer = Sdk.CreateTracerProviderBuilder().SetResourceBuilder(ResourceBuilder.CreateEmpty().AddService("api")).AddSource(source.Name)
            .AddOtlpExporter(o =>
            {
                o.Protocol = protocol;
                o.Endpoint = protocol == OtlpExportProtocol.Grpc ? receiver.GrpcEndpoint : new Uri(receiver.HttpEndpoint, "v1/traces");
                o.Headers = $"{OtlpReceiver.KeyHeader}={receiver.Key}";
            }).Build();
        using (source.StartActivity(spanName, ActivityKind.Server))
        {
        }

        Assert.True(tracer.ForceFlush(10_000), "trace export did not finish");
    }

    [Theory]
    [InlineData(OtlpExportProtocol.Grpc)]
    [InlineData(OtlpExportProtocol.HttpProtobuf)]
    public async Task Export_CollectorConfigured_StoredAndForwardedAsOtlpHttpProtobuf(OtlpExportProtocol protocol)
    {
        var store = new TelemetryStore(new TelemetryOptions { ForwardEndpoint = new Uri(_collector.Urls.Single()) });
        await using (var receiver = await OtlpReceiver.StartAsync(store, null, null, CancellationToken.None))
        {
            Export(receiver, protocol, "GET /forwarded-" + protocol);
            await Poll.UntilAsync(() => !_received.IsEmpty, TimeSpan.FromSeconds(30), "the collector got the export");
        }

        var (path, contentType, body) = Assert.Single(_received);
        Assert.Equal("/v1/traces", path);
        Assert.Equal("application/x-protobuf", contentType);
        // The forwarded message is the export itself (gRPC's frame taken off): the collector decodes the same span.
        Assert.Equal(["GET /forwarded-" + protocol], OtlpDecoder.DecodeTraces(body).Select(s => s.Name));
        Assert.Equal(1, store.SpanCount);
    }

    [Fact]
    public async Task Export_CollectorDown_SpansStillStoredAndTheAppsExportSucceeds()
    {
        int closedPort;
        using (var probe = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0))
        {
            probe.Start();
            closedPort = ((IPEndPoint)probe.LocalEndpoint).Port;
        }

        var store = new TelemetryStore(new TelemetryOptions { ForwardEndpoint = new Uri($"http://127.0.0.1:{closedPort}") });
        await using var receiver = await OtlpReceiver.StartAsync(store, null, null, CancellationToken.None);

        Export(receiver, OtlpExportProtocol.Grpc, "GET /while-the-collector-is-down");

        Assert.Equal(["GET /while-the-collector-is-down"], store.SearchTraces(null, null, null, 10).Select(t => t.Name.Split(": ")[1]));
    }
}

/// <summary>The in-memory store keeps to its limits, dropping the oldest of each kind.</summary>
public sealed class TelemetryStoreLimitsTests
{
    private static readonly DateTimeOffset T0 = new(2026, 12, 7, 12, 0, 0, TimeSpan.Zero);

    [Fact]
    public void Add_PastEveryLimit_OldestDroppedNewestKept()
    {
        var store = new TelemetryStore(new TelemetryOptions { MaxSpans = 10, MaxLogs = 5, MaxMetricPoints = 7 });
        for (var i = 0; i < 25; i++)
        {
            var trace = i.ToString("x32", System.Globalization.CultureInfo.InvariantCulture);
            store.AddSpans([new TelemetrySpan(trace, i.ToString("x16", System.Globalization.CultureInfo.InvariantCulture), null, "api", "api-1", $"span {i}", "server",
                T0.AddSeconds(i), TimeSpan.FromMilliseconds(1), false, null, "app", [])]);
            store.AddLogs([new TelemetryLog(T0.AddSeconds(i), "api", "api-1", "INFO", 9, $"log {i}", null, null, [])]);
            store.AddMetrics([new TelemetryMetricPoint(T0.AddSeconds(i), "api", "api-1", "orders", "", "sum", i, [])]);
        }

        Assert.Equal(10, store.SpanCount);
        Assert.Null(store.GetTrace(0.ToString("x32", System.Globalization.CultureInfo.InvariantCulture)));
        Assert.Null(store.GetTrace(14.ToString("x32", System.Globalization.CultureInfo.InvariantCulture)));
        Assert.Equal("span 15", Assert.Single(store.GetTrace(15.ToString("x32", System.Globalization.CultureInfo.InvariantCulture))!).Name);
        Assert.Equal(10, store.SearchTraces(null, null, null, 100).Count);
        Assert.Equal(["log 20", "log 21", "log 22", "log 23", "log 24"], store.Logs(0, null, null, 100).Select(l => l.Log.Body));
        Assert.Equal([18.0, 19, 20, 21, 22, 23, 24], store.MetricPoints("api", "orders", DateTimeOffset.MinValue).Select(p => p.Value));
    }
}
