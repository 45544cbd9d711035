using System.Buffers.Binary;
using System.IO.Compression;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Threading.Channels;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Logging;

namespace Berth.Server.Telemetry;

/// <summary>The control plane's OTLP receiver on loopback, as the Aspire dashboard's: HTTP/protobuf (<c>POST /v1/traces</c>,
/// <c>/v1/logs</c>, <c>/v1/metrics</c>) on one port and gRPC (the collector services' <c>Export</c>, HTTP/2 without TLS) on
/// another. Every request must carry the receiver's key in <c>x-otlp-api-key</c> (replicas get it in
/// <c>OTEL_EXPORTER_OTLP_HEADERS</c>), so no other local process can write into an app's telemetry.</summary>
public sealed class OtlpReceiver : IAsyncDisposable
{
    /// <summary>The header carrying the key, as Aspire's dashboard (Dashboard:Otlp:PrimaryApiKey).</summary>
    public const string KeyHeader = "x-otlp-api-key";

    /// <summary>File in the state folder with the key (mode 0600), kept across restarts so adopted replicas keep exporting.</summary>
    public const string KeyFileName = "otlp-key";

    /// <summary>Largest export accepted: 4 MiB, gRPC's default maximum message size.</summary>
    public const int MaxMessageBytes = 4 * 1024 * 1024;

    private readonly WebApplication _app;
    private readonly OtlpForwarder? _forwarder;

    private OtlpReceiver(WebApplication app, Uri http, Uri grpc, string key, OtlpForwarder? forwarder)
    {
        _app = app;
        HttpEndpoint = http;
        GrpcEndpoint = grpc;
        Key = key;
        _forwarder = forwarder;
    }

    /// <summary>OTLP over HTTP/protobuf: <c>http://127.0.0.1:PORT</c> (exporters append <c>/v1/traces</c> etc.).</summary>
    public Uri HttpEndpoint { get; }

    /// <summary>OTLP over gRPC: <c>http://127.0.0.1:PORT</c>.</summary>
    public Uri GrpcEndpoint { get; }

    public string Key { get; }

    /// <summary>What a replica needs to export here with any OpenTelemetry SDK (gRPC, the SDKs' default protocol).</summary>
    public IReadOnlyDictionary<string, string> ExporterEnvironment => new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["OTEL_EXPORTER_OTLP_ENDPOINT"] = GrpcEndpoint.ToString().TrimEnd('/'),
        ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "grpc",
        ["OTEL_EXPORTER_OTLP_HEADERS"] = $"{KeyHeader}={Key}",
        // Export every second rather than the SDKs' 5 s (spans, logs) and 60 s (metrics), as Aspire sets for local runs:
        // the dashboard is live.
        ["OTEL_BSP_SCHEDULE_DELAY"] = "1000",
        ["OTEL_BLRP_SCHEDULE_DELAY"] = "1000",
        ["OTEL_METRIC_EXPORT_INTERVAL"] = "1000",
    };

    public static async Task<OtlpReceiver> StartAsync(TelemetryStore store, string? keyFile, ILoggerFactory? loggers, CancellationToken cancellationToken)
    {
        var key = keyFile is null ? Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16)) : ApiServer.ReadOrCreateToken(keyFile);
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(k =>
        {
            k.Limits.MaxRequestBodySize = MaxMessageBytes;
            k.Listen(IPAddress.Loopback, 0, l => l.Protocols = HttpProtocols.Http1);
            k.Listen(IPAddress.Loopback, 0, l => l.Protocols = HttpProtocols.Http2);
        });
        var app = builder.Build();
        var forwarder = store.Options.ForwardEndpoint is { } target ? new OtlpForwarder(target, loggers?.CreateLogger("Berth.Telemetry")) : null;
        var keyBytes = Encoding.UTF8.GetBytes(key);

        foreach (var (path, signal) in new[] { ("/v1/traces", Signal.Traces), ("/v1/logs", Signal.Logs), ("/v1/metrics", Signal.Metrics) })
        {
            app.MapPost(path, async (HttpContext context) =>
            {
                if (!HasKey(context, keyBytes))
                {
                    return Results.Json(new { error = $"missing or wrong {KeyHeader}; replicas get it in OTEL_EXPORTER_OTLP_HEADERS" }, statusCode: 401);
                }

                if (context.Request.ContentType?.StartsWith("application/x-protobuf", StringComparison.OrdinalIgnoreCase) != true)
                {
                    return Results.Json(new { error = "send OTLP as application/x-protobuf (OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf or grpc); JSON is not accepted" }, statusCode: 415);
                }

                var body = await ReadAllAsync(context.Request.Body, context.RequestAborted);
                if (string.Equals(context.Request.Headers.ContentEncoding, "gzip", StringComparison.OrdinalIgnoreCase))
                {
                    body = Gunzip(body);
                }

                if (!Ingest(store, signal, body, out var problem))
                {
                    return Results.Json(new { error = problem }, statusCode: 400);
                }

                forwarder?.Enqueue(path, body);
                return Results.Bytes([], "application/x-protobuf");
            });
        }

        foreach (var (service, signal, path) in new[]
        {
            ("opentelemetry.proto.collector.trace.v1.TraceService", Signal.Traces, "/v1/traces"),
            ("opentelemetry.proto.collector.logs.v1.LogsService", Signal.Logs, "/v1/logs"),
            ("opentelemetry.proto.collector.metrics.v1.MetricsService", Signal.Metrics, "/v1/metrics"),
        })
        {
            app.MapPost($"/{service}/Export", async (HttpContext context) =>
            {
                context.Response.ContentType = "application/grpc";
                if (!HasKey(context, keyBytes))
                {
                    GrpcStatus(context, 16, $"missing or wrong {KeyHeader}");
                    return;
                }

                // Length-prefixed message: 1 byte compressed flag, 4 bytes big-endian length, the message.
                var frame = await ReadAllAsync(context.Request.Body, context.RequestAborted);
                if (frame.Length < 5 || BinaryPrimitives.ReadUInt32BigEndian(frame.AsSpan(1)) != frame.Length - 5)
                {
                    GrpcStatus(context, 3, "expected one length-prefixed gRPC message");
                    return;
                }

                var message = frame[5..];
                if (frame[0] == 1)
                {
                    if (!string.Equals(context.Request.Headers["grpc-encoding"], "gzip", StringComparison.OrdinalIgnoreCase))
                    {
                        GrpcStatus(context, 12, "only gzip compression is supported");
                        return;
                    }

                    message = Gunzip(message);
                }

                if (!Ingest(store, signal, message, out var problem))
                {
                    GrpcStatus(context, 3, problem);
                    return;
                }

                forwarder?.Enqueue(path, message);
                // The Export*ServiceResponse with no partial_success: an empty message.
                await context.Response.Body.WriteAsync(new byte[5], context.RequestAborted);
                GrpcStatus(context, 0, null);
            });
        }

        await app.StartAsync(cancellationToken);
        var urls = app.Urls.Select(u => new Uri(u)).ToList();
        var receiver = new OtlpReceiver(app, urls[0], urls[1], key, forwarder);
        return receiver;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
        if (_forwarder is not null)
        {
            await _forwarder.DisposeAsync();
        }
    }

    private enum Signal
    {
        Traces,
        Logs,
        Metrics,
    }

    private static bool Ingest(TelemetryStore store, Signal signal, byte[] body, out string problem)
    {
        problem = "";
        try
        {
            switch (signal)
            {
                case Signal.Traces:
                    store.AddSpans(OtlpDecoder.DecodeTraces(body));
                    break;
                case Signal.Logs:
                    store.AddLogs(OtlpDecoder.DecodeLogs(body));
                    break;
                case Signal.Metrics:
                    store.AddMetrics(OtlpDecoder.DecodeMetrics(body));
                    break;
            }

            return true;
        }
        catch (InvalidDataException e)
        {
            problem = $"not a valid OTLP {signal.ToString().ToLowerInvariant()} export: {e.Message}";
            return false;
        }
    }

    private static void GrpcStatus(HttpContext context, int code, string? message)
    {
        context.Response.AppendTrailer("grpc-status", code.ToString(System.Globalization.CultureInfo.InvariantCulture));
        if (message is not null)
        {
            context.Response.AppendTrailer("grpc-message", Uri.EscapeDataString(message));
        }
    }

    private static bool HasKey(HttpContext context, byte[] key) =>
        context.Request.Headers[KeyHeader].FirstOrDefault() is { } given && CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(given), key);

    private static async Task<byte[]> ReadAllAsync(Stream body, CancellationToken ct)
    {
        using var buffer = new MemoryStream();
        await body.CopyToAsync(buffer, ct);
        return buffer.ToArray();
    }

    private static byte[] Gunzip(byte[] data)
    {
        using var input = new GZipStream(new MemoryStream(data), CompressionMode.Decompress);
        using var output = new MemoryStream();
        var chunk = new byte[81920];
        int n;
        while ((n = input.Read(chunk)) > 0)
        {
            output.Write(chunk, 0, n);
            if (output.Length > MaxMessageBytes)
            {
                throw new InvalidDataException($"decompressed message larger than {MaxMessageBytes} bytes");
            }
        }

        return output.ToArray();
    }
}

/// <summary>Forwards every export, as received, to the user's own collector over OTLP/HTTP protobuf. Bounded: when the
/// collector is slower than the apps, the oldest exports are dropped rather than the control plane's memory growing.</summary>
internal sealed class OtlpForwarder : IAsyncDisposable
{
    /// <summary>Exports waiting to be forwarded: 1,000, as the OpenTelemetry Collector's default sending queue size.</summary>
    public const int QueueSize = 1000;

    private readonly Channel<(string Path, byte[] Body)> _queue = Channel.CreateBounded<(string, byte[])>(new BoundedChannelOptions(QueueSize) { FullMode = BoundedChannelFullMode.DropOldest });
    private readonly HttpClient _client = new() { Timeout = TimeSpan.FromSeconds(10) };
    private readonly Uri _target;
    private readonly ILogger? _logger;
    private readonly Task _pump;
    private readonly CancellationTokenSource _stop = new();

    public OtlpForwarder(Uri target, ILogger? logger)
    {
        _target = target;
        _logger = logger;
        _pump = Task.Run(PumpAsync);
    }

    public void Enqueue(string path, byte[] body) => _queue.Writer.TryWrite((path, body));

    private async Task PumpAsync()
    {
        try
        {
            await foreach (var (path, body) in _queue.Reader.ReadAllAsync(_stop.Token))
            {
                try
                {
                    using var content = new ByteArrayContent(body);
                    content.Headers.ContentType = new("application/x-protobuf");
                    using var response = await _client.PostAsync(new Uri(_target, path), content, _stop.Token);
                    if (!response.IsSuccessStatusCode)
                    {
                        Log.ForwardFailed(_logger, _target, $"HTTP {(int)response.StatusCode}");
                    }
                }
                catch (HttpRequestException e)
                {
                    Log.ForwardFailed(_logger, _target, e.Message);
                }
                catch (TaskCanceledException) when (!_stop.IsCancellationRequested)
                {
                    Log.ForwardFailed(_logger, _target, "timed out after 10s");
                }
            }
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
        }
    }

    public async ValueTask DisposeAsync()
    {
        _queue.Writer.TryComplete();
        await _stop.CancelAsync();
        await _pump;
        _client.Dispose();
        _stop.Dispose();
    }
}

internal static partial class Log
{
    [LoggerMessage(EventId = 1601, Level = LogLevel.Warning, Message = "forwarding telemetry to {Target} failed: {Problem}")]
    private static partial void ForwardFailedCore(ILogger logger, Uri target, string problem);

    public static void ForwardFailed(ILogger? logger, Uri target, string problem)
    {
        if (logger is not null)
        {
            ForwardFailedCore(logger, target, problem);
        }
    }
}
