using Berth.Core.Model;

namespace Berth.Mesh.Resilience;

/// <summary>How one attempt ended, as the forwarder could tell.</summary>
internal enum AttemptError
{
    /// <summary>A response head arrived (its status decides).</summary>
    None,

    /// <summary>No connection was made: the request never reached the upstream, so any method may go elsewhere.</summary>
    ConnectFailure,

    /// <summary>Reset or closed after (part of) the request was written, before a complete response head: the upstream may have processed it.</summary>
    Reset,

    /// <summary>The try's own time bound ran out after sending: the upstream may have processed it.</summary>
    PerTryTimeout,

    /// <summary>The request's total time ran out.</summary>
    Timeout,

    /// <summary>The upstream answered with something that is not valid HTTP (bad status line, conflicting framing).</summary>
    BadResponse,

    /// <summary>Reading the client's request body failed: the client's fault, not the upstream's.</summary>
    ClientBody,
}

/// <summary>The facts a retry decision needs about one finished attempt.</summary>
internal readonly record struct RetryInput(
    RetryConditions On,
    AttemptError Error,
    int Status,
    int? GrpcStatus,
    bool MethodIdempotent,
    bool NonIdempotentAllowed,
    int Attempt,
    int MaxAttempts,
    bool Replayable,
    bool DeadlineExpired);

/// <summary>What to do after an attempt: retry (with or without backoff), or answer — and if a retriable failure was not retried, why.</summary>
internal readonly record struct RetryVerdict(bool Retry, string? Reason, string? SkippedBecause, bool Backoff);

/// <summary>
/// The pure retry rule. A failure is retriable when <c>retries.on</c> names it; it is then retried only if attempts
/// remain, the body can be replayed, the deadline has not passed, and — for anything that may have reached the upstream
/// (a response, a reset, a per-try timeout) — the method is idempotent or non-idempotent retries are on. A connect
/// failure never reached the upstream: any method may be retried, at once. The budget is checked by the caller last.
/// </summary>
internal static class RetryDecision
{
    public static RetryVerdict Decide(in RetryInput i)
    {
        var reason = Reason(i);
        if (reason is null)
        {
            return new RetryVerdict(false, null, null, false);
        }

        var reached = i.Error != AttemptError.ConnectFailure;
        var skipped = i.Attempt >= i.MaxAttempts ? "attempts"
            : reached && !i.MethodIdempotent && !i.NonIdempotentAllowed ? "method"
            : !i.Replayable ? "body"
            : i.DeadlineExpired ? "deadline"
            : null;
        return skipped is null ? new RetryVerdict(true, reason, null, reached) : new RetryVerdict(false, reason, skipped, false);
    }

    /// <summary>The retry reason label when <c>retries.on</c> covers this outcome, else null.</summary>
    private static string? Reason(in RetryInput i) => i.Error switch
    {
        AttemptError.None when i.GrpcStatus is { } g && i.On.GrpcStatuses.Contains(g) => "grpc-" + GrpcName(g),
        AttemptError.None => i.On.Statuses.Contains(i.Status) ? StatusLabel(i.Status) : null,
        AttemptError.ConnectFailure => i.On.ConnectFailure ? "connect-failure" : null,
        AttemptError.Reset => i.On.Reset ? "reset" : null,
        AttemptError.PerTryTimeout => i.On.Reset || i.On.Statuses.Contains(504) ? "per-try-timeout" : null,
        AttemptError.Timeout or AttemptError.BadResponse or AttemptError.ClientBody => null,
    };

    private static string StatusLabel(int status) => status switch
    {
        502 => "502",
        503 => "503",
        504 => "504",
        500 => "500",
        429 => "429",
        _ => status.ToString(System.Globalization.CultureInfo.InvariantCulture),
    };

    private static string GrpcName(int code)
    {
        foreach (var (name, value) in RetryConditions.GrpcNames)
        {
            if (value == code)
            {
                return name;
            }
        }

        return code.ToString(System.Globalization.CultureInfo.InvariantCulture);
    }
}
