using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using Berth.Core.Model;
using Berth.Runtime;

namespace Berth.Testing.ControlPlanes;

/// <summary>An in-memory driver for unit tests of the controller logic: "processes" run until a test makes them exit.</summary>
public sealed class FakeDriver(TimeProvider time) : IWorkloadDriver
{
    private readonly ConcurrentDictionary<string, Instance> _instances = new();
    private int _pid = 1000;

    public RuntimeKind Kind { get; init; } = RuntimeKind.Process;

    public DriverCapabilities Capabilities { get; } = new();

    public ConcurrentQueue<string> Calls { get; } = new();

    public ConcurrentQueue<ReplicaSpec> Starts { get; } = new();

    /// <summary>Makes StartAsync throw this message (for a replica whose command cannot run).</summary>
    public string? FailStartsWith { get; set; }

    public int StartCount(string replicaId) => Starts.Count(s => s.ReplicaId == replicaId);

    public bool IsRunning(string replicaId) => _instances.TryGetValue(replicaId, out var i) && !i.Exit.Task.IsCompleted;

    /// <summary>Simulates the replica exiting on its own (crash or kill -9).</summary>
    public void Exit(string replicaId, int? code = 137, int? signal = 9, bool oom = false) =>
        _instances[replicaId].Exit.TrySetResult(new ReplicaStatus
        {
            State = ReplicaState.Exited, ExitCode = code, Signal = signal, OomKilled = oom, FinishedAt = time.GetUtcNow(),
        });

    /// <summary>Called as each start begins (before it may wait at <see cref="StartGate"/>), e.g. to read the store.</summary>
    public Action<ReplicaSpec>? OnStart { get; set; }

    /// <summary>When set, each start waits here (one <c>Release</c> lets one start finish), so a test can hold starts in flight.</summary>
    public SemaphoreSlim? StartGate { get; set; }

    private int _startsInFlight;
    private int _maxStartsInFlight;

    /// <summary>Starts begun and not yet finished.</summary>
    public int StartsInFlight => Volatile.Read(ref _startsInFlight);

    /// <summary>The most starts that were in flight at once.</summary>
    public int MaxStartsInFlight => Volatile.Read(ref _maxStartsInFlight);

    public async Task<ReplicaHandle> StartAsync(ReplicaSpec spec, CancellationToken cancellationToken)
    {
        var inFlight = Interlocked.Increment(ref _startsInFlight);
        for (var max = Volatile.Read(ref _maxStartsInFlight); inFlight > max; max = Volatile.Read(ref _maxStartsInFlight))
        {
            Interlocked.CompareExchange(ref _maxStartsInFlight, inFlight, max);
        }

        try
        {
            OnStart?.Invoke(spec);
            if (StartGate is { } gate)
            {
                await gate.WaitAsync(cancellationToken);
            }

            return Start(spec);
        }
        finally
        {
            Interlocked.Decrement(ref _startsInFlight);
        }
    }

    private ReplicaHandle Start(ReplicaSpec spec)
    {
        Calls.Enqueue($"start {spec.ReplicaId}");
        Starts.Enqueue(spec);
        if (FailStartsWith is { } message)
        {
            throw new InvalidOperationException(message);
        }

        var handle = new ReplicaHandle
        {
            ReplicaId = spec.ReplicaId, App = spec.App, Service = spec.Service, Revision = spec.Revision, Kind = Kind,
            Pid = Interlocked.Increment(ref _pid),
        };
        _instances[spec.ReplicaId] = new Instance(handle);
        return handle;
    }

    public Task<ReplicaStatus> StopAsync(ReplicaHandle replica, TimeSpan gracePeriod, CancellationToken cancellationToken)
    {
        Calls.Enqueue($"stop {replica.ReplicaId}");
        if (_instances.TryGetValue(replica.ReplicaId, out var i))
        {
            i.Exit.TrySetResult(new ReplicaStatus { State = ReplicaState.Exited, ExitCode = 0 });
            return i.Exit.Task;
        }

        return Task.FromResult(new ReplicaStatus { State = ReplicaState.Unknown });
    }

    /// <summary>When set, removals wait for it (or for their cancellation), so a test can hold a retire in flight.</summary>
    public SemaphoreSlim? RemoveGate { get; set; }

    public async Task RemoveAsync(ReplicaHandle replica, CancellationToken cancellationToken)
    {
        Calls.Enqueue($"remove {replica.ReplicaId}");
        if (RemoveGate is { } gate)
        {
            await gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        }

        if (_instances.TryGetValue(replica.ReplicaId, out var i) && i.Exit.Task.IsCompleted)
        {
            _instances.TryRemove(replica.ReplicaId, out _);
        }
    }

    public Task<ReplicaStatus> InspectAsync(ReplicaHandle replica, CancellationToken cancellationToken) =>
        Task.FromResult(_instances.TryGetValue(replica.ReplicaId, out var i)
            ? i.Exit.Task.IsCompleted ? i.Exit.Task.Result : new ReplicaStatus { State = ReplicaState.Running, Pid = i.Handle.Pid }
            : new ReplicaStatus { State = ReplicaState.Unknown, Error = "no such replica" });

    public async Task<ReplicaStatus> WaitForExitAsync(ReplicaHandle replica, CancellationToken cancellationToken) =>
        _instances.TryGetValue(replica.ReplicaId, out var i)
            ? await i.Exit.Task.WaitAsync(cancellationToken)
            : new ReplicaStatus { State = ReplicaState.Unknown, Error = "no such replica" };

    public async IAsyncEnumerable<LogEntry> GetLogsAsync(ReplicaHandle replica, LogOptions options, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await Task.Yield();
        var now = time.GetUtcNow();
        if (options.Since is not { } since || now >= since)
        {
            yield return new LogEntry(now, LogStream.Stdout, $"hello from {replica.ReplicaId}");
        }
    }

    public Task<ExecResult> ExecAsync(ReplicaHandle replica, IReadOnlyList<string> command, string? workingDirectory, CancellationToken cancellationToken)
    {
        Calls.Enqueue($"exec {replica.ReplicaId}: {string.Join(' ', command)}");
        return Task.FromResult(new ExecResult(IsRunning(replica.ReplicaId) ? 0 : 1, ""));
    }

    public Task<ReplicaStats> GetStatsAsync(ReplicaHandle replica, CancellationToken cancellationToken) => Task.FromResult(new ReplicaStats());

    public Task<IReadOnlyList<ReplicaHandle>> ListAsync(string app, CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyList<ReplicaHandle>>([.. _instances.Values.Where(i => i.Handle.App == app).Select(i => i.Handle)]);

    private sealed record Instance(ReplicaHandle Handle)
    {
        public TaskCompletionSource<ReplicaStatus> Exit { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
