namespace Berth.Mesh.DataPlane;

/// <summary>
/// The .NET runtime settings of the data plane process, which runs nothing but the mesh: set in its environment at
/// launch (a setting the user already gave in a DOTNET_ variable wins) and by bench/mesh, so the benchmark measures
/// the configuration users run.
/// </summary>
public static class DataPlaneRuntime
{
    /// <summary>Socket completions run on the socket engine's threads, not queued to the thread pool (one hop fewer per read and write).</summary>
    public const string InlineCompletionsVariable = "DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS";

    /// <summary>How many times an idle thread-pool worker spins before it sleeps (.NET's default: 70).</summary>
    public const string SpinLimitVariable = "DOTNET_ThreadPool_UnfairSemaphoreSpinLimit";

    /// <summary>
    /// The variables and values, in launch order. Inline socket completions (<see cref="InlineCompletionsVariable"/>=1: the
    /// socket engine's thread that reads an event runs the request until it waits again, no thread-pool hop) are NOT set by
    /// default: they cost less CPU and half the context switches per request, but did not measure better in req/s or p99
    /// (docs/benchmarks.md, "Mesh round 9": through <c>berth up</c> their p99 was worse in 8 of 9 rounds, whichever of the
    /// two apps carried them; round 7's quiet rerun had their p99 at 2.01x nginx's in bench/mesh). With them each of the
    /// engine's threads (one per core) owns a fixed share of the sockets, so a preempted or busy engine thread stalls its
    /// connections, where any thread-pool worker can take any completion. They are safe on the pod path: the Docker-pod
    /// failure that turned them off in round 4 did not come back in round 9 (ComposePodsOnDockerTests runs that test with
    /// them on). A user may set the variable to 1 for <c>berth up</c>; the data plane honours it.
    /// </summary>
    /// <remarks>
    /// Thread-pool workers do not spin before they sleep (<see cref="SpinLimitVariable"/>=0). A worker that runs out of work
    /// spins and yields (<c>sched_yield</c>) up to 70 times first, which pays when work arrives in a steady stream and
    /// costs when each request wakes workers between idle gaps — what the data plane sees whenever it is not saturated:
    /// behind two single-worker nginx replicas (bench/mesh/up.sh's app) a proxied request cost 108-132 µs of CPU and
    /// 37-39 context switches with spinning, 55-57 µs and 4-6 without, in the same rounds (docs/benchmarks.md, "Mesh round 7").
    /// </remarks>
    public static IReadOnlyList<KeyValuePair<string, string>> Environment { get; } =
    [
        new(SpinLimitVariable, "0"),
    ];

    /// <summary>Whether this process runs with inline socket completions (requests then run on the socket engine's threads).</summary>
    public static bool InlineCompletions => System.Environment.GetEnvironmentVariable(InlineCompletionsVariable) == "1";
}
