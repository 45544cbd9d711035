using System.Collections.Concurrent;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;

namespace Berth.Orchestration.Controllers;

/// <summary>Drives the reconciler: owns the one lock every state change happens under, the coalescing wake-up channel,
/// the periodic resync, <see cref="SettleAsync"/> and the background work (driver and probe calls) launched from a pass.
/// After every locked section it calls <c>publish</c>, so readers see one consistent view per pass or API call.
/// Each locked section is one state-store transaction (<paramref name="batch"/>): what it wrote commits when it ends, and the
/// background work it launched (driver starts and stops, probes) begins only after that commit, so nothing runs unrecorded.</summary>
internal sealed class ReconcileLoop(TimeProvider time, TimeSpan resync, ILogger logger, Action publish, Func<IDisposable>? batch = null) : IAsyncDisposable
{
    private readonly Lock _deferGate = new();
    private List<Func<Task>>? _deferred;
    private readonly SemaphoreSlim _lock = new(1, 1);
    private readonly Channel<bool> _kick = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });
    private readonly CancellationTokenSource _life = new();
    private readonly ConcurrentDictionary<Task, bool> _work = new();
    private TaskCompletionSource _passDone = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Task? _loop;

    /// <summary>Cancelled when the control plane is disposed; background work runs on it.</summary>
    public CancellationToken Life => _life.Token;

    /// <summary>Starts the loop: <paramref name="pass"/> runs under the lock and returns when the next pass is due at the latest.</summary>
    public void Start(Func<CancellationToken, Task<DateTimeOffset>> pass) =>
        _loop = Task.Run(() => RunAsync(pass, _life.Token), CancellationToken.None);

    /// <summary>Publishes the view now, inside a locked section (a new revision is visible before its event goes out).</summary>
    public void Publish() => publish();

    /// <summary>Wakes the loop for a pass now (coalesced: many kicks before a pass make one pass).</summary>
    public void Kick() => _kick.Writer.TryWrite(true);

    /// <summary>Wakes the loop and completes once two whole passes have run since the call (the first may have been under
    /// way already), so a test can assert that nothing happened without sleeping.</summary>
    public async Task SettleAsync(CancellationToken cancellationToken)
    {
        for (var i = 0; i < 2; i++)
        {
            var done = Volatile.Read(ref _passDone).Task;
            Kick();
            await done.WaitAsync(TimeSpan.FromSeconds(30), cancellationToken);
        }
    }

    /// <summary>Runs <paramref name="action"/> under the lock for a caller (an API call); the view is published after it.</summary>
    public async Task<T> LockedAsync<T>(Func<Task<T>> action, CancellationToken cancellationToken)
    {
        await _lock.WaitAsync(cancellationToken);
        var section = Enter();
        try
        {
            return await action();
        }
        finally
        {
            Leave(section);
        }
    }

    public Task<T> LockedAsync<T>(Func<T> action, CancellationToken cancellationToken) => LockedAsync(() => Task.FromResult(action()), cancellationToken);

    public Task LockedAsync(Func<Task> action, CancellationToken cancellationToken) => LockedAsync(async () =>
    {
        await action();
        return true;
    }, cancellationToken);

    public Task LockedAsync(Action action, CancellationToken cancellationToken) => LockedAsync(() =>
    {
        action();
        return true;
    }, cancellationToken);

    /// <summary>Runs a background completion (a start, stop, exit or probe result) under the lock, then publishes and
    /// wakes the loop. Errors are logged: the next resync repairs what a failed completion left.</summary>
    public async Task UnderLockAsync(Func<CancellationToken, Task> action)
    {
        try
        {
            await _lock.WaitAsync(_life.Token);
        }
        catch (OperationCanceledException)
        {
            return;
        }

        var section = Enter();
        try
        {
            await action(_life.Token);
            Kick();
        }
#pragma warning disable CA1031 // background completions must not crash the control plane; the resync repairs
        catch (Exception e) when (e is not OperationCanceledException)
#pragma warning restore CA1031
        {
            Log.ReconcileFailed(logger, e);
        }
        catch (OperationCanceledException e)
        {
            Log.ReconcileFailed(logger, e);
        }
        finally
        {
            try
            {
                Leave(section);
            }
#pragma warning disable CA1031 // a failed commit of a background completion is logged like the completion's own failure
            catch (Exception e)
#pragma warning restore CA1031
            {
                Log.ReconcileFailed(logger, e);
            }
        }
    }

    public Task UnderLockAsync(Action action) => UnderLockAsync(_ =>
    {
        action();
        return Task.CompletedTask;
    });

    /// <summary>Runs driver or probe I/O in the background, outside the lock; disposal waits for it.</summary>
    public void Track(Func<Task> work)
    {
        lock (_deferGate)
        {
            if (_deferred is { } deferred)
            {
                deferred.Add(work);
                return;
            }
        }

        Launch(work);
    }

    /// <summary>Begins a locked section: opens its store transaction and holds back the work it launches.</summary>
    private IDisposable? Enter()
    {
        lock (_deferGate)
        {
            _deferred = [];
        }

        return batch?.Invoke();
    }

    /// <summary>Ends a locked section: commits its transaction, publishes the view, releases the lock, then starts the work it
    /// launched. A failed commit is still thrown (and logged by the caller), after the work starts, as a failed write did before.</summary>
    private void Leave(IDisposable? section)
    {
        List<Func<Task>> launched;
        try
        {
            section?.Dispose();
        }
        finally
        {
            publish();
            lock (_deferGate)
            {
                launched = _deferred ?? [];
                _deferred = null;
            }

            _lock.Release();
            foreach (var work in launched)
            {
                Launch(work);
            }
        }
    }

    private void Launch(Func<Task> work)
    {
        var task = Task.Run(work, CancellationToken.None);
        _work[task] = true;
        task.ContinueWith(t => _work.TryRemove(t, out _), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    /// <summary>Runs a driver call whose failure only needs logging (remove, an orphan's stop).</summary>
    public async Task IgnoreErrors(Func<Task> action, string operation, string replica)
    {
        try
        {
            await action();
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            Log.DriverFailed(logger, operation, replica, e);
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>Waits for the background work launched so far, at most <paramref name="limit"/>.</summary>
    public async Task DrainAsync(TimeSpan limit, CancellationToken cancellationToken)
    {
        try
        {
            await Task.WhenAll(_work.Keys).WaitAsync(limit, cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
        catch (TimeoutException)
        {
        }
    }

    /// <summary>Waits until <paramref name="condition"/>, checked under the lock, holds.</summary>
    public async Task PollAsync(Func<bool> condition, CancellationToken ct)
    {
        while (true)
        {
            await _lock.WaitAsync(ct);
            bool done;
            try
            {
                done = condition();
            }
            finally
            {
                _lock.Release();
            }

            if (done)
            {
                return;
            }

            await Task.Delay(TimeSpan.FromMilliseconds(20), ct); // waiting on driver stops, not timing logic
        }
    }

    /// <summary>Stops the loop and waits for background work; replicas are not touched.</summary>
    public async ValueTask DisposeAsync()
    {
        await _life.CancelAsync();
        if (_loop is not null)
        {
            await _loop.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }

        await Task.WhenAll(_work.Keys).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        _life.Dispose();
    }

    private async Task RunAsync(Func<CancellationToken, Task<DateTimeOffset>> pass, CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            var wake = time.GetUtcNow() + resync;
            try
            {
                await _lock.WaitAsync(ct);
                var section = Enter();
                try
                {
                    wake = await pass(ct);
                }
                finally
                {
                    Leave(section);
                    Interlocked.Exchange(ref _passDone, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
                }
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
#pragma warning disable CA1031 // the loop must outlive one bad pass; the next resync retries
            catch (Exception e)
#pragma warning restore CA1031
            {
                Log.ReconcileFailed(logger, e);
            }

            var delay = wake - time.GetUtcNow();
            if (delay > TimeSpan.Zero)
            {
                using var timer = CancellationTokenSource.CreateLinkedTokenSource(ct);
                var sleep = Task.Delay(delay, time, timer.Token);
                var kicked = _kick.Reader.WaitToReadAsync(timer.Token).AsTask();
                await ((Task)Task.WhenAny(sleep, kicked)).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                await timer.CancelAsync();
                await Task.WhenAll(sleep, kicked).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            }

            _kick.Reader.TryRead(out _);
        }
    }
}
