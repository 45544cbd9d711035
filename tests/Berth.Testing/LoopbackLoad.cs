using System.Collections.Concurrent;
using System.Diagnostics;

namespace Berth.Testing;

/// <summary>Bounds and pace of a <see cref="LoopbackLoad"/>. Every load loop is bounded in count and time (network rule).</summary>
public sealed record LoopbackLoadOptions
{
    /// <summary>Concurrent clients, each one request at a time.</summary>
    public int Clients { get; init; } = 2;

    /// <summary>Each client sends at most one request per this interval; zero sends as fast as answers come.</summary>
    public TimeSpan Pace { get; init; } = TimeSpan.FromMilliseconds(5);

    /// <summary>The count cap: no more requests than this in all.</summary>
    public int MaxRequests { get; init; } = 100_000;

    /// <summary>The time cap: the load stops on its own after this.</summary>
    public TimeSpan MaxTime { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>How long one request may take before it counts as failed.</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>A new connection for every request (no keep-alive reuse), so every request also tests that the port accepts;
    /// by default a connection is reused for up to 5 s.</summary>
    public bool FreshConnections { get; init; }
}

/// <summary>The one loopback load generator: clients sending GETs to one loopback URL for as long as a test needs, bounded in
/// count and time; it counts failures (transport errors, timeouts and non-200 answers) and the bodies seen, and reports
/// whether a cap, rather than the test, ended it — a "zero failed" over a load that stopped early proves nothing.</summary>
public sealed class LoopbackLoad : IAsyncDisposable
{
    private readonly LoopbackLoadOptions _options;
    private readonly CancellationTokenSource _stop = new();
    private readonly CancellationTokenSource _timeCap;
    private readonly HttpClient _http;
    private readonly ConcurrentDictionary<string, int> _bodies = new();
    private readonly ConcurrentQueue<string> _errors = new();
    private readonly Task[] _workers;
    private int _total;
    private int _failed;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private long _firstFailure = -1;
    private long _lastFailure = -1;

    private LoopbackLoad(Uri url, LoopbackLoadOptions options)
    {
        if (!System.Net.IPAddress.TryParse(url.Host.Trim('[', ']'), out var address) || !System.Net.IPAddress.IsLoopback(address))
        {
            throw new ArgumentException($"load goes to loopback addresses only (127.0.0.0/8, ::1), not {url.Host}", nameof(url));
        }

        _options = options;
        _timeCap = new CancellationTokenSource(options.MaxTime);
        _http = new HttpClient(new SocketsHttpHandler { UseProxy = false, PooledConnectionLifetime = options.FreshConnections ? TimeSpan.Zero : TimeSpan.FromSeconds(5) }) { Timeout = options.RequestTimeout };
        _workers = [.. Enumerable.Range(0, options.Clients).Select(_ => Task.Run(() => RunAsync(url)))];
    }

    /// <summary>Starts load on http://127.0.0.1:<paramref name="port"/>/.</summary>
    public static LoopbackLoad Start(int port, LoopbackLoadOptions? options = null) => Start(new Uri($"http://127.0.0.1:{port}/"), options);

    public static LoopbackLoad Start(Uri url, LoopbackLoadOptions? options = null) => new(url, options ?? new LoopbackLoadOptions());

    /// <summary>Requests sent so far.</summary>
    public int Total => Math.Min(Volatile.Read(ref _total), _options.MaxRequests);

    /// <summary>True once a cap (count or time), not the test, has ended the load.</summary>
    public bool Capped => Volatile.Read(ref _total) >= _options.MaxRequests || _timeCap.IsCancellationRequested;

    /// <summary>Whether some request so far was answered 200 with exactly <paramref name="body"/>.</summary>
    public bool Answered(string body) => _bodies.ContainsKey(body);

    /// <summary>Waits until <paramref name="n"/> more requests than now have been sent; fails if a cap ends the load first.</summary>
    public async Task MoreAsync(int n, TimeSpan? timeout = null)
    {
        var target = Total + n;
        await Poll.UntilAsync(() => Total >= target || Capped, timeout ?? TimeSpan.FromMinutes(2),
            $"{n} more requests through the load (sent {Total}, {Volatile.Read(ref _failed)} failed: {string.Join(" | ", _errors.Take(3))})");
        Assert.False(Total < target, $"the load hit its cap ({_options.MaxRequests} requests or {_options.MaxTime}) after {Total} requests, before {n} more were sent");
    }

    /// <summary>Stops the load and reports it.</summary>
    public async Task<LoopbackLoadResult> StopAsync()
    {
        var capped = Capped;
        await _stop.CancelAsync();
        await Task.WhenAll(_workers);
        var first = Interlocked.Read(ref _firstFailure);
        return new LoopbackLoadResult(Total, capped, Volatile.Read(ref _failed), [.. _errors.Take(5)], new SortedDictionary<string, int>(_bodies, StringComparer.Ordinal))
        {
            FailingFor = first < 0 ? null : TimeSpan.FromTicks(Interlocked.Read(ref _lastFailure) - first),
        };
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await Task.WhenAll(_workers).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        _http.Dispose();
        _stop.Dispose();
        _timeCap.Dispose();
    }

    private async Task RunAsync(Uri url)
    {
        using var pace = _options.Pace > TimeSpan.Zero ? new PeriodicTimer(_options.Pace) : null;
        while (!_stop.IsCancellationRequested && !_timeCap.IsCancellationRequested && Interlocked.Increment(ref _total) <= _options.MaxRequests)
        {
            if (pace is not null)
            {
                await pace.WaitForNextTickAsync(CancellationToken.None);
            }

            try
            {
                using var response = await _http.GetAsync(url, CancellationToken.None);
                var body = await response.Content.ReadAsStringAsync();
                if ((int)response.StatusCode != 200)
                {
                    var why = response.Headers.TryGetValues("x-berth-error", out var values) ? string.Join(",", values) : "";
                    Fail($"HTTP {(int)response.StatusCode} {why} {body}");
                }
                else
                {
                    _bodies.AddOrUpdate(body, 1, (_, n) => n + 1);
                }
            }
            catch (HttpRequestException e)
            {
                Fail(e.Message);
            }
            catch (System.Net.Sockets.SocketException e)
            {
                // SocketsHttpHandler lets this one through unwrapped when a connection is accepted and closed at once (reading
                // the remote end point of a socket the listener just dropped): a failed request like any other.
                Fail(e.Message);
            }
            catch (TaskCanceledException)
            {
                Fail($"no answer within {_http.Timeout.TotalSeconds:0}s");
            }
        }
    }

    private void Fail(string why)
    {
        var now = _clock.Elapsed.Ticks;
        Interlocked.CompareExchange(ref _firstFailure, now, -1);
        Interlocked.Exchange(ref _lastFailure, now);
        Interlocked.Increment(ref _failed);
        if (_errors.Count < 100)
        {
            _errors.Enqueue(why);
        }
    }
}

/// <summary>What a load did. <paramref name="Capped"/>: a cap ended the load before the test stopped it, so whatever came
/// after went unloaded — assert it is false before trusting "zero failed".</summary>
public sealed record LoopbackLoadResult(int Total, bool Capped, int Failed, IReadOnlyList<string> FirstErrors, IReadOnlyDictionary<string, int> Bodies)
{
    /// <summary>From the first failed request to the last (null: none failed): the gap the load saw.</summary>
    public TimeSpan? FailingFor { get; init; }

    public override string ToString() =>
        $"{Failed} of {Total} requests failed{(Failed > 0 ? $" (first: {string.Join(" | ", FirstErrors)})" : "")}{(Capped ? "; the load hit its cap before the test stopped it" : "")}; " +
        $"bodies {string.Join(", ", Bodies.Select(b => $"'{b.Key}'×{b.Value}"))}";

    /// <summary>Asserts the load ran until the test stopped it and no request failed.</summary>
    public void AssertNoneFailedUncapped()
    {
        Assert.False(Capped, $"the load hit its cap, so part of the test ran without load: {this}");
        Assert.True(Failed == 0, ToString());
    }
}
