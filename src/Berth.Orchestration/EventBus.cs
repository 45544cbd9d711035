using System.Threading.Channels;
using Berth.Orchestration.State;

namespace Berth.Orchestration;

/// <summary>Persists events and fans them out to live subscribers (the SSE stream, the foreground CLI). Keeps the newest
/// <c>retention</c> events: once the store holds a tenth more, a background task trims it in short batches, so an
/// emitter (the reconciler) never waits for pruning beyond one batch statement.</summary>
public sealed class EventBus : IAsyncDisposable
{
    private readonly Lock _gate = new();
    private readonly List<Channel<EventRecord>> _subscribers = [];
    private readonly StateStore _store;
    private readonly TimeProvider _time;
    private readonly int _retention;
    private readonly long _slack;
    private readonly CancellationTokenSource _life = new();
    private long _checkAt;
    private Task _pruning = Task.CompletedTask;

    public EventBus(StateStore store, TimeProvider time, int retention = OrchestratorDefaults.EventRetention)
    {
        _store = store;
        _time = time;
        _retention = Math.Max(1, retention);
        _slack = Math.Max(1, _retention / 10);
    }

    private long _lost;

    /// <summary>Events that could not be kept because the store could not be written (a full disk).</summary>
    public long Lost => Interlocked.Read(ref _lost);

    /// <summary>Why the last event could not be kept.</summary>
    public StateStoreException? LastFault { get; private set; }

    /// <summary>Completes when the pruning started so far has finished (for tests and shutdown).</summary>
    public Task Pruning => Volatile.Read(ref _pruning);

    public EventRecord Emit(string type, string? service, string? replica, string message)
    {
        EventRecord e;

        // Persist and publish under one lock so subscribers see events in id order.
        lock (_gate)
        {
            var record = new EventRecord { Time = _time.GetUtcNow(), Type = type, Service = service, Replica = replica, Message = message };
            try
            {
                e = _store.AppendEvent(record);
            }
            catch (StateStoreException fault)
            {
                // Events are best effort, as Kubernetes' are: a full disk must not stop the control plane. Counted and
                // logged; id 0 says it was not kept (nor streamed, so a follower's ids stay gapless and ordered).
                Interlocked.Increment(ref _lost);
                LastFault = fault;
                return record;
            }

            foreach (var s in _subscribers)
            {
                s.Writer.TryWrite(e);
            }

            // Ids only grow, so the newest id bounds the count: check again once a tenth of the limit has been added.
            if (e.Id >= _checkAt && _pruning.IsCompleted && !_life.IsCancellationRequested)
            {
                _checkAt = e.Id + _slack;
                if (e.Id > _retention)
                {
                    _pruning = Task.Run(() => Prune(_life.Token), CancellationToken.None);
                }
            }
        }

        return e;
    }

    /// <summary>Past events after <paramref name="afterId"/>, then live ones until cancelled. No gap and no duplicate between the two.</summary>
    public async IAsyncEnumerable<EventRecord> StreamAsync(long afterId, string? service,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var channel = Channel.CreateBounded<EventRecord>(new BoundedChannelOptions(10_000) { FullMode = BoundedChannelFullMode.DropOldest });
        IReadOnlyList<EventRecord> backlog;
        lock (_gate)
        {
            _subscribers.Add(channel);
            backlog = _store.ListEvents(afterId, int.MaxValue, service);
        }

        try
        {
            var last = afterId;
            foreach (var e in backlog)
            {
                last = e.Id;
                yield return e;
            }

            await foreach (var e in channel.Reader.ReadAllAsync(cancellationToken))
            {
                if (e.Id > last && (service is null || e.Service == service))
                {
                    last = e.Id;
                    yield return e;
                }
            }
        }
        finally
        {
            lock (_gate)
            {
                _subscribers.Remove(channel);
            }
        }
    }

    /// <summary>Stops pruning (the store stays as it is) and waits for a batch in progress.</summary>
    public async ValueTask DisposeAsync()
    {
        Task pruning;
        lock (_gate)
        {
            _life.Cancel();
            pruning = _pruning;
        }

        await pruning.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        _life.Dispose();
    }

    private void Prune(CancellationToken ct)
    {
        // Batch by batch, each its own short statement, so emitters interleave with a large trim.
        try
        {
            while (!ct.IsCancellationRequested && _store.PruneEvents(_retention, OrchestratorDefaults.EventPruneBatch) > 0)
            {
            }
        }
        catch (Exception e) when (e is Microsoft.Data.Sqlite.SqliteException or ObjectDisposedException or InvalidOperationException)
        {
            // A busy or closing store: the next trim (a tenth of the limit later) tries again; events are never lost by it.
        }
    }
}
