using Berth.Core.Probing;

namespace Berth.Rollouts.Tests.Controllers;

/// <summary>Model-based: a service of random size and rolling-update budgets (counts or percentages, either order) is
/// rolled to a new version whose replicas, at random, become Ready, never become Ready, or crash before they are Ready.
/// Throughout, at least replicas − maxUnavailable are routed and at most replicas + maxSurge run; the rollout always ends
/// complete (every new replica was good) or rolled back (one was not), with the service whole again.</summary>
public sealed class RolloutPropertyTests
{
    private enum Fate
    {
        Ready,
        NeverReady,
        Crash,
    }

    private sealed record Case(int Replicas, IntOrPercent Surge, IntOrPercent Unavailable, UpdateOrder Order, Fate[] Fates, int Seed)
    {
        public override string ToString() => $"replicas {Replicas}, maxSurge {Surge}, maxUnavailable {Unavailable}, {Order}, new replicas: {string.Join(",", Fates)}";
    }

    private static readonly Gen<IntOrPercent> Budget = Gen.OneOf(
        Gen.Int[0, 2].Select(IntOrPercent.Count),
        Gen.Int[0, 4].Select(q => IntOrPercent.Percent(q * 25)));

    private static readonly Gen<Case> Cases =
        Gen.Select(Gen.Int[1, 4], Budget, Budget, Gen.Enum<UpdateOrder>(), Gen.Frequency((6, Gen.Const(Fate.Ready)), (1, Gen.Const(Fate.NeverReady)), (1, Gen.Const(Fate.Crash))).Array[8], Gen.Int)
            .Select((replicas, surge, unavailable, order, fates, seed) => new Case(replicas, surge, unavailable, order, fates, seed))
            .Where(c => !(c.Surge.IsZero && c.Unavailable.IsZero)); // rejected at apply, as tested elsewhere

    [Fact]
    public async Task Patch_RandomBudgetsReadinessAndCrashes_KeepsAvailabilityAndSurgeAndEndsCompleteOrRolledBack()
    {
        await Cases.SampleAsync(RunAsync, iter: 40, threads: 1);
    }

    private static async Task RunAsync(Case c)
    {
        var dir = Directory.CreateTempSubdirectory("berth-rollout-prop-").FullName;
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
        var driver = new FakeDriver(time);
        var routes = new RecordingRouteSink(driver.Calls);
        var store = StateStore.Open(dir);
        var prober = new FatedProber();
        var plane = new ControlPlane(new OrchestratorOptions { StateDirectory = dir }, store, [driver], routes, prober, time, new CapturingLogger<ControlPlane>(), random: new Random(c.Seed));
        try
        {
            await plane.StartAsync(CancellationToken.None);
            var update = new UpdateStrategy { MaxSurge = c.Surge, MaxUnavailable = c.Unavailable, Order = c.Order, ProgressDeadline = TimeSpan.FromSeconds(20) };
            var (surge, unavailable) = RollingUpdate.Resolve(update, c.Replicas);
            var service = new Service
            {
                Name = "api", Command = ["api"], Replicas = c.Replicas, Endpoints = [new Endpoint { Name = "http" }],
                Readiness = new Probe { Kind = ProbeKind.Http, Path = "/healthz", Period = TimeSpan.FromSeconds(1) },
                Update = update,
            };
            await plane.ApplyAsync(new Application { Name = "prop", Services = [service] }, "up", CancellationToken.None);
            await TickUntilAsync(plane, time, () => Api(plane).Count(r => r.Phase == ReplicaPhase.Ready) == c.Replicas && routes.Upstreams("api").Count == c.Replicas,
                "the first revision Ready and routed", c, store);
            var first = Api(plane).First().Revision;

            // Every replica of the new template meets its fate, in the order they are first probed; replicas of the first
            // template (the running ones, and those a rollback starts) are good.
            var fates = new ConcurrentDictionary<string, Fate>();
            prober.Decide = port =>
            {
                var replica = Api(plane).FirstOrDefault(r => r.Ports.GetValueOrDefault("http") == port);
                if (replica is null || replica.Revision == first)
                {
                    return true;
                }

                var fate = fates.GetOrAdd(replica.Id, _ => c.Fates[Math.Min(fates.Count, c.Fates.Length - 1)]);
                if (fate == Fate.Crash && driver.IsRunning(replica.Id))
                {
                    driver.Exit(replica.Id, code: 3, signal: null);
                }

                return fate == Fate.Ready;
            };

            var revision = await plane.PatchServiceAsync("api", new ServicePatch { Env = ImmutableSortedDictionary<string, string>.Empty.Add("V", "2") }, CancellationToken.None);
            var routeMark = driver.Calls.Count;
            var state = RolloutState.Progressing;
            await TickUntilAsync(plane, time, () =>
            {
                // Never more than replicas + maxSurge running at once, not counting those already on their way out (as
                // Kubernetes does not count terminating pods).
                var running = Api(plane).Count(r => r.Phase != ReplicaPhase.Terminating && driver.IsRunning(r.Id));
                Assert.True(running <= c.Replicas + surge, $"{running} replicas running, more than {c.Replicas} + maxSurge {surge}; {c}; replicas {string.Join(", ", Api(plane).Select(r => $"{r.Id}:{r.Revision}:{r.Phase}"))}; " +
                    $"driver: {string.Join(" | ", driver.Calls.Where(l => !l.StartsWith("route", StringComparison.Ordinal)).TakeLast(20))}; events: {string.Join(" | ", store.ListEvents().TakeLast(20).Select(e => $"{e.Type} {e.Replica} {e.Message}"))}");
                state = plane.GetRollout("api").State;
                return state is RolloutState.Complete or RolloutState.RolledBack
                    && Api(plane).Count() == c.Replicas && Api(plane).All(r => r.Phase == ReplicaPhase.Ready) && routes.Upstreams("api").Count == c.Replicas;
            }, "the rollout complete or rolled back, the service whole", c, store);

            // Never fewer than replicas − maxUnavailable routed, in any route update of the rollout.
            var sizes = driver.Calls.Skip(routeMark).Where(l => l.StartsWith("route api.http:", StringComparison.Ordinal))
                .Select(l => l["route api.http:".Length..].Trim()).Select(u => u.Length == 0 ? 0 : u.Split(',').Length).ToList();
            Assert.True(sizes.Count == 0 || sizes.Min() >= c.Replicas - unavailable,
                $"routed replicas per update {string.Join(",", sizes)}, fewer than {c.Replicas} − maxUnavailable {unavailable}; {c}");

            // Complete exactly when every new replica it needed was good; otherwise back on the first revision.
            var used = fates.Values.ToList();
            if (state == RolloutState.Complete)
            {
                Assert.True(Api(plane).All(r => r.Revision == revision.TemplateOf("api")), $"complete but not all on the new revision; {c}");
                Assert.True(used.All(f => f == Fate.Ready), $"complete though a new replica was {string.Join(",", used)}; {c}");
            }
            else
            {
                Assert.True(Api(plane).All(r => r.Revision == first), $"rolled back but not all on revision {first}; {c}");
                Assert.True(used.Any(f => f != Fate.Ready), $"rolled back though no new replica was bad (fates used: {string.Join(",", used)}); {c}; " +
                    $"rollout: {plane.GetRollout("api").Message}; events: {string.Join(" | ", store.ListEvents().Select(e => $"{e.Time:HH:mm:ss.f} {e.Type} {e.Replica} {e.Message}"))}");
            }
        }
        finally
        {
            await plane.DisposeAsync();
            store.Dispose();
            Directory.Delete(dir, recursive: true);
        }
    }

    private static IEnumerable<ReplicaRecord> Api(ControlPlane plane) => plane.Replicas.Where(r => r.Service == "api");

    /// <summary>Advances the fake clock half a second at a time, letting the control plane settle after each step, until the
    /// condition holds; bounded by 10 minutes of fake time (the progress deadline is 20 s).</summary>
    private static async Task TickUntilAsync(ControlPlane plane, FakeTimeProvider time, Func<bool> condition, string what, Case c, StateStore store)
    {
        for (var step = 0; step < 1200; step++)
        {
            await plane.SettleAsync(CancellationToken.None);
            if (condition())
            {
                return;
            }

            time.Advance(TimeSpan.FromMilliseconds(500));
        }

        throw new TimeoutException($"not reached in 10 minutes of fake time: {what}; {c}; replicas {string.Join(", ", Api(plane).Select(r => $"{r.Id}:{r.Revision}:{r.Phase}"))}; " +
            $"rollout {plane.GetRollout("api")}; events: {string.Join(" | ", store.ListEvents().TakeLast(15).Select(e => $"{e.Type} {e.Replica} {e.Message}"))}");
    }

    /// <summary>Readiness decided per replica port by the test.</summary>
    private sealed class FatedProber : IProbeExecutor
    {
        public Func<int, bool> Decide { get; set; } = _ => true;

        public Task<ProbeOutcome> RunAsync(Probe probe, ProbeTarget target, CancellationToken cancellationToken)
        {
            var ok = target.Port is not { } port || Decide(port);
            return Task.FromResult(new ProbeOutcome(ok, ok ? "HTTP 200" : "HTTP 500"));
        }
    }
}
