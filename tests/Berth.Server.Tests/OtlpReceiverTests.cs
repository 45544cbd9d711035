using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Net;
using Berth.Server.Telemetry;
using Microsoft.Extensions.Logging;
using OpenTelemetry;
using OpenTelemetry.Exporter;
using OpenTelemetry.Logs;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

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
