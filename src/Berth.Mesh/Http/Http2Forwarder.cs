using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using Berth.Core.Routing;
using Berth.Mesh.Observability;
using Berth.Mesh.Resilience;
using Berth.Mesh.Routing;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Primitives;

namespace Berth.Mesh.Http;

/// <summary>
/// One attempt to an h2c or gRPC upstream: HTTP/2 with prior knowledge over a pooled, multiplexed
/// <see cref="SocketsHttpHandler"/> connection (streams are cheap, so owning the connection buys nothing here). The
/// handler only re-sends a request the server refused unprocessed (REFUSED_STREAM, or above a GOAWAY's last stream
/// id), which never reached the application, so deliveries stay one per attempt. Trailers are forwarded.
/// </summary>
internal sealed class Http2Forwarder : IDisposable
{
    private static readonly HashSet<string> SkipRequestHeaders = new(StringComparer.OrdinalIgnoreCase)
    {
        "Host", "Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "TE", "Trailer", "Upgrade", "Expect",
        "Content-Length", TraceContext.Header, "X-Forwarded-For",
    };

    private readonly HttpMessageInvoker _client;

    public Http2Forwarder(TimeSpan connectTimeout)
    {
        _client = new HttpMessageInvoker(new SocketsHttpHandler
        {
            UseProxy = false,
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
            UseCookies = false,
            ActivityHeadersPropagator = null,
            ConnectTimeout = connectTimeout,
            EnableMultipleHttp2Connections = true,
            PooledConnectionIdleTimeout = TimeSpan.FromSeconds(30),
            ConnectCallback = ConnectAsync,
        });
    }

    /// <summary>Where a request to an upstream in a pod connects: its address inside that pod.</summary>
    private static readonly HttpRequestOptionsKey<(PodNetwork Pod, IPEndPoint Target)> InPod = new("berth.pod");

    /// <summary>Opens each h2c connection: on the host as SocketsHttpHandler would, or for an upstream in a pod through a
    /// socket made inside it (<see cref="PodSockets"/>), connected to the upstream's own loopback there. Errors surface as
    /// the handler's connection errors (a refused connect stays a connect failure).</summary>
    private static async ValueTask<Stream> ConnectAsync(SocketsHttpConnectionContext context, CancellationToken token)
    {
        var inPod = context.InitialRequestMessage.Options.TryGetValue(InPod, out var target);
        var socket = inPod ? await PodSockets.CreateAsync(target.Pod, target.Target.AddressFamily, token) : new Socket(SocketType.Stream, ProtocolType.Tcp);
        try
        {
            socket.NoDelay = true;
            if (inPod)
            {
                await socket.ConnectAsync(target.Target, token);
            }
            else
            {
                await socket.ConnectAsync(context.DnsEndPoint, token);
            }

            return new NetworkStream(socket, ownsSocket: true);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    public void Dispose() => _client.Dispose();

    /// <summary>Sends one attempt; for gRPC, <paramref name="deadline"/> (the time the call has left) goes on as <c>grpc-timeout</c> so the upstream stops when the caller would.</summary>
    public async ValueTask<Attempt> SendAsync(HttpContext context, EndpointState e, RequestBody body, TraceParent traceparent, TimeSpan? deadline, CancellationToken token)
    {
        var message = BuildRequest(context, e, body, traceparent);
        if (deadline is { } left)
        {
            message.Headers.Remove("grpc-timeout");
            message.Headers.TryAddWithoutValidation("grpc-timeout", Math.Clamp((long)left.TotalMilliseconds, 1, 99_999_999).ToString(CultureInfo.InvariantCulture) + "m");
        }

        try
        {
            var response = await _client.SendAsync(message, token);
            return new Attempt(AttemptError.None, null, null) { Response = response };
        }
        catch (HttpRequestException ex) when (!token.IsCancellationRequested)
        {
            message.Dispose();
            var never = ex.HttpRequestError == HttpRequestError.ConnectionError && ex.InnerException is SocketException
            {
                SocketErrorCode: SocketError.ConnectionRefused or SocketError.TimedOut or SocketError.HostUnreachable or SocketError.NetworkUnreachable,
            };
            return new Attempt(never ? AttemptError.ConnectFailure : AttemptError.Reset, null, ex.Message);
        }
        catch (OperationCanceledException) when (!context.RequestAborted.IsCancellationRequested)
        {
            message.Dispose();
            return new Attempt(AttemptError.PerTryTimeout, null, "no response within the time bound");
        }
        catch
        {
            message.Dispose();
            throw;
        }
    }

    /// <summary>Copies status, headers, the body (flushed as it comes, for streaming calls) and then the trailers.</summary>
    public static async ValueTask CopyResponseAsync(HttpContext context, HttpResponseMessage upstream, CancellationToken token)
    {
        var response = context.Response;
        response.StatusCode = (int)upstream.StatusCode;
        foreach (var header in upstream.Headers.NonValidated)
        {
            if (!Http1Forwarder.SkipResponseHeaders.Contains(header.Key))
            {
                response.Headers[header.Key] = ToStringValues(header.Value);
            }
        }

        foreach (var header in upstream.Content.Headers.NonValidated)
        {
            response.Headers[header.Key] = ToStringValues(header.Value);
        }

        try
        {
            await using (var body = await upstream.Content.ReadAsStreamAsync(token))
            {
                await body.CopyToAsync(response.Body, token);
            }

            if (context.Features.Get<IHttpResponseTrailersFeature>() is { } trailers && upstream.TrailingHeaders.NonValidated.Any())
            {
                foreach (var header in upstream.TrailingHeaders.NonValidated)
                {
                    trailers.Trailers[header.Key] = ToStringValues(header.Value);
                }
            }
        }
        catch (Exception ex) when (ex is IOException or HttpRequestException || (ex is OperationCanceledException && !context.RequestAborted.IsCancellationRequested))
        {
            context.Abort();
        }
    }

    /// <summary>The gRPC status of a trailers-only response (an error answered in the headers), else null.</summary>
    public static int? GrpcStatus(HttpResponseMessage response) =>
        response.Headers.NonValidated.TryGetValues("grpc-status", out var values)
        && int.TryParse(values.ToString(), NumberStyles.None, CultureInfo.InvariantCulture, out var code) ? code : null;

    /// <summary>
    /// Parses a <c>grpc-timeout</c> header (up to 8 digits and a unit: H, M, S, m, u, n), as the gRPC HTTP/2 protocol
    /// defines it; null when absent or malformed.
    /// </summary>
    public static TimeSpan? GrpcTimeout(string? value)
    {
        if (value is not { Length: >= 2 and <= 9 } || !long.TryParse(value.AsSpan(0, value.Length - 1), NumberStyles.None, CultureInfo.InvariantCulture, out var n))
        {
            return null;
        }

        return value[^1] switch
        {
            'H' => TimeSpan.FromHours(n),
            'M' => TimeSpan.FromMinutes(n),
            'S' => TimeSpan.FromSeconds(n),
            'm' => TimeSpan.FromMilliseconds(n),
            'u' => TimeSpan.FromMicroseconds(n),
            'n' => TimeSpan.FromTicks(n / 100),
            _ => null,
        };
    }

    private static HttpRequestMessage BuildRequest(HttpContext context, EndpointState e, RequestBody body, TraceParent traceparent)
    {
        var request = context.Request;
        var raw = context.Features.Get<IHttpRequestFeature>()?.RawTarget;
        var target = raw is { Length: > 0 } && raw[0] == '/' ? raw : request.Path.ToUriComponent() + request.QueryString.ToUriComponent();
        var message = new HttpRequestMessage(HttpMethod.Parse(request.Method), e.Uri.OriginalString + target)
        {
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
        };
        if (e.Upstream.Pod is { } pod)
        {
            // The URI names the pod (pool key); the upstream sees its own address as the authority, as on the host.
            message.Headers.Host = e.HostHeader;
            message.Options.Set(InPod, (pod, new IPEndPoint(IPAddress.Parse(e.Upstream.Host), e.Upstream.Port)));
        }

        if (body.Buffered is { } buffered)
        {
            message.Content = new ByteArrayContent(buffered);
        }
        else if (body.Streamed)
        {
            message.Content = new StreamContent(body.Source ?? request.Body);
        }

        foreach (var header in request.Headers)
        {
            if (SkipRequestHeaders.Contains(header.Key) || header.Key.StartsWith(':'))
            {
                continue;
            }

            IEnumerable<string?> values = header.Value;
            if (!message.Headers.TryAddWithoutValidation(header.Key, values))
            {
                message.Content?.Headers.TryAddWithoutValidation(header.Key, values);
            }
        }

        // gRPC needs "te: trailers" end to end (servers reject calls without it); it is the one TE value HTTP/2 allows.
        if (request.Headers.TE.ToString().Contains("trailers", StringComparison.OrdinalIgnoreCase))
        {
            message.Headers.TryAddWithoutValidation("TE", "trailers");
        }

        message.Headers.TryAddWithoutValidation(TraceContext.Header, traceparent.ToString());
        var remote = context.Connection.RemoteIpAddress?.ToString();
        var prior = request.Headers["X-Forwarded-For"].ToString();
        if (remote is not null || prior.Length > 0)
        {
            message.Headers.TryAddWithoutValidation("X-Forwarded-For", prior.Length > 0 && remote is not null ? prior + ", " + remote : prior.Length > 0 ? prior : remote);
        }

        if (!request.Headers.ContainsKey("X-Forwarded-Proto"))
        {
            message.Headers.TryAddWithoutValidation("X-Forwarded-Proto", request.Scheme);
        }

        return message;
    }

    private static StringValues ToStringValues(HeaderStringValues values)
    {
        if (values.Count == 1)
        {
            return new StringValues(values.ToString());
        }

        var array = new string[values.Count];
        var i = 0;
        foreach (var v in values)
        {
            array[i++] = v;
        }

        return new StringValues(array);
    }
}
