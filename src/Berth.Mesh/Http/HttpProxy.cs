using System.Net;
using System.Net.Http.Headers;
using Berth.Core.Model;
using Berth.Mesh.Observability;
using Berth.Mesh.Resilience;
using Berth.Mesh.Routing;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Primitives;

namespace Berth.Mesh.Http;

/// <summary>
/// The HTTP data path of one listener: limits, service breaker, endpoint choice (split, balancing, ejection, endpoint
/// breakers), forwarding over a pooled <see cref="SocketsHttpHandler"/>, retries with backoff and budget, timeouts.
/// </summary>
internal sealed class HttpProxy : IDisposable
{
    /// <summary>Set on a fail-fast 503 from an open breaker: <c>service/api</c> or <c>endpoint/api/replica-2</c>.</summary>
    public const string CircuitHeader = "x-berth-circuit-open";

    /// <summary>Set on every response the mesh itself produced, naming why (no-upstream, max-requests, upstream-timeout…).</summary>
    public const string ErrorHeader = "x-berth-error";

    /// <summary>5s, as Envoy's cluster connect_timeout.</summary>
    public static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(5);

    private static readonly HashSet<string> SkipRequestHeaders = new(StringComparer.OrdinalIgnoreCase)
    {
        "Host", "Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "TE", "Trailer", "Upgrade", "traceparent",
    };

    private static readonly HashSet<string> SkipResponseHeaders = new(StringComparer.OrdinalIgnoreCase)
    {
        "Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Trailer", "Upgrade",
    };

    private readonly ServiceState _state;
    private readonly HttpMessageInvoker _client;

    public HttpProxy(ServiceState state)
    {
        _state = state;
        _client = new HttpMessageInvoker(new SocketsHttpHandler
        {
            UseProxy = false,
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
            UseCookies = false,
            ActivityHeadersPropagator = null,
            ConnectTimeout = ConnectTimeout,
            MaxConnectionsPerServer = Math.Max(1, state.Snapshot.Policy.Limits.MaxConnections),
            EnableMultipleHttp2Connections = true,
        });
    }

    public void Dispose() => _client.Dispose();

    public async Task InvokeAsync(HttpContext context)
    {
        var time = _state.Time;
        var started = time.GetTimestamp();
        var startedAt = _state.Spans is null ? default : time.GetUtcNow();
        var s = _state.Snapshot;
        var limits = s.Policy.Limits;
        var result = new Result(0, "-", 0);
        if (Interlocked.Increment(ref _state.Active) > limits.MaxRequests)
        {
            Interlocked.Decrement(ref _state.Active);
            Reject(context, "max-requests");
            return;
        }

        if (Volatile.Read(ref _state.Pending) >= limits.MaxPendingRequests)
        {
            Interlocked.Decrement(ref _state.Active);
            Reject(context, "max-pending");
            return;
        }

        _state.ActiveGauge.Inc();
        try
        {
            var permit = s.ServiceBreaker.TryEnter();
            if (permit == BreakerPermit.Rejected)
            {
                _state.Metrics.Rejections.WithLabels(_state.Service, _state.EndpointName, "circuit-open").Inc();
                context.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
                context.Response.Headers[CircuitHeader] = "service/" + _state.Service;
                context.Response.Headers[ErrorHeader] = "circuit-open";
                result = new Result(503, "-", 0);
                return;
            }

            var reported = false;
            try
            {
                result = context.Features.Get<IHttpUpgradeFeature>() is { IsUpgradableRequest: true } upgrade
                    ? await UpgradeAsync(context, upgrade, s)
                    : await ForwardAsync(context, s);
                if (!context.RequestAborted.IsCancellationRequested)
                {
                    s.ServiceBreaker.Report(permit, result.Status < 500);
                    reported = true;
                }
            }
            finally
            {
                if (!reported)
                {
                    s.ServiceBreaker.Release(permit);
                }
            }
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            result = result with { Status = 499 };
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // A fault in the data path (or a client body that broke off) must not reach Kestrel as an unhandled error.
            Log.ProxyFailed(_state.Logger, _state.Service, _state.EndpointName, ex);
            if (context.Response.HasStarted)
            {
                context.Abort();
                result = result with { Status = 499 };
            }
            else
            {
                context.Response.Clear();
                context.Response.StatusCode = StatusCodes.Status502BadGateway;
                context.Response.Headers[ErrorHeader] = "proxy-error";
                result = new Result(502, result.Upstream, result.Attempts);
            }
        }
        finally
        {
            Interlocked.Decrement(ref _state.Active);
            _state.ActiveGauge.Dec();
            var elapsed = time.GetElapsedTime(started);
            _state.Requests(result.Status).Inc();
            _state.RequestDuration.Observe(elapsed.TotalSeconds);
            _state.Spans?.Record(context, _state, result.Status, result.Upstream, result.Attempts, startedAt, elapsed);
            if (s.Policy.AccessLog)
            {
                Log.Access(_state.Logger, context.Request.Method, context.Request.Path.Value ?? "/", result.Status, result.Upstream, elapsed.TotalMilliseconds, result.Attempts,
                    context.Items.TryGetValue(TraceContext.Header, out var tp) ? tp as string ?? "" : "");
            }
        }
    }

    private async Task<Result> ForwardAsync(HttpContext context, RouteSnapshot s)
    {
        var policy = s.Policy;
        var request = context.Request;
        var response = context.Response;
        var aborted = context.RequestAborted;
        s.Budget.RecordRequest();

        var maxAttempts = 1 + Math.Max(0, policy.Retries.Attempts);
        var methodRetriable = policy.Retries.NonIdempotent || IsIdempotent(request.Method);
        var hasBody = context.Features.Get<IHttpRequestBodyDetectionFeature>()?.CanHaveBody ?? request.ContentLength > 0;
        byte[]? body = null;
        var replayable = !hasBody;
        // A refused connect never reached the replica, so even a POST may go to another one: bodies are buffered for that too.
        if (hasBody && (methodRetriable || s.Retry.ConnectFailure) && maxAttempts > 1 && request.ContentLength is long length && length <= policy.Retries.MaxBufferedBody.Bytes)
        {
            body = new byte[length];
            await request.Body.ReadExactlyAsync(body, aborted);
            replayable = true;
        }

        var traceparent = TraceContext.Next(request.Headers[TraceContext.Header].ToString() is { Length: > 0 } tp ? tp : null);
        if (policy.AccessLog || _state.Spans is not null)
        {
            context.Items[TraceContext.Header] = traceparent;
        }
        var hashKey = s.HashOn is { } h ? (h.Kind == "header" ? NullIfEmpty(request.Headers[h.Name].ToString()) : request.Cookies[h.Name]) : null;
        var group = _state.SelectGroup(s, s.HeaderRoutes.Length == 0 ? null : name => NullIfEmpty(request.Headers[name].ToString()));

        using var timer = new RequestTimer(_state.Time, policy.Timeout, aborted);
        List<EndpointState>? tried = null;
        for (var attempt = 1; ; attempt++)
        {
            var e = _state.Choose(s, group, tried, hashKey, out var permit);
            if (e is null)
            {
                var none = group.Length == 0;
                _state.Metrics.Rejections.WithLabels(_state.Service, _state.EndpointName, none ? "no-upstream" : "circuit-open").Inc();
                response.StatusCode = StatusCodes.Status503ServiceUnavailable;
                response.Headers[ErrorHeader] = none ? "no-upstream" : "circuit-open";
                if (!none)
                {
                    response.Headers[CircuitHeader] = $"endpoint/{_state.Service}/*";
                }

                return new Result(503, "-", attempt - 1);
            }

            e.Enter();
            var exited = false;
            HttpResponseMessage? upstream = null;
            try
            {
                var failure = Failure.None;
                var sendStarted = _state.Time.GetTimestamp();
                var token = timer.Arm(policy.PerTryTimeout);
                Interlocked.Increment(ref _state.Pending);
                try
                {
                    using var message = BuildRequest(context, e, body, replayable ? null : request.Body, traceparent);
                    upstream = await _client.SendAsync(message, token);
                }
                catch (HttpRequestException ex) when (!token.IsCancellationRequested)
                {
                    failure = ex.HttpRequestError == HttpRequestError.ConnectionError ? Failure.Connect : Failure.Reset;
                    Log.AttemptFailed(_state.Logger, e.ToString(), ex.Message);
                }
                catch (OperationCanceledException) when (!aborted.IsCancellationRequested)
                {
                    failure = timer.TotalExpired ? Failure.Timeout : Failure.PerTryTimeout;
                }
                catch (OperationCanceledException)
                {
                    e.Breaker.Release(permit);
                    throw;
                }
                finally
                {
                    Interlocked.Decrement(ref _state.Pending);
                }

                var elapsed = _state.Time.GetElapsedTime(sendStarted);
                bool retriable;
                string reason;
                if (upstream is not null)
                {
                    var code = (int)upstream.StatusCode;
                    e.Series.Status(code).Inc();
                    e.Series.Duration.Observe(elapsed.TotalSeconds);
                    if (policy.LoadBalancing == LoadBalancing.PeakEwma)
                    {
                        e.Ewma.Observe(elapsed);
                    }
                    e.Breaker.Report(permit, code < 500);
                    _state.ReportOutcome(s, e, code switch
                    {
                        502 or 503 or 504 => AttemptOutcome.GatewayError,
                        >= 500 => AttemptOutcome.ServerError,
                        _ => AttemptOutcome.Success,
                    });
                    retriable = s.Retry.Statuses.Contains(code);
                    reason = code.ToString(System.Globalization.CultureInfo.InvariantCulture);
                }
                else
                {
                    e.Series.Errors.Inc();
                    e.Breaker.Report(permit, false);
                    _state.ReportOutcome(s, e, AttemptOutcome.GatewayError);
                    (retriable, reason) = failure switch
                    {
                        Failure.Connect => (s.Retry.ConnectFailure, "connect-failure"),
                        Failure.Reset => (s.Retry.Reset, "reset"),
                        Failure.PerTryTimeout => (s.Retry.Reset || s.Retry.Statuses.Contains(504), "per-try-timeout"),
                        _ => (false, "timeout"),
                    };
                }

                if (retriable && CanRetry(s, attempt, maxAttempts, methodRetriable || failure == Failure.Connect, replayable, timer.TotalExpired))
                {
                    upstream?.Dispose();
                    upstream = null;
                    e.Exit();
                    exited = true;
                    (tried ??= []).Add(e);
                    _state.Metrics.Retries.WithLabels(_state.Service, _state.EndpointName, reason).Inc();

                    // A refused connect never reached the replica, so the retry (to another one) goes at once;
                    // anything that may have loaded an upstream waits a full-jitter backoff first.
                    if (failure != Failure.Connect)
                    {
                        var delay = Backoff.FullJitter(attempt - 1, policy.Retries.BackoffBase, policy.Retries.BackoffMax, _state.Random);
                        if (delay > TimeSpan.Zero)
                        {
                            try
                            {
                                await Task.Delay(delay, _state.Time, timer.Arm(null));
                            }
                            catch (OperationCanceledException) when (!aborted.IsCancellationRequested)
                            {
                                // The total timeout ran out while backing off.
                                response.StatusCode = StatusCodes.Status504GatewayTimeout;
                                response.Headers[ErrorHeader] = "upstream-timeout";
                                return new Result(504, e.Upstream.ReplicaId, attempt);
                            }
                        }
                    }

                    continue;
                }

                if (upstream is null)
                {
                    var (status, why) = failure switch
                    {
                        Failure.Connect => (502, "upstream-connect-failure"),
                        Failure.Reset => (502, "upstream-reset"),
                        _ => (504, "upstream-timeout"),
                    };
                    response.StatusCode = status;
                    response.Headers[ErrorHeader] = why;
                    return new Result(status, e.Upstream.ReplicaId, attempt);
                }

                await CopyResponseAsync(context, upstream, timer.Arm(null));
                return new Result((int)upstream.StatusCode, e.Upstream.ReplicaId, attempt);
            }
            finally
            {
                upstream?.Dispose();
                if (!exited)
                {
                    e.Exit();
                }
            }
        }
    }

    /// <summary>
    /// An HTTP/1.1 Upgrade (WebSocket): one handshake to a chosen upstream; on 101 the client and upstream connections
    /// are spliced until either side closes. Not retried, and only the handshake is bounded by the timeouts.
    /// </summary>
    private async Task<Result> UpgradeAsync(HttpContext context, IHttpUpgradeFeature upgrade, RouteSnapshot s)
    {
        var policy = s.Policy;
        var response = context.Response;
        var aborted = context.RequestAborted;
        var group = _state.SelectGroup(s, s.HeaderRoutes.Length == 0 ? null : name => NullIfEmpty(context.Request.Headers[name].ToString()));
        var hashKey = s.HashOn is { } h ? (h.Kind == "header" ? NullIfEmpty(context.Request.Headers[h.Name].ToString()) : context.Request.Cookies[h.Name]) : null;
        var e = _state.Choose(s, group, null, hashKey, out var permit);
        if (e is null)
        {
            response.StatusCode = StatusCodes.Status503ServiceUnavailable;
            response.Headers[ErrorHeader] = group.Length == 0 ? "no-upstream" : "circuit-open";
            return new Result(503, "-", 0);
        }

        e.Enter();
        try
        {
            HttpResponseMessage upstream;
            using (var timer = new RequestTimer(_state.Time, policy.Timeout, aborted))
            {
                using var message = BuildRequest(context, e, null, null, TraceContext.Next(NullIfEmpty(context.Request.Headers[TraceContext.Header].ToString())));
                message.Headers.TryAddWithoutValidation("Connection", "Upgrade");
                message.Headers.TryAddWithoutValidation("Upgrade", context.Request.Headers.Upgrade.ToString());
                try
                {
                    upstream = await _client.SendAsync(message, timer.Arm(policy.PerTryTimeout));
                }
                catch (Exception ex) when (ex is HttpRequestException || (ex is OperationCanceledException && !aborted.IsCancellationRequested))
                {
                    e.Series.Errors.Inc();
                    e.Breaker.Report(permit, false);
                    _state.ReportOutcome(s, e, AttemptOutcome.GatewayError);
                    var timedOut = ex is OperationCanceledException;
                    response.StatusCode = timedOut ? 504 : 502;
                    response.Headers[ErrorHeader] = timedOut ? "upstream-timeout" : "upstream-connect-failure";
                    return new Result(response.StatusCode, e.Upstream.ReplicaId, 1);
                }
            }

            using (upstream)
            {
                var code = (int)upstream.StatusCode;
                e.Series.Status(code).Inc();
                e.Breaker.Report(permit, code < 500);
                _state.ReportOutcome(s, e, code >= 500 ? AttemptOutcome.GatewayError : AttemptOutcome.Success);
                if (code != StatusCodes.Status101SwitchingProtocols)
                {
                    await CopyResponseAsync(context, upstream, aborted);
                    return new Result(code, e.Upstream.ReplicaId, 1);
                }

                response.StatusCode = code;
                foreach (var header in upstream.Headers.NonValidated)
                {
                    // Kestrel adds Connection: Upgrade itself; the Upgrade header (which protocol) comes from the upstream.
                    if (!header.Key.Equals("Connection", StringComparison.OrdinalIgnoreCase))
                    {
                        response.Headers[header.Key] = ToStringValues(header.Value);
                    }
                }

                await using var upstreamStream = await upstream.Content.ReadAsStreamAsync(aborted);
                await using var clientStream = await upgrade.UpgradeAsync();
                using var done = CancellationTokenSource.CreateLinkedTokenSource(aborted);
                var up = PumpAsync(clientStream, upstreamStream, done);
                var down = PumpAsync(upstreamStream, clientStream, done);
                await Task.WhenAny(up, down);
                await done.CancelAsync();
                await Task.WhenAll(up, down);
                return new Result(code, e.Upstream.ReplicaId, 1);
            }
        }
        finally
        {
            e.Exit();
        }
    }

    private static async Task PumpAsync(Stream from, Stream to, CancellationTokenSource done)
    {
        try
        {
            await from.CopyToAsync(to, done.Token);
            await to.FlushAsync(done.Token);
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException)
        {
        }
    }

    private bool CanRetry(RouteSnapshot s, int attempt, int maxAttempts, bool methodRetriable, bool replayable, bool expired)
    {
        var why = attempt >= maxAttempts ? "attempts"
            : !methodRetriable ? "method"
            : !replayable ? "body"
            : expired ? "deadline"
            : !s.Budget.TryWithdraw() ? "budget"
            : null;
        if (why is null)
        {
            return true;
        }

        _state.Metrics.RetriesSkipped.WithLabels(_state.Service, _state.EndpointName, why).Inc();
        return false;
    }

    private static HttpRequestMessage BuildRequest(HttpContext context, EndpointState e, byte[]? body, Stream? stream, string traceparent)
    {
        var request = context.Request;
        var raw = context.Features.Get<IHttpRequestFeature>()?.RawTarget;
        var target = raw is { Length: > 0 } && raw[0] == '/' ? raw : request.Path.ToUriComponent() + request.QueryString.ToUriComponent();
        var message = new HttpRequestMessage(HttpMethod.Parse(request.Method), e.Uri.OriginalString + target)
        {
            Version = HttpVersion.Version11,
            VersionPolicy = HttpVersionPolicy.RequestVersionOrLower,
        };
        if (body is not null)
        {
            message.Content = new ByteArrayContent(body);
        }
        else if (stream is not null)
        {
            message.Content = new StreamContent(stream);
        }

        foreach (var header in request.Headers)
        {
            if (SkipRequestHeaders.Contains(header.Key))
            {
                continue;
            }

            if (header.Value.Count == 1)
            {
                var value = header.Value.ToString();
                if (!message.Headers.TryAddWithoutValidation(header.Key, value))
                {
                    message.Content?.Headers.TryAddWithoutValidation(header.Key, value);
                }
            }
            else
            {
                IEnumerable<string?> values = header.Value;
                if (!message.Headers.TryAddWithoutValidation(header.Key, values))
                {
                    message.Content?.Headers.TryAddWithoutValidation(header.Key, values);
                }
            }
        }

        message.Headers.TryAddWithoutValidation(TraceContext.Header, traceparent);
        var remote = context.Connection.RemoteIpAddress?.ToString();
        if (remote is not null)
        {
            var prior = request.Headers["X-Forwarded-For"].ToString();
            message.Headers.Remove("X-Forwarded-For");
            message.Headers.TryAddWithoutValidation("X-Forwarded-For", prior.Length > 0 ? prior + ", " + remote : remote);
        }

        if (!request.Headers.ContainsKey("X-Forwarded-Host") && request.Host.HasValue)
        {
            message.Headers.TryAddWithoutValidation("X-Forwarded-Host", request.Host.Value);
        }

        if (!request.Headers.ContainsKey("X-Forwarded-Proto"))
        {
            message.Headers.TryAddWithoutValidation("X-Forwarded-Proto", request.Scheme);
        }

        return message;
    }

    private static async Task CopyResponseAsync(HttpContext context, HttpResponseMessage upstream, CancellationToken cancellationToken)
    {
        var response = context.Response;
        response.StatusCode = (int)upstream.StatusCode;
        // The non-validated views avoid parsing and per-header array allocations (as YARP copies them).
        foreach (var header in upstream.Headers.NonValidated)
        {
            if (!SkipResponseHeaders.Contains(header.Key))
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
            await using var body = await upstream.Content.ReadAsStreamAsync(cancellationToken);
            await body.CopyToAsync(response.Body, cancellationToken);
        }
        catch (Exception ex) when (ex is IOException or HttpRequestException || (ex is OperationCanceledException && !context.RequestAborted.IsCancellationRequested))
        {
            // Headers are out: the only honest signal left for a broken upstream body is a broken client response.
            context.Abort();
        }
    }

    private void Reject(HttpContext context, string reason)
    {
        _state.Metrics.Rejections.WithLabels(_state.Service, _state.EndpointName, reason).Inc();
        _state.Requests(503).Inc();
        context.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
        context.Response.Headers[ErrorHeader] = reason;
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

    private static string? NullIfEmpty(string? s) => string.IsNullOrEmpty(s) ? null : s;

    /// <summary>RFC 9110 idempotent methods (and OPTIONS/TRACE, which are safe).</summary>
    internal static bool IsIdempotent(string method) =>
        HttpMethods.IsGet(method) || HttpMethods.IsHead(method) || HttpMethods.IsOptions(method) || HttpMethods.IsPut(method)
        || HttpMethods.IsDelete(method) || HttpMethods.IsTrace(method);

    /// <summary>
    /// One cancellation source per request for the total timeout and each try's timeout (re-armed per attempt, renewed
    /// only after a per-try timeout fired), instead of a linked source and timer per bound per attempt.
    /// </summary>
    private sealed class RequestTimer : IDisposable
    {
        private readonly TimeProvider _time;
        private readonly TimeSpan? _total;
        private readonly CancellationToken _aborted;
        private readonly long _started;
        private CancellationTokenSource _cts;
        private CancellationTokenRegistration _registration;

        public RequestTimer(TimeProvider time, TimeSpan? total, CancellationToken aborted)
        {
            _time = time;
            _total = total;
            _aborted = aborted;
            _started = time.GetTimestamp();
            _cts = Create();
        }

        public bool TotalExpired => _total is { } t && _time.GetElapsedTime(_started) >= t;

        /// <summary>A token cancelled at the earlier of the per-try bound and the total deadline, or when the client leaves.</summary>
        public CancellationToken Arm(TimeSpan? perTry)
        {
            if (_cts.IsCancellationRequested && !_aborted.IsCancellationRequested)
            {
                _registration.Dispose();
                _cts.Dispose();
                _cts = Create();
            }

            TimeSpan? bound = perTry;
            if (_total is { } t)
            {
                var remaining = t - _time.GetElapsedTime(_started);
                remaining = remaining < TimeSpan.Zero ? TimeSpan.Zero : remaining;
                bound = bound is { } b && b < remaining ? b : remaining;
            }

            _cts.CancelAfter(bound ?? Timeout.InfiniteTimeSpan);
            return _cts.Token;
        }

        public void Dispose()
        {
            _registration.Dispose();
            _cts.Dispose();
        }

        private CancellationTokenSource Create()
        {
            var cts = new CancellationTokenSource(Timeout.InfiniteTimeSpan, _time);
            _registration = _aborted.UnsafeRegister(static state => ((CancellationTokenSource)state!).Cancel(), cts);
            return cts;
        }
    }

    private enum Failure
    {
        None,
        Connect,
        Reset,
        PerTryTimeout,
        Timeout,
    }

    private readonly record struct Result(int Status, string Upstream, int Attempts);
}
