using System.Runtime.CompilerServices;
using Berth.Mesh.Http;

namespace Berth.Mesh.Tests.Http;

public sealed class PooledValueTaskBuilderTests
{
    private static readonly AsyncLocal<string?> Flowed = new();

    [Fact]
    public async Task Await_CompletesWithoutSuspending_ReturnsResultAndThrowsException()
    {
        Assert.Equal(42, await Immediate(42));
        var e = await Assert.ThrowsAsync<InvalidOperationException>(async () => await ImmediateFailure());
        Assert.Equal("sync failure", e.Message);
        await ImmediateVoid();
    }

    [Fact]
    public async Task Await_SuspendedManyTimesConcurrently_EveryCallGetsItsOwnResult()
    {
        // 64 calls in flight at once, each suspending three times on a gate released from another thread, 20 rounds:
        // boxes are reused across rounds, and a box handed to two calls would mix their results.
        for (var round = 0; round < 20; round++)
        {
            var gates = Enumerable.Range(0, 64).Select(_ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).ToArray();
            var calls = Enumerable.Range(0, 64).Select(i => Suspending(i + (round * 1000), gates[i].Task).AsTask()).ToArray();
            var release = Task.Run(() =>
            {
                foreach (var gate in gates.Reverse())
                {
                    gate.SetResult();
                }
            });
            var results = await Task.WhenAll(calls);
            await release;
            Assert.Equal(Enumerable.Range(0, 64).Select(i => (i + (round * 1000)) * 3), results);
        }
    }

    [Fact]
    public async Task Await_SuspendedThenFails_ThrowsTheMethodsException()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var call = SuspendingFailure(gate.Task);
        Assert.False(call.IsCompleted);
        gate.SetResult();
        var e = await Assert.ThrowsAsync<InvalidOperationException>(async () => await call);
        Assert.Equal("failed after resuming", e.Message);

        var voidGate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var voidCall = SuspendingVoid(voidGate.Task, fail: true);
        voidGate.SetResult();
        await Assert.ThrowsAsync<TimeoutException>(async () => await voidCall);
    }

    [Fact]
    public async Task Await_Suspended_FlowsAsyncLocalsIntoTheContinuationAndNotBackOut()
    {
        Flowed.Value = "caller";
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var call = ReadsAndSetsAsyncLocal(gate.Task);
        _ = Task.Run(gate.SetResult);
        Assert.Equal("caller", await call);
        Assert.Equal("caller", Flowed.Value);
    }

    [AsyncMethodBuilder(typeof(PooledValueTaskBuilder<>))]
    private static async ValueTask<int> Immediate(int value)
    {
        await Task.CompletedTask;
        return value;
    }

    [AsyncMethodBuilder(typeof(PooledValueTaskBuilder<>))]
    private static async ValueTask<int> ImmediateFailure()
    {
        await Task.CompletedTask;
        throw new InvalidOperationException("sync failure");
    }

    [AsyncMethodBuilder(typeof(PooledValueTaskBuilder))]
    private static async ValueTask ImmediateVoid() => await Task.CompletedTask;

    [AsyncMethodBuilder(typeof(PooledValueTaskBuilder<>))]
    private static async ValueTask<int> Suspending(int value, Task gate)
    {
        var sum = 0;
        for (var i = 0; i < 3; i++)
        {
            await gate;
            await Task.Yield();
            sum += value;
        }

        return sum;
    }

    [AsyncMethodBuilder(typeof(PooledValueTaskBuilder<>))]
    private static async ValueTask<int> SuspendingFailure(Task gate)
    {
        await gate;
        throw new InvalidOperationException("failed after resuming");
    }

    [AsyncMethodBuilder(typeof(PooledValueTaskBuilder))]
    private static async ValueTask SuspendingVoid(Task gate, bool fail)
    {
        await gate;
        if (fail)
        {
            throw new TimeoutException();
        }
    }

    [AsyncMethodBuilder(typeof(PooledValueTaskBuilder<>))]
    private static async ValueTask<string?> ReadsAndSetsAsyncLocal(Task gate)
    {
        await gate;
        var seen = Flowed.Value;
        Flowed.Value = "callee";
        await Task.Yield();
        return seen;
    }
}
