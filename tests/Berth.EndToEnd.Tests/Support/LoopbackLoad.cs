using System.Collections.Concurrent;
using Berth.Testing;

namespace Berth.EndToEnd.Tests.Support;

/// <summary>Two clients sending GETs to one loopback port for as long as a test needs, each at most one request per 5 ms
/// (so the load lasts through slow phases such as a progress deadline), bounded to 100 000 requests and 5 minutes;
/// counts failures (transport errors, timeouts and non-200 answers) and the distinct bodies seen.</summary>
internal sealed class LoopbackLoad : IAsyncDisposable
{
    private const int MaxRequests = 100_000;
    private static readonly TimeSpan Pace = TimeSpan.FromMilliseconds(5);
    private static readonly TimeSpan MaxTime = TimeSpan.FromMinutes(5);
    private readonly CancellationTokenSource _stop = new(MaxTime);
    private readonly HttpClient _http = new(new SocketsHttpHandler { UseProxy = false, PooledConnectionLifetime = TimeSpan.FromSeconds(5) }) { Timeout = TimeSpan.FromSeconds(30) };
    private readonly ConcurrentDictionary<string, int> _bodies = new();
    private readonly ConcurrentQueue<string> _errors = new();
    private readonly Task[] _workers;
    private int _total;

    private LoopbackLoad(int port)
    {
        var url = new Uri($"http://127.0.0.1:{port}/");
        _workers = [.. Enumerable.Range(0, 2).Select(_ => Task.Run(() => RunAsync(url)))];
    }

    public static LoopbackLoad Start(int port) => new(port);

    public int Total => Volatile.Read(ref _total);

    /// <summary>Waits until <paramref name="n"/> more requests than now have been sent.</summary>
    public Task MoreAsync(int n)
    {
        var target = Total + n;
        return Poll.UntilAsync(() => Total >= target || _stop.IsCancellationRequested || _workers.All(w => w.IsCompleted), TimeSpan.FromMinutes(2),
            $"{n} more requests through the load (sent {Total}, {_errors.Count} failed: {string.Join(" | ", _errors.Take(3))})");
    }

    public async Task<Result> StopAsync()
    {
        await _stop.CancelAsync();
        await Task.WhenAll(_workers);
        return new Result(Total, Total >= MaxRequests, _errors.Count, [.. _errors.Take(5)], new SortedDictionary<string, int>(_bodies, StringComparer.Ordinal));
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await Task.WhenAll(_workers).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        _http.Dispose();
        _stop.Dispose();
    }

    private async Task RunAsync(Uri url)
    {
        using var pace = new PeriodicTimer(Pace);
        while (!_stop.IsCancellationRequested && Interlocked.Increment(ref _total) <= MaxRequests)
        {
            await pace.WaitForNextTickAsync(CancellationToken.None);
            try
            {
                using var response = await _http.GetAsync(url, CancellationToken.None);
                var body = await response.Content.ReadAsStringAsync();
                if ((int)response.StatusCode != 200)
                {
                    var why = response.Headers.TryGetValues("x-berth-error", out var values) ? string.Join(",", values) : "";
                    _errors.Enqueue($"HTTP {(int)response.StatusCode} {why} {body}");
                }
                else
                {
                    _bodies.AddOrUpdate(body, 1, (_, n) => n + 1);
                }
            }
            catch (HttpRequestException e)
            {
                _errors.Enqueue(e.Message);
            }
            catch (TaskCanceledException)
            {
                _errors.Enqueue($"no answer within {_http.Timeout.TotalSeconds:0}s");
            }
        }

        Interlocked.Decrement(ref _total);
    }

    /// <summary><paramref name="Capped"/>: the count bound ended the load before the test did, so later phases went unloaded.</summary>
    public sealed record Result(int Total, bool Capped, int Failed, IReadOnlyList<string> FirstErrors, IReadOnlyDictionary<string, int> Bodies)
    {
        public override string ToString() =>
            $"{Failed} of {Total} requests failed{(Failed > 0 ? $" (first: {string.Join(" | ", FirstErrors)})" : "")}; bodies {string.Join(", ", Bodies.Select(b => $"'{b.Key}'×{b.Value}"))}";
    }
}
