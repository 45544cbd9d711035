using System.Runtime.CompilerServices;
using Berth.Core.Model;
using Berth.Mesh.Observability;
using Berth.Mesh.Resilience;
using Berth.Mesh.Routing;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace Berth.Mesh.Http;

/// <summary>
/// The HTTP data path of one listener, composed of small parts: <see cref="AdmissionLimits"/> → service breaker →
/// <see cref="EndpointSelector"/> → <see cref="Http1Forwarder"/> (one attempt, typed outcome) →
/// <see cref="RetryDecision"/> (pure) → answer; <see cref="RequestTelemetry"/> records it all.
/// </summary>
internal sealed class HttpProxy(ServiceState state) : IDisposable
{
    /// <summary>gRPC's UNAVAILABLE and DEADLINE_EXCEEDED: what a gRPC client gets for answers the mesh makes itself.</summary>
    private const int GrpcUnavailable = 14;
    private const int GrpcDeadlineExceeded = 4;

    /// <summary>Set on a fail-fast 503 from an open breaker: <c>service/api</c> or <c>endpoint/api/replica-2</c>.</summary>
    public const string CircuitHeader = "x-berth-circuit-open";

    /// <summary>Set on every response the mesh itself produced, naming why (no-upstream, max-requests, upstream-timeout…).</summary>
    public const string ErrorHeader = "x-berth-error";

    /// <summary>5s, as Envoy's cluster connect_timeout.</summary>
    public static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(5);

    private readonly ServiceState _state = state;
    private readonly RequestTelemetry _telemetry = state.Telemetry;
    private readonly Http2Forwarder _http2 = new(state.ConnectTimeout);

    /// <summary>Closes the upstream connections kept idle (the listener is going away).</summary>
    public void Dispose()
    {
        _http2.Dispose();
        foreach (var e in _state.Snapshot.All)
        {
            e.Pool.Dispose();
        }
    }

    /// <summary>A request Kestrel parsed (HTTP/2, gRPC, and HTTP/1.1 requests the mesh's own server hands over).</summary>
    public Task InvokeAsync(HttpContext context)
    {
        var x = new KestrelExchange(context);
        if (IsAmbiguouslyFramed(context.Request))
        {
            // Request smuggling (RFC 9112 6.1): Kestrel would read it as chunked, but a hop before it may have used the
            // Content-Length. A proxy must not guess: 400 and close, as nginx and HAProxy do.
            var started = _state.Time.GetTimestamp();
            context.Response.Headers.Connection = "close";
            Answer(x, 400, "ambiguous-framing", "-", 0);
            _telemetry.Completed(x, 400, "-", 0, started, default, "ambiguous-framing");
            return Task.CompletedTask;
        }

        return RunAsync(x, context.Features.Get<IHttpUpgradeFeature>() is { IsUpgradableRequest: true } upgrade ? upgrade : null).AsTask();
    }

    /// <summary>Admission, the service breaker, one forwarded request (with its retries) and its telemetry, for either kind of exchange.</summary>
    [AsyncMethodBuilder(typeof(PooledValueTaskBuilder))]
    internal async ValueTask RunAsync(IProxyExchange x, IHttpUpgradeFeature? upgrade = null)
    {
        var started = _state.Time.GetTimestamp();
        var s = _state.Snapshot;
        var outcome = new Outcome(0, "-", 0, null, false);
        TraceParent traceparent = default;
        if (_state.Limits.TryEnter(s.Policy.Limits) is { } refused)
        {
            _telemetry.Rejected(refused);
            outcome = Answer(x, 503, refused, "-", 0);
            _telemetry.Completed(x, 503, "-", 0, started, default, refused);
            return;
        }

        _state.ActiveGauge.Inc();
        try
        {
            var permit = s.ServiceBreaker.TryEnter();
            if (permit == BreakerPermit.Rejected)
            {
                _telemetry.Rejected("circuit-open");
                x.SetHeader(CircuitHeader, "service/" + _state.Service);
                outcome = Answer(x, 503, "circuit-open", "-", 0);
                return;
            }

            var reported = false;
            try
            {
                traceparent = TraceContext.Next(x.Header(TraceContext.Header));
                outcome = upgrade is not null
                    ? await UpgradeAsync(((KestrelExchange)x).Context, x, upgrade, traceparent)
                    : await ForwardAsync(x, traceparent);
                if (!x.Aborted.IsCancellationRequested && outcome.CountsForService)
                {
                    _state.ReportService(s, permit, outcome.Status < 500);
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
        catch (OperationCanceledException) when (x.Aborted.IsCancellationRequested)
        {
            outcome = outcome with { Status = 499 };
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // A fault in the data path must not reach the server as an unhandled error.
            Log.ProxyFailed(_state.Logger, _state.Service, _state.EndpointName, ex);
            if (x.ResponseStarted)
            {
                x.Abort();
                outcome = outcome with { Status = 499 };
            }
            else
            {
                x.ClearResponse();
                outcome = Answer(x, 502, "proxy-error", outcome.Upstream, outcome.Attempts);
            }
        }
        finally
        {
            _state.Limits.Leave();
            _state.ActiveGauge.Dec();
            _telemetry.Completed(x, outcome.Status, outcome.Upstream, outcome.Attempts, started, traceparent, outcome.Error);
        }
    }

    [AsyncMethodBuilder(typeof(PooledValueTaskBuilder<>))]
    private async ValueTask<Outcome> ForwardAsync(IProxyExchange x, TraceParent traceparent)
    {
        var s = _state.Snapshot;
        var policy = s.Policy;
        var aborted = x.Aborted;
        s.Budget.RecordRequest();

        var maxAttempts = 1 + Math.Max(0, policy.Retries.Attempts);
        var idempotent = IsIdempotent(x.Method);
        RequestBody body;
        try
        {
            body = await x.ReadBodyAsync(s, maxAttempts, idempotent);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            return ClientBodyFailed(x, ex, 0);
        }

        var replayable = !body.Streamed;
        var hashKey = HashKeyOf(s, x);
        var group = SelectGroup(s, x);
        var http2 = s.Route.Endpoint.Protocol.IsHttp2();
        var total = policy.Timeout;
        var grpcDeadline = s.Route.Endpoint.Protocol == EndpointProtocol.Grpc ? Http2Forwarder.GrpcTimeout(x.Header("grpc-timeout") ?? "") : null;
        if (grpcDeadline is { } deadline)
        {
            // The caller's gRPC deadline bounds the whole call here too, retries included.
            total = total is { } t && t < deadline ? t : deadline;
        }

        using var timer = x.Timer(_state.Time).Start(total, aborted);
        List<EndpointState>? tried = null;
        for (var attempt = 1; ; attempt++)
        {
            // Every attempt, retries included, picks from the current route table: a replica that left it is not retried onto.
            if (!ReferenceEquals(s, _state.Snapshot))
            {
                s = _state.Snapshot;
                group = SelectGroup(s, x);
            }

            if (s.All.Length == 0 && await _state.WaitForUpstreamAsync(timer.Arm(null)))
            {
                s = _state.Snapshot;
                group = SelectGroup(s, x);
            }

            var e = _state.Selector.Choose(s, group, tried, hashKey, out var permit);
            if (e is null)
            {
                var none = group.Length == 0;
                _telemetry.Rejected(none ? "no-upstream" : "circuit-open");
                if (!none)
                {
                    x.SetHeader(CircuitHeader, $"endpoint/{_state.Service}/*");
                }

                return Answer(x, 503, none ? "no-upstream" : "circuit-open", "-", attempt - 1, countsForService: false);
            }

            e.Enter();
            if (!_state.StillRouted(s, e))
            {
                e.Exit();
                e.Breaker.Release(permit);
                attempt--; // not an attempt: nothing was sent
                continue;
            }

            var exited = false;
            Attempt a = default;
            try
            {
                var sendStarted = _state.Time.GetTimestamp();
                var token = timer.Arm(policy.PerTryTimeout);
                _state.Limits.EnterPending();
                try
                {
                    a = http2
                        ? await _http2.SendAsync(((KestrelExchange)x).Context, e, body, traceparent, grpcDeadline is null ? null : timer.Remaining, token)
                        : await x.SendHttp1Async(e, body, traceparent, token);
                }
                catch (OperationCanceledException)
                {
                    e.Breaker.Release(permit);
                    throw;
                }
                finally
                {
                    _state.Limits.LeavePending();
                }

                var error = a.Error == AttemptError.PerTryTimeout && timer.TotalExpired ? AttemptError.Timeout : a.Error;
                if (error == AttemptError.ClientBody)
                {
                    e.Breaker.Release(permit);
                    return ClientBodyFailed(x, null, attempt);
                }

                var grpcStatus = a.GrpcStatus;
                if (error == AttemptError.None)
                {
                    var code = a.Status;
                    _telemetry.AttemptAnswered(e, code, _state.Time.GetElapsedTime(sendStarted));
                    if (grpcStatus is { } g)
                    {
                        _telemetry.Grpc(g);
                    }

                    if (policy.LoadBalancing == LoadBalancing.PeakEwma)
                    {
                        e.Ewma.Observe(_state.Time.GetElapsedTime(sendStarted));
                    }

                    // gRPC UNAVAILABLE is the gRPC spelling of a gateway error (Envoy's outlier detection maps it so too).
                    var failed = code >= 500 || grpcStatus == GrpcUnavailable;
                    e.Breaker.Report(permit, !failed);
                    if (failed)
                    {
                        _state.MarkFailed(e);
                    }

                    _state.ReportOutcome(s, e, code switch
                    {
                        502 or 503 or 504 => AttemptOutcome.GatewayError,
                        >= 500 => AttemptOutcome.ServerError,
                        _ when grpcStatus == GrpcUnavailable => AttemptOutcome.GatewayError,
                        _ => AttemptOutcome.Success,
                    });
                }
                else
                {
                    Log.AttemptFailed(_state.Logger, e.ToString(), a.Detail ?? error.ToString());
                    _telemetry.AttemptFailed(e, error);
                    e.Breaker.Report(permit, false);
                    _state.MarkFailed(e);
                    _state.ReportOutcome(s, e, AttemptOutcome.GatewayError);
                }

                // A streamed body is spent once an attempt has sent any of it; only a refused connect leaves it untouched.
                if (body.Streamed && error != AttemptError.ConnectFailure)
                {
                    replayable = false;
                }

                // A gRPC call is a POST, but whether it may be retried is the service's call: retry_on names the statuses.
                var verdict = RetryDecision.Decide(new RetryInput(s.Retry, error, a.Status, grpcStatus, idempotent || (grpcStatus is not null && s.Retry.GrpcStatuses.Contains(grpcStatus.Value)), policy.Retries.NonIdempotent,
                    attempt, maxAttempts, replayable, timer.TotalExpired));
                if (verdict.Retry && !s.Budget.TryWithdraw())
                {
                    verdict = verdict with { Retry = false, SkippedBecause = "budget" };
                }

                if (verdict.SkippedBecause is { } why)
                {
                    _telemetry.RetrySkipped(why);
                }

                if (verdict.Retry)
                {
                    a.Dispose();
                    a = default;
                    e.Exit();
                    exited = true;
                    (tried ??= []).Add(e);
                    _telemetry.Retried(verdict.Reason!);
                    if (verdict.Backoff && !await BackoffAsync(policy, attempt, timer))
                    {
                        return Answer(x, 504, "upstream-timeout", e.Upstream.ReplicaId, attempt);
                    }

                    continue;
                }

                if (a.Response is { } h2Response)
                {
                    a = default;
                    try
                    {
                        await Http2Forwarder.CopyResponseAsync(((KestrelExchange)x).Context, h2Response, timer.Arm(null));
                        if (grpcStatus is null && h2Response.TrailingHeaders.NonValidated.TryGetValues("grpc-status", out var trailer)
                            && int.TryParse(trailer.ToString(), System.Globalization.CultureInfo.InvariantCulture, out var final))
                        {
                            _telemetry.Grpc(final);
                        }
                    }
                    finally
                    {
                        h2Response.RequestMessage?.Dispose();
                        h2Response.Dispose();
                    }

                    return new Outcome((int)h2Response.StatusCode, e.Upstream.ReplicaId, attempt, null, true);
                }

                if (a.Connection is not { } connection)
                {
                    var (status, label) = error switch
                    {
                        AttemptError.ConnectFailure => (502, "upstream-connect-failure"),
                        AttemptError.Reset => (502, "upstream-reset"),
                        AttemptError.BadResponse => (502, "upstream-bad-response"),
                        AttemptError.PerTryTimeout or AttemptError.Timeout => (504, "upstream-timeout"),
                        AttemptError.None or AttemptError.ClientBody => (502, "proxy-error"),
                    };
                    return Answer(x, status, label, e.Upstream.ReplicaId, attempt);
                }

                a = default;
                await x.CopyHttp1ResponseAsync(e, connection, timer.Arm(null));
                return new Outcome(connection.Head.Status, e.Upstream.ReplicaId, attempt, null, true);
            }
            finally
            {
                a.Dispose();
                if (!exited)
                {
                    e.Exit();
                }
            }
        }
    }

    /// <summary>Full-jitter backoff before a retry of something that may have loaded an upstream; false when the total timeout ran out meanwhile.</summary>
    private async Task<bool> BackoffAsync(MeshPolicy policy, int attempt, RequestTimer timer)
    {
        var delay = Backoff.FullJitter(attempt - 1, policy.Retries.BackoffBase, policy.Retries.BackoffMax, _state.Random);
        if (delay <= TimeSpan.Zero)
        {
            return true;
        }

        try
        {
            await Task.Delay(delay, _state.Time, timer.Arm(null));
            return true;
        }
        catch (OperationCanceledException) when (!timer.ClientAborted)
        {
            return false;
        }
    }

    /// <summary>
    /// An HTTP/1.1 Upgrade (WebSocket): one handshake to a chosen upstream over an owned connection; on 101 the client and
    /// upstream connections are spliced until either side closes. Not retried; only the handshake is bounded by the timeouts.
    /// </summary>
    private async Task<Outcome> UpgradeAsync(HttpContext context, IProxyExchange x, IHttpUpgradeFeature upgrade, TraceParent traceparent)
    {
        var s = _state.Snapshot;
        var aborted = context.RequestAborted;
        EndpointState? e;
        BreakerPermit permit;
        while (true)
        {
            e = _state.Selector.Choose(s, SelectGroup(s, x), null, HashKeyOf(s, x), out permit);
            if (e is null)
            {
                var none = s.All.Length == 0;
                return Answer(x, 503, none ? "no-upstream" : "circuit-open", "-", 0, countsForService: false);
            }

            e.Enter();
            if (_state.StillRouted(s, e))
            {
                break;
            }

            // The route table changed between the pick and the count (ServiceState.StillRouted): pick from the new one.
            e.Exit();
            e.Breaker.Release(permit);
            s = _state.Snapshot;
        }

        var policy = s.Policy;
        Http1Connection? connection = null;
        try
        {
            using (var timer = new RequestTimer(_state.Time).Start(policy.Timeout, aborted))
            {
                var a = await Http1Forwarder.SendAsync(context, e, RequestBody.None, traceparent, context.Request.Headers.Upgrade.ToString(), timer.Arm(policy.PerTryTimeout));
                if (a.Connection is null)
                {
                    _telemetry.AttemptFailed(e, a.Error);
                    e.Breaker.Report(permit, false);
                    _state.ReportOutcome(s, e, AttemptOutcome.GatewayError);
                    var timedOut = a.Error is AttemptError.PerTryTimeout or AttemptError.Timeout;
                    return Answer(x, timedOut ? 504 : 502, timedOut ? "upstream-timeout" : a.Error == AttemptError.ConnectFailure ? "upstream-connect-failure" : "upstream-reset",
                        e.Upstream.ReplicaId, 1);
                }

                connection = a.Connection;
            }

            var code = connection.Head.Status;
            _telemetry.AttemptAnswered(e, code, TimeSpan.Zero);
            e.Breaker.Report(permit, code < 500);
            _state.ReportOutcome(s, e, code >= 500 ? AttemptOutcome.GatewayError : AttemptOutcome.Success);
            if (code != StatusCodes.Status101SwitchingProtocols)
            {
                var c = connection;
                connection = null;
                await Http1Forwarder.CopyResponseAsync(context, e, c, aborted);
                return new Outcome(code, e.Upstream.ReplicaId, 1, null, true);
            }

            context.Response.StatusCode = code;
            foreach (var (name, value) in connection.Head.Headers)
            {
                // Kestrel adds Connection: Upgrade itself; the Upgrade header (which protocol) comes from the upstream.
                if (!name.Equals("Connection", StringComparison.OrdinalIgnoreCase))
                {
                    context.Response.Headers.Append(name, value);
                }
            }

            await using var upstreamStream = connection.OpenStream();
            await using var clientStream = await upgrade.UpgradeAsync();
            var early = connection.TakeBuffered();
            if (early.Length > 0)
            {
                await clientStream.WriteAsync(early, aborted);
            }

            using var done = CancellationTokenSource.CreateLinkedTokenSource(aborted);
            var up = PumpAsync(clientStream, upstreamStream, done);
            var down = PumpAsync(upstreamStream, clientStream, done);
            await Task.WhenAny(up, down);
            await done.CancelAsync();
            connection.Shutdown();
            await Task.WhenAll(up, down);
            return new Outcome(code, e.Upstream.ReplicaId, 1, null, true);
        }
        finally
        {
            connection?.Dispose();
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

    private static bool IsAmbiguouslyFramed(HttpRequest request)
    {
        // Kestrel honours Transfer-Encoding and moves a Content-Length sent with it to X-Content-Length (dotnet/aspnetcore#43523).
        var headers = request.Headers;
        return (HttpProtocol.IsHttp11(request.Protocol) || HttpProtocol.IsHttp10(request.Protocol))
            && headers.ContainsKey("Transfer-Encoding")
            && (request.ContentLength is not null || headers.ContainsKey("Content-Length") || headers.ContainsKey("X-Content-Length"));
    }

    private EndpointState[] SelectGroup(RouteSnapshot s, IProxyExchange x) =>
        _state.Selector.SelectGroup(s, s.HeaderRoutes.Length == 0 ? null : x.Header);

    private static string? HashKeyOf(RouteSnapshot s, IProxyExchange x) => s.HashOn switch
    {
        null => null,
        { Source: HashSource.Header } h => x.Header(h.Name),
        { Source: HashSource.Cookie } h => x.Cookie(h.Name),
    };

    private Outcome ClientBodyFailed(IProxyExchange x, Exception? ex, int attempts)
    {
        var status = ex is BadHttpRequestException bad ? bad.StatusCode : StatusCodes.Status400BadRequest;
        if (x.ResponseStarted)
        {
            x.Abort();
            return new Outcome(499, "-", attempts, "client-body", false);
        }

        return Answer(x, status, "client-body", "-", attempts, countsForService: false);
    }

    private Outcome Answer(IProxyExchange x, int status, string error, string upstream, int attempts, bool countsForService = true)
    {
        x.SetHeader(ErrorHeader, error);
        if (_state.Snapshot.Route.Endpoint.Protocol == EndpointProtocol.Grpc && status != 400)
        {
            // A gRPC client reads the status from grpc-status (a trailers-only answer), not from the HTTP status.
            x.SetStatus(StatusCodes.Status200OK);
            x.SetHeader("Content-Type", "application/grpc");
            x.SetHeader("grpc-status", (status == 504 ? GrpcDeadlineExceeded : GrpcUnavailable).ToString(System.Globalization.CultureInfo.InvariantCulture));
            x.SetHeader("grpc-message", "berth mesh: " + error);
            _telemetry.Grpc(status == 504 ? GrpcDeadlineExceeded : GrpcUnavailable);
        }
        else
        {
            x.SetStatus(status);
        }

        return new Outcome(status, upstream, attempts, error, countsForService);
    }

    /// <summary>RFC 9110 idempotent methods (and OPTIONS/TRACE, which are safe).</summary>
    internal static bool IsIdempotent(string method) =>
        HttpMethods.IsGet(method) || HttpMethods.IsHead(method) || HttpMethods.IsOptions(method) || HttpMethods.IsPut(method)
        || HttpMethods.IsDelete(method) || HttpMethods.IsTrace(method);

    /// <summary>How a request ended; <see cref="CountsForService"/> is false for answers that say nothing about the service's health (no Ready upstream, fail-fast, a bad client body).</summary>
    private readonly record struct Outcome(int Status, string Upstream, int Attempts, string? Error, bool CountsForService);
}
