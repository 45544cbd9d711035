
namespace Berth.Kubernetes.Tests.Apply;

public sealed class RolloutTests
{
    private static V1Deployment Deployment(int replicas, int updated, int total, int available, long generation = 1, long observed = 1) => new()
    {
        Metadata = new V1ObjectMeta { Name = "api", Generation = generation },
        Spec = new V1DeploymentSpec { Replicas = replicas, Selector = new V1LabelSelector(), Template = new V1PodTemplateSpec() },
        Status = new V1DeploymentStatus { ObservedGeneration = observed, Replicas = total, UpdatedReplicas = updated, AvailableReplicas = available },
    };

    [Fact]
    public void Evaluate_AllUpdatedAndAvailable_IsComplete()
    {
        var state = WorkloadRollout.Evaluate(Deployment(3, 3, 3, 3));

        Assert.True(state.Done);
        Assert.Equal("3 of 3 replicas updated and available", state.Message);
    }

    [Fact]
    public void Evaluate_ScaledToZero_IsComplete()
    {
        Assert.True(WorkloadRollout.Evaluate(Deployment(0, 0, 0, 0)).Done);
    }

    [Fact]
    public void Evaluate_StatefulSetOnOldRevision_IsProgressing()
    {
        var set = new V1StatefulSet
        {
            Metadata = new V1ObjectMeta { Generation = 2 },
            Spec = new V1StatefulSetSpec { Replicas = 3 },
            Status = new V1StatefulSetStatus { ObservedGeneration = 2, ReadyReplicas = 3, UpdatedReplicas = 1, CurrentRevision = "a", UpdateRevision = "b" },
        };

        var state = WorkloadRollout.Evaluate(set);

        Assert.False(state.Done);
        Assert.Equal("1 of 3 replicas on revision b", state.Message);
    }

    [Fact]
    public void PodProblems_UnschedulablePod_IsReportedButNotFatal()
    {
        var pod = new V1Pod
        {
            Metadata = new V1ObjectMeta { Name = "api-1" },
            Status = new V1PodStatus { Conditions = [new V1PodCondition { Type = "PodScheduled", Status = "False", Reason = "Unschedulable", Message = "0/3 nodes are available: 3 Insufficient cpu." }] },
        };

        var (reasons, fatal) = WorkloadRollout.PodProblems([pod]);

        Assert.False(fatal);
        Assert.Equal(["pod api-1: Unschedulable: 0/3 nodes are available: 3 Insufficient cpu."], reasons);
    }

    [Fact]
    public void PodProblems_ContainerCreating_IsNoProblem()
    {
        var pod = new V1Pod
        {
            Metadata = new V1ObjectMeta { Name = "api-1" },
            Status = new V1PodStatus { ContainerStatuses = [new V1ContainerStatus { Name = "api", State = new V1ContainerState { Waiting = new V1ContainerStateWaiting { Reason = "ContainerCreating" } } }] },
        };

        Assert.Empty(WorkloadRollout.PodProblems([pod]).Reasons);
    }

    [Fact]
    public async Task WaitForRolloutAsync_NeverAvailable_FailsAtTheDeadlineOnTheInjectedClock()
    {
        var time = new CountingTimeProvider();
        var api = new StuckApi();
        var set = ManifestGenerator.Generate(new Application
        {
            Name = "demo",
            Services = [new Service { Name = "api", Image = "i", Replicas = 2, Update = new UpdateStrategy { ProgressDeadline = TimeSpan.FromSeconds(30) } }],
        });
        var applier = new ClusterApplier(api, time);

        var wait = applier.WaitForRolloutAsync(set.Find("Deployment", "api")!, "default", new ApplyOptions(), null, CancellationToken.None);
        for (var i = 0; i < 100 && !wait.IsCompleted; i++)
        {
            // Advance only once the wait has armed its next timer, so no advance is lost to a race.
            await Poll.UntilAsync(() => time.TimersCreated > i || wait.IsCompleted, TimeSpan.FromSeconds(30), $"poll timer #{i + 1}");
            time.Advance(ApplyDefaults.PollInterval);
        }

        var outcome = await wait;
        Assert.False(outcome.Succeeded);
        Assert.Equal("rollout did not finish within 30s: pod api-1: Unschedulable: no nodes", outcome.Message);
        Assert.Equal(16, api.Reads); // at 0, 2, 4, … 30s: the deadline comes from the Deployment's progressDeadlineSeconds
    }

    private sealed class CountingTimeProvider : FakeTimeProvider
    {
        private int _timers;

        public int TimersCreated => Volatile.Read(ref _timers);

        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
        {
            var timer = base.CreateTimer(callback, state, dueTime, period);
            Interlocked.Increment(ref _timers);
            return timer;
        }
    }

    private sealed class StuckApi : IKubernetesApi
    {
        private int _reads;

        public int Reads => Volatile.Read(ref _reads);

        public string Host => "fake";

        public Task<string> ApplyAsync(ManifestObject obj, string ns, bool dryRun, bool force, CancellationToken cancellationToken) => Task.FromResult(obj.ToJson());

        public Task<string?> ReadAsync(string kind, string apiVersion, string name, string ns, CancellationToken cancellationToken) => throw new NotSupportedException();

        public Task<bool?> NamespaceExistsAsync(string ns, CancellationToken cancellationToken) => Task.FromResult<bool?>(true);

        public Task<bool> DeleteAsync(ManifestObject obj, string ns, bool dryRun, CancellationToken cancellationToken) => Task.FromResult(true);

        public Task<V1Deployment> ReadDeploymentStatusAsync(string name, string ns, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _reads);
            return Task.FromResult(Deployment(2, 2, 2, 0));
        }

        public Task<V1StatefulSet> ReadStatefulSetStatusAsync(string name, string ns, CancellationToken cancellationToken) => throw new NotSupportedException();

        public Task<V1Job> ReadJobStatusAsync(string name, string ns, CancellationToken cancellationToken) => throw new NotSupportedException();

        public Task<IReadOnlyList<string>> ListNamesAsync(string kind, string apiVersion, string ns, string labelSelector, CancellationToken cancellationToken) => throw new NotSupportedException();

        public Task<IReadOnlyList<V1Pod>> ListPodsAsync(string ns, string labelSelector, CancellationToken cancellationToken) =>
            Task.FromResult<IReadOnlyList<V1Pod>>(
            [
                new V1Pod
                {
                    Metadata = new V1ObjectMeta { Name = "api-1" },
                    Status = new V1PodStatus { Conditions = [new V1PodCondition { Type = "PodScheduled", Status = "False", Reason = "Unschedulable", Message = "no nodes" }] },
                },
            ]);
    }
}
