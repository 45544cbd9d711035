using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Threading.Tasks.Sources;

namespace Berth.Mesh.Http;

/// <summary>
/// An async method builder for the few methods of the proxied-request path that wait for the upstream on every request.
/// Like the framework's <see cref="PoolingAsyncValueTaskMethodBuilder{TResult}"/> it keeps the boxes that hold a suspended
/// state machine for reuse, but in a pool sized for tens of requests in flight (the framework keeps one per thread and
/// one per core, so with 64 connections most requests allocated a fresh box per method: 80% of the data plane's
/// allocations). A method that completes without suspending allocates nothing; the execution context is captured at each
/// suspension and restored for the continuation, as the framework's builders do.
/// </summary>
internal struct PooledValueTaskBuilder<TResult>
{
    private PooledBox<TResult>? _box;
    private TResult _result;
    private Exception? _exception;

    public static PooledValueTaskBuilder<TResult> Create() => default;

    internal readonly PooledBox<TResult>? Box => _box;

    internal readonly Exception? Exception => _exception;

    public readonly ValueTask<TResult> Task => _box is { } box
        ? new ValueTask<TResult>(box, box.Version)
        : _exception is { } e ? ValueTask.FromException<TResult>(e) : new ValueTask<TResult>(_result);

    public void Start<TStateMachine>(ref TStateMachine stateMachine)
        where TStateMachine : IAsyncStateMachine =>
        // The framework's Start: runs the synchronous part and restores the caller's execution and synchronization contexts.
        default(AsyncValueTaskMethodBuilder<TResult>).Start(ref stateMachine);

    public readonly void SetStateMachine(IAsyncStateMachine stateMachine)
    {
    }

    public void SetResult(TResult result)
    {
        if (_box is { } box)
        {
            box.SetResult(result);
        }
        else
        {
            _result = result;
        }
    }

    public void SetException(Exception exception)
    {
        if (_box is { } box)
        {
            box.SetException(exception);
        }
        else
        {
            _exception = exception;
        }
    }

    public void AwaitOnCompleted<TAwaiter, TStateMachine>(ref TAwaiter awaiter, ref TStateMachine stateMachine)
        where TAwaiter : INotifyCompletion
        where TStateMachine : IAsyncStateMachine =>
        awaiter.OnCompleted(BoxFor(ref stateMachine).MoveNextAction);

    public void AwaitUnsafeOnCompleted<TAwaiter, TStateMachine>(ref TAwaiter awaiter, ref TStateMachine stateMachine)
        where TAwaiter : ICriticalNotifyCompletion
        where TStateMachine : IAsyncStateMachine =>
        awaiter.UnsafeOnCompleted(BoxFor(ref stateMachine).MoveNextAction);

    private PooledBox<TResult, TStateMachine> BoxFor<TStateMachine>(ref TStateMachine stateMachine)
        where TStateMachine : IAsyncStateMachine
    {
        if (_box is PooledBox<TResult, TStateMachine> existing)
        {
            // Suspended before: the box already holds the state machine (MoveNext runs on the box's copy).
            existing.Context = ExecutionContext.Capture();
            return existing;
        }

        // First suspension: the box must be set in this builder before the state machine (which holds it) is copied in.
        var box = PooledBox<TResult, TStateMachine>.Rent();
        _box = box;
        box.StateMachine = stateMachine;
        box.Context = ExecutionContext.Capture();
        return box;
    }
}

/// <summary>The <see cref="PooledValueTaskBuilder{TResult}"/> of a method returning <see cref="ValueTask"/>.</summary>
internal struct PooledValueTaskBuilder
{
    private PooledValueTaskBuilder<bool> _inner;

    public static PooledValueTaskBuilder Create() => default;

    public readonly ValueTask Task => _inner.Box is { } box
        ? new ValueTask(box, box.Version)
        : _inner.Exception is { } e ? ValueTask.FromException(e) : default;

    public void Start<TStateMachine>(ref TStateMachine stateMachine)
        where TStateMachine : IAsyncStateMachine => _inner.Start(ref stateMachine);

    public readonly void SetStateMachine(IAsyncStateMachine stateMachine)
    {
    }

    public void SetResult() => _inner.SetResult(true);

    public void SetException(Exception exception) => _inner.SetException(exception);

    public void AwaitOnCompleted<TAwaiter, TStateMachine>(ref TAwaiter awaiter, ref TStateMachine stateMachine)
        where TAwaiter : INotifyCompletion
        where TStateMachine : IAsyncStateMachine => _inner.AwaitOnCompleted(ref awaiter, ref stateMachine);

    public void AwaitUnsafeOnCompleted<TAwaiter, TStateMachine>(ref TAwaiter awaiter, ref TStateMachine stateMachine)
        where TAwaiter : ICriticalNotifyCompletion
        where TStateMachine : IAsyncStateMachine => _inner.AwaitUnsafeOnCompleted(ref awaiter, ref stateMachine);
}

/// <summary>A suspended async method's state and its completion, awaited once through a <see cref="ValueTask{TResult}"/>.</summary>
internal abstract class PooledBox<TResult> : IValueTaskSource<TResult>, IValueTaskSource
{
    private ManualResetValueTaskSourceCore<TResult> _core;

    public short Version => _core.Version;

    public void SetResult(TResult result) => _core.SetResult(result);

    public void SetException(Exception exception) => _core.SetException(exception);

    public TResult GetResult(short token)
    {
        try
        {
            return _core.GetResult(token);
        }
        finally
        {
            // The awaiter has what it needs: the box goes back for the next call (a ValueTask is awaited once).
            _core.Reset();
            Return();
        }
    }

    void IValueTaskSource.GetResult(short token) => GetResult(token);

    public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

    public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);

    protected abstract void Return();
}

/// <summary>The box of one async method (one state machine type), pooled per type.</summary>
internal sealed class PooledBox<TResult, TStateMachine> : PooledBox<TResult>
    where TStateMachine : IAsyncStateMachine
{
    /// <summary>Boxes kept per method: 512, more than the requests a listener has in flight on this machine class.</summary>
    private const int MaxPooled = 512;

    private static readonly ConcurrentQueue<PooledBox<TResult, TStateMachine>> Pool = new();
    private static int _pooled;

    private static readonly ContextCallback RunInContext = static state => ((PooledBox<TResult, TStateMachine>)state!).StateMachine.MoveNext();

    public TStateMachine StateMachine = default!;

    public ExecutionContext? Context;

    private PooledBox()
    {
        MoveNextAction = MoveNext;
    }

    public Action MoveNextAction { get; }

    public static PooledBox<TResult, TStateMachine> Rent()
    {
        if (Pool.TryDequeue(out var box))
        {
            Interlocked.Decrement(ref _pooled);
            return box;
        }

        return new PooledBox<TResult, TStateMachine>();
    }

    protected override void Return()
    {
        StateMachine = default!;
        Context = null;
        if (Interlocked.Increment(ref _pooled) <= MaxPooled)
        {
            Pool.Enqueue(this);
        }
        else
        {
            Interlocked.Decrement(ref _pooled);
        }
    }

    private void MoveNext()
    {
        if (Context is { } context)
        {
            ExecutionContext.Run(context, RunInContext, this);
        }
        else
        {
            StateMachine.MoveNext();
        }
    }
}
