using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Http;

namespace Berth.Server.Dashboard;

/// <summary>Browser sign-in, as Aspire's and Jupyter's: <c>berth up</c> prints a link with a one-time code; opening it trades
/// the code for a session cookie (HttpOnly, SameSite=Strict) and lands on the dashboard. Every state-changing request must
/// also carry the session's CSRF token in <see cref="CsrfHeader"/> and come from the dashboard's own origin.</summary>
public sealed class DashboardAuth
{
    public const string CookieName = "berth_session";

    public const string CsrfHeader = "X-Berth-CSRF";

    /// <summary>How long a printed code stays valid: 15 minutes (Jupyter's tokens never expire; a one-time code that
    /// does keeps a link left in a terminal's scrollback from opening a session later).</summary>
    public static readonly TimeSpan CodeLifetime = TimeSpan.FromMinutes(15);

    /// <summary>How long a session lasts without use: 12 hours (a working day; Aspire's cookie lasts the browser session).</summary>
    public static readonly TimeSpan SessionIdleTimeout = TimeSpan.FromHours(12);

    private readonly ConcurrentDictionary<string, DateTimeOffset> _codes = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Session> _sessions = new(StringComparer.Ordinal);
    private readonly TimeProvider _time;

    public DashboardAuth(TimeProvider? time = null)
    {
        _time = time ?? TimeProvider.System;
    }

    /// <summary>A fresh one-time login code.</summary>
    public string CreateCode()
    {
        var code = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
        var now = _time.GetUtcNow();
        foreach (var (c, expires) in _codes)
        {
            if (expires < now)
            {
                _codes.TryRemove(c, out _);
            }
        }

        _codes[code] = now + CodeLifetime;
        return code;
    }

    /// <summary>Spends a code: a new session, or null when the code is unknown, used or expired.</summary>
    public Session? Redeem(string? code)
    {
        if (code is null || !_codes.TryRemove(code, out var expires) || expires < _time.GetUtcNow())
        {
            return null;
        }

        var session = new Session(Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32)), Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32)))
        {
            LastSeen = _time.GetUtcNow(),
        };
        _sessions[session.Id] = session;
        return session;
    }

    /// <summary>The request's session from its cookie, or null.</summary>
    public Session? Find(HttpContext context)
    {
        if (!context.Request.Cookies.TryGetValue(CookieName, out var id) || id is null || !_sessions.TryGetValue(id, out var session))
        {
            return null;
        }

        var now = _time.GetUtcNow();
        if (now - session.LastSeen > SessionIdleTimeout)
        {
            _sessions.TryRemove(id, out _);
            return null;
        }

        session.LastSeen = now;
        return session;
    }

    /// <summary>Whether a state-changing request is the dashboard's own: same origin (Origin, else Sec-Fetch-Site) and the
    /// session's CSRF token in <see cref="CsrfHeader"/>. A form posted from another site carries neither.</summary>
    public static bool IsSameOriginWithToken(HttpContext context, Session session, out string problem)
    {
        problem = "";
        var origin = context.Request.Headers.Origin.FirstOrDefault();
        var expected = $"{context.Request.Scheme}://{context.Request.Host}";
        if (origin is not null && !string.Equals(origin, expected, StringComparison.OrdinalIgnoreCase))
        {
            problem = $"cross-site request refused: Origin {origin} is not the dashboard's ({expected})";
            return false;
        }

        if (context.Request.Headers["Sec-Fetch-Site"].FirstOrDefault() is { } site && site is not ("same-origin" or "none"))
        {
            problem = $"cross-site request refused (Sec-Fetch-Site: {site})";
            return false;
        }

        var token = context.Request.Headers[CsrfHeader].FirstOrDefault();
        if (token is null || !CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(token), Encoding.UTF8.GetBytes(session.CsrfToken)))
        {
            problem = $"missing or wrong {CsrfHeader} header: actions must come from the dashboard page";
            return false;
        }

        return true;
    }

    /// <summary>A signed-in browser.</summary>
    public sealed record Session(string Id, string CsrfToken)
    {
        public DateTimeOffset LastSeen { get; set; }
    }
}
