using System.Threading.Channels;
using Berth.Orchestration.State;

namespace Berth.Orchestration;

/// <summary>Persists events and fans them out to live subscribers (the SSE stream, the foreground CLI).</summary>
public sealed class EventBus(StateStore store, TimeProvider time)
{
    private readonly Lock _gate = new();
    private readonly List<Channel<EventRecord>> _subscribers = [];

    public EventRecord Emit(string type, string? service, string? replica, string message)
    {
        // Persist and publish under one lock so subscribers see events in id order.
        lock (_gate)
        {
            var e = store.AppendEvent(new EventRecord { Time = time.GetUtcNow(), Type = type, Service = service, Replica = replica, Message = message });
            foreach (var s in _subscribers)
            {
                s.Writer.TryWrite(e);
            }

            return e;
        }
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
            backlog = store.ListEvents(afterId, int.MaxValue, service);
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
}
