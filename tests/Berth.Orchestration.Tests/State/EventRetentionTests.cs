
namespace Berth.Orchestration.Tests.State;

/// <summary>The events table keeps the newest N (a real SQLite file), trimmed in the background in short batches.</summary>
public sealed class EventRetentionTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("berth-events-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static EventRecord Event(int i) => new() { Time = DateTimeOffset.UnixEpoch, Type = "started", Service = "api", Replica = $"api-{i}", Message = $"event {i}" };

    /// <summary>The store with events 1 to <paramref name="count"/> (ids 1 to count).</summary>
    private StateStore StoreWithEvents(int count)
    {
        var store = StateStore.Open(_dir);
        for (var i = 1; i <= count; i++)
        {
            store.AppendEvent(Event(i));
        }

        return store;
    }

    [Fact]
    public void PruneEvents_OverTheLimit_DeletesOldestInBatchesUntilNewestKeptRemain()
    {
        using var store = StoreWithEvents(25);

        Assert.Equal(4, store.PruneEvents(keep: 10, batch: 4));
        Assert.Equal(21, store.CountEvents());
        Assert.Equal(5, store.ListEvents()[0].Id);

        var rounds = 1;
        while (store.PruneEvents(keep: 10, batch: 4) > 0)
        {
            rounds++;
        }

        Assert.Equal(4, rounds); // 4 + 4 + 4 + 3
        Assert.Equal(Enumerable.Range(16, 10).Select(i => (long)i), store.ListEvents().Select(e => e.Id));
        Assert.Equal(0, store.PruneEvents(keep: 10, batch: 4));
    }

    [Fact]
    public void ListNewestEvents_ReplicaAndTypes_NewestOfThatReplicaAndThoseTypesOldestFirst()
    {
        using var store = StateStore.Open(_dir);
        for (var i = 1; i <= 30; i++)
        {
            store.AppendEvent(Event(i % 3) with { Type = i % 2 == 0 ? "ready" : "started", Message = $"event {i}" });
        }

        Assert.Equal(["event 19", "event 22", "event 25", "event 28"], store.ListNewestEvents(4, service: "api", replica: "api-1").Select(e => e.Message));
        Assert.Equal(["event 16", "event 22", "event 28"], store.ListNewestEvents(3, replica: "api-1", types: ["ready"]).Select(e => e.Message));
        Assert.Equal(["event 28", "event 29", "event 30"], store.ListNewestEvents(3, types: ["ready", "started"]).Select(e => e.Message));
        Assert.Empty(store.ListNewestEvents(3, service: "web", replica: "api-1"));
    }

    [Fact]
    public void PruneEvents_UnderTheLimit_DeletesNothing()
    {
        using var store = StoreWithEvents(10);

        Assert.Equal(0, store.PruneEvents(keep: 10, batch: 500));
        Assert.Equal(10, store.CountEvents());
    }

    [Fact]
    public async Task Emit_PastRetention_BackgroundKeepsTheNewestAndIdsKeepGrowing()
    {
        using var store = StateStore.Open(_dir);
        await using var bus = new EventBus(store, TimeProvider.System, retention: 50);
        for (var i = 1; i <= 1_200; i++)
        {
            bus.Emit("started", "api", $"api-{i}", $"event {i}");
        }

        // The last trim may still be running, or due once a tenth more has been added; one more emit past it settles it.
        await bus.Pruning;
        await Poll.UntilAsync(async () =>
        {
            bus.Emit("started", "api", null, "nudge");
            await bus.Pruning;
            return store.CountEvents() <= 55;
        }, TimeSpan.FromSeconds(30), "the events table trimmed to about 50 (the limit plus at most a tenth)");

        var kept = store.ListEvents(0, int.MaxValue);
        Assert.InRange(kept.Count, 50, 55);
        Assert.Equal(kept.Last().Id - kept.Count + 1, kept[0].Id); // the newest, contiguous: only the oldest went
        Assert.True(kept[0].Id > 1_000, $"oldest kept id {kept[0].Id} should be among the newest");
        Assert.Equal(kept.Last().Id + 1, bus.Emit("started", "api", null, "after").Id); // ids are never reused
    }

    [Fact]
    public async Task Emit_StoreAlreadyOverRetention_FirstEventTrimsTheBacklog()
    {
        using (var old = StateStore.Open(_dir))
        {
            for (var i = 1; i <= 300; i++)
            {
                old.AppendEvent(Event(i));
            }
        }

        using var store = StateStore.Open(_dir);
        await using var bus = new EventBus(store, TimeProvider.System, retention: 20);
        bus.Emit("revision", null, null, "revision 2: up");
        await bus.Pruning;

        Assert.Equal(20, store.CountEvents());
        Assert.Equal(301, store.ListEvents(0, int.MaxValue).Last().Id);
    }
}
