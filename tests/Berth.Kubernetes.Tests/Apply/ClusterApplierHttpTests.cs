
namespace Berth.Kubernetes.Tests.Apply;

/// <summary>Apply and delete through the official client, over real HTTP, against <see cref="FakeApiServer"/>;
/// the kubeconfig is found through KUBECONFIG, as on a developer's machine.</summary>
[Collection(KubeconfigCollection.Name)]
public sealed class ClusterApplierHttpTests : FakeClusterTests
{

    private static readonly ApplyOptions Fast = new() { PollInterval = TimeSpan.FromMilliseconds(20), Timeout = TimeSpan.FromMinutes(2) };

    private static Application OneService(string name = "api", int replicas = 2) => new()
    {
        Name = "demo",
        Services = [new Service { Name = name, Image = "example/api:1", Replicas = replicas, Endpoints = [new Endpoint { Port = 8080 }] }],
    };

    private void AllRolledOut(ManifestSet set)
    {
        foreach (var o in set.Objects.Where(o => o.Kind == "Deployment"))
        {
            Server.ScriptStatus("deployments", o.Name, FakeApiServer.DeploymentStatus(2, 2, 2, 2));
        }

        foreach (var o in set.Objects.Where(o => o.Kind == "StatefulSet"))
        {
            Server.ScriptStatus("statefulsets", o.Name, FakeApiServer.StatefulSetStatus(3, 3));
        }
    }

    // A one-shot "setup" job that "app" waits for, with app's deployment already rolled out: only the job's status decides.
    private ManifestSet SetupJobThenApp()
    {
        var set = ManifestGenerator.Generate(new Application
        {
            Name = "demo",
            Services =
            [
                new Service { Name = "setup", Image = "example/setup:1" },
                new Service { Name = "app", Image = "example/app:1", DependsOn = [new Dependency("setup", DependencyCondition.Completed)] },
            ],
        });
        Server.ScriptStatus("deployments", "app", FakeApiServer.DeploymentStatus(1, 1, 1, 1));
        return set;
    }

    private static async Task<(ApplyResult Result, List<string> Progress)> Apply(ManifestSet set, ApplyOptions options, string? context = null, string? ns = null)
    {
        using var connection = KubeConnection.Open(context);
        var progress = new List<string>();
        var result = await new ClusterApplier(connection).ApplyAsync(set, ns ?? connection.DefaultNamespace, options, new SyncProgress(progress), CancellationToken.None);
        return (result, progress);
    }

    [Fact]
    public async Task ApplyAsync_ShopApp_ServerSideAppliesEveryObjectWithFieldManagerBerth()
    {
        var set = ManifestGenerator.Generate(SampleApps.Shop(), new GenerateOptions { Mesh = MeshTarget.Istio });
        AllRolledOut(set);

        var (result, _) = await Apply(set, Fast);

        Assert.True(result.Succeeded, string.Join("\n", result.Objects.Concat(result.Rollouts).Where(o => !o.Succeeded).Select(o => $"{o.Object}: {o.Message}")));
        var patches = Server.Requests.Where(r => r.Method == "PATCH").ToList();
        Assert.Equal(set.Objects.Length, patches.Count);
        foreach (var (obj, request) in set.Objects.Zip(patches))
        {
            var plural = obj.Kind.ToLowerInvariant() switch
            {
                "horizontalpodautoscaler" => "horizontalpodautoscalers",
                "ingress" => "ingresses",
                var k => k + "s",
            };
            var prefix = obj.ApiVersion == "v1" ? "/api/v1" : $"/apis/{obj.ApiVersion}";
            Assert.Equal($"{prefix}/namespaces/team-a/{plural}/{obj.Name}", request.Path);
            Assert.StartsWith("application/apply-patch+yaml", request.ContentType, StringComparison.Ordinal);
            Assert.Equal("berth", request.Query["fieldManager"]);
            Assert.Equal("Strict", request.Query["fieldValidation"]);
            Assert.False(request.Query.ContainsKey("force"));
            Assert.Equal(Canonical.FromYaml(obj.ToYaml()), Canonical.FromJson(request.Body));
            Assert.False(request.Query.ContainsKey("dryRun"));
        }

        Assert.Equal(["deployment/api", "deployment/db", "deployment/frontend", "deployment/worker", "statefulset/cache"], result.Rollouts.Select(r => r.Object));
        Assert.Contains(Server.Requests, r => r.Path == "/apis/apps/v1/namespaces/team-a/statefulsets/cache/status");
    }

    [Fact]
    public async Task ApplyAsync_RolloutInProgress_ReportsEachStepUntilAvailable()
    {
        var set = ManifestGenerator.Generate(OneService(replicas: 3));
        Server.ScriptStatus("deployments", "api",
            FakeApiServer.DeploymentStatus(3, 0, 3, 3, generation: 2, observed: 1),
            FakeApiServer.DeploymentStatus(3, 1, 4, 3, generation: 2, observed: 2),
            FakeApiServer.DeploymentStatus(3, 3, 4, 2, generation: 2, observed: 2),
            FakeApiServer.DeploymentStatus(3, 3, 3, 2, generation: 2, observed: 2),
            FakeApiServer.DeploymentStatus(3, 3, 3, 3, generation: 2, observed: 2));

        var (result, progress) = await Apply(set, Fast);

        Assert.True(result.Succeeded);
        Assert.Equal(
            [
                "deployment/api: waiting for the controller to see generation 2",
                "deployment/api: 1 of 3 replicas updated",
                "deployment/api: 1 old replicas pending termination",
                "deployment/api: 2 of 3 updated replicas available",
                "deployment/api: 3 of 3 replicas updated and available",
            ],
            progress.Where(p => p.StartsWith("deployment/api: ", StringComparison.Ordinal) && !p.EndsWith("applied", StringComparison.Ordinal)));
        Assert.Equal("rolled out: 3 of 3 replicas updated and available", Assert.Single(result.Rollouts).Message);
        Assert.Contains(Server.Requests, r => r.Path == "/api/v1/namespaces/team-a/pods" && r.Query["labelSelector"] == "app.kubernetes.io/name=api,app.kubernetes.io/part-of=demo");
    }

    // Each row: how many of the 2 updated replicas are available, the pods the server lists, and why the rollout failed.
    public static TheoryData<int, string, string> FailingPods() => new()
    {
        {
            0,
            """
            {"kind":"PodList","apiVersion":"v1","items":[
              {"metadata":{"name":"api-7d9c-x1"},"status":{"phase":"Pending","containerStatuses":[
                {"name":"api","image":"example/api:1","imageID":"","ready":false,"restartCount":0,
                 "state":{"waiting":{"reason":"ImagePullBackOff","message":"Back-off pulling image \"example/api:1\""}}}]}}]}
            """,
            "rollout failed: 0 of 2 updated replicas available; pod api-7d9c-x1: api: ImagePullBackOff: Back-off pulling image \"example/api:1\""
        },
        {
            1,
            """
            {"kind":"PodList","apiVersion":"v1","items":[
              {"metadata":{"name":"api-1"},"status":{"phase":"Running","containerStatuses":[
                {"name":"api","image":"i","imageID":"","ready":false,"restartCount":4,
                 "state":{"waiting":{"reason":"CrashLoopBackOff","message":"back-off 40s restarting failed container"}},
                 "lastState":{"terminated":{"exitCode":137,"reason":"OOMKilled"}}}]}}]}
            """,
            "rollout failed: 1 of 2 updated replicas available; pod api-1: api: CrashLoopBackOff: back-off 40s restarting failed container (last exit 137, OOMKilled)"
        },
    };

    [Theory]
    [MemberData(nameof(FailingPods))]
    public async Task ApplyAsync_PodInImagePullOrCrashLoopBackOff_FailsWithThePodsReasonAndLastExit(int available, string pods, string expected)
    {
        var set = ManifestGenerator.Generate(OneService());
        Server.ScriptStatus("deployments", "api", FakeApiServer.DeploymentStatus(2, 2, 2, available));
        Server.PodsJson = pods;

        var (result, _) = await Apply(set, Fast);

        Assert.False(result.Succeeded);
        Assert.Equal(expected, Assert.Single(result.Rollouts).Message);
    }

    [Fact]
    public async Task ApplyAsync_ProgressDeadlineExceeded_Fails()
    {
        var set = ManifestGenerator.Generate(OneService());
        Server.ScriptStatus("deployments", "api", FakeApiServer.DeploymentStatus(2, 1, 2, 1, progressingReason: "ProgressDeadlineExceeded"));

        var (result, _) = await Apply(set, Fast);

        Assert.Equal("rollout failed: exceeded its progress deadline (600s): ReplicaSet progress", Assert.Single(result.Rollouts).Message);
    }

    [Fact]
    public async Task ApplyAsync_OneShotJob_WaitsForItToComplete()
    {
        var set = SetupJobThenApp();
        Server.ScriptStatus("jobs", "setup",
            """{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"setup"},"spec":{"template":{}},"status":{"active":1}}""",
            """{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"setup"},"spec":{"template":{}},"status":{"succeeded":1}}""");

        var (result, progress) = await Apply(set, Fast);

        Assert.True(result.Succeeded, string.Join("\n", result.Rollouts.Select(r => r.Message)));
        Assert.Equal("rolled out: completed (1 of 1 succeeded)", result.Rollouts.Single(r => r.Object == "job/setup").Message);
        Assert.Contains("job/setup: running: 1 active, 0 of 1 succeeded, 0 failed", progress);
        Assert.Contains(Server.Requests, r => r.Method == "PATCH" && r.Path == "/apis/batch/v1/namespaces/team-a/jobs/setup");
        Assert.Contains(Server.Requests, r => r.Path == "/api/v1/namespaces/team-a/pods" && r.Query["labelSelector"] == "app.kubernetes.io/name=setup,app.kubernetes.io/part-of=demo");
    }

    [Fact]
    public async Task ApplyAsync_JobBackoffLimitExceeded_FailsWithTheJobsReason()
    {
        var set = SetupJobThenApp();
        Server.ScriptStatus("jobs", "setup",
            """{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"setup"},"spec":{"template":{}},"status":{"failed":7,"conditions":[{"type":"Failed","status":"True","reason":"BackoffLimitExceeded","message":"Job has reached the specified backoff limit"}]}}""");

        var (result, _) = await Apply(set, Fast);

        Assert.Equal("rollout failed: job failed: BackoffLimitExceeded: Job has reached the specified backoff limit", result.Rollouts.Single(r => r.Object == "job/setup").Message);
    }

    [Fact]
    public async Task ApplyAsync_Prune_DeletesTheAppsObjectsTheSpecNoLongerHas()
    {
        var set = ManifestGenerator.Generate(OneService());
        AllRolledOut(set);
        Server.Collections["/apis/apps/v1/namespaces/team-a/deployments"] = ["api", "old"];
        Server.Collections["/api/v1/namespaces/team-a/configmaps"] = ["api-env", "old-env"];
        Server.Overrides["GET /apis/networking.istio.io/v1/namespaces/team-a/virtualservices"] =
            (HttpStatusCode.NotFound, FakeApiServer.Status(404, "NotFound", "the server could not find the requested resource"));

        var (result, progress) = await Apply(set, Fast with { Prune = true });

        Assert.True(result.Succeeded, string.Join("\n", result.Objects.Where(o => !o.Succeeded).Select(o => o.Message)));
        var deletes = Server.Requests.Where(r => r.Method == "DELETE").Select(r => r.Path).ToList();
        Assert.Equal(["/apis/apps/v1/namespaces/team-a/deployments/old", "/api/v1/namespaces/team-a/configmaps/old-env"], deletes);
        Assert.Contains("deployment/old: pruned: the spec no longer has it", progress);
        var lists = Server.Requests.Where(r => r.Method == "GET" && r.Query.ContainsKey("labelSelector") && !r.Path.EndsWith("/pods", StringComparison.Ordinal)).ToList();
        Assert.All(lists, r => Assert.Equal("app.kubernetes.io/managed-by=berth,app.kubernetes.io/part-of=demo", r.Query["labelSelector"]));
        Assert.DoesNotContain(lists, r => r.Path.EndsWith("/persistentvolumeclaims", StringComparison.Ordinal));
    }

    [Fact]
    public async Task ApplyAsync_WithoutPrune_ListsAndDeletesNothing()
    {
        var set = ManifestGenerator.Generate(OneService());
        AllRolledOut(set);
        Server.Collections["/apis/apps/v1/namespaces/team-a/deployments"] = ["api", "old"];

        var (result, _) = await Apply(set, Fast);

        Assert.True(result.Succeeded);
        Assert.DoesNotContain(Server.Requests, r => r.Method == "DELETE");
    }

    [Fact]
    public async Task ApplyAsync_DryRun_SendsDryRunAllAndWaitsForNothing()
    {
        var set = ManifestGenerator.Generate(OneService());

        var (result, progress) = await Apply(set, Fast with { DryRun = true });

        Assert.True(result.Succeeded);
        Assert.Empty(result.Rollouts);
        Assert.All(Server.Requests.Where(r => r.Method == "PATCH"), r => Assert.Equal("All", r.Query["dryRun"]));
        Assert.Equal(["/api/v1/namespaces/team-a"], Server.Requests.Where(r => r.Method == "GET").Select(r => r.Path)); // only: does the namespace exist
        Assert.Contains("deployment/api: applied (server dry run)", progress);
    }

    [Fact]
    public async Task ApplyAsync_ContextOption_UsesThatContextsNamespace()
    {
        var set = ManifestGenerator.Generate(OneService());
        AllRolledOut(set);

        var (result, _) = await Apply(set, Fast, context: "other");

        Assert.True(result.Succeeded);
        Assert.All(Server.Requests, r => Assert.Contains("/namespaces/team-b/", r.Path, StringComparison.Ordinal));
    }

    [Fact]
    public async Task ApplyAsync_ForceConflicts_SendsForce()
    {
        var set = ManifestGenerator.Generate(OneService());
        AllRolledOut(set);

        await Apply(set, Fast with { ForceConflicts = true });

        Assert.All(Server.Requests.Where(r => r.Method == "PATCH"), r => Assert.Equal("true", r.Query["force"]));
    }

    [Fact]
    public async Task ApplyAsync_Conflict_SaysForceConflictsAndStillTriesTheRest()
    {
        var set = ManifestGenerator.Generate(OneService());
        Server.Overrides["PATCH /apis/apps/v1/namespaces/team-a/deployments/api"] =
            (HttpStatusCode.Conflict, FakeApiServer.Status(409, "Conflict", "Apply failed with 1 conflict: conflict with \"kubectl-edit\": .spec.replicas"));

        var (result, _) = await Apply(set, Fast);

        Assert.False(result.Succeeded);
        Assert.Equal(
            "deployment/api: another field manager owns some of these fields (Apply failed with 1 conflict: conflict with \"kubectl-edit\": .spec.replicas); re-run with --force-conflicts to take them over for 'berth'",
            Assert.Single(result.Objects, o => !o.Succeeded).Message);
        Assert.Contains(Server.Requests, r => r.Path.EndsWith("/services/api", StringComparison.Ordinal));
        Assert.Empty(result.Rollouts);
    }

    [Fact]
    public async Task ApplyAsync_IstioNotInstalled_SaysToInstallIt()
    {
        var set = ManifestGenerator.Generate(OneService(), new GenerateOptions { Mesh = MeshTarget.Istio });
        Server.Overrides["PATCH /apis/networking.istio.io/v1/namespaces/team-a/destinationrules/api"] =
            (HttpStatusCode.NotFound, FakeApiServer.Status(404, "NotFound", "the server could not find the requested resource"));

        var (result, _) = await Apply(set, Fast);

        Assert.Equal(
            "destinationrule/api: the cluster does not serve networking.istio.io/v1 (the server could not find the requested resource); install Istio, or generate without --mesh istio",
            Assert.Single(result.Objects, o => !o.Succeeded).Message);
    }

    [Fact]
    public async Task ApplyAsync_ClusterUnreachable_StopsAtOnceAndSaysWhere()
    {
        var port = Ports.Free();
        var kubeconfig = File.ReadAllText(Environment.GetEnvironmentVariable("KUBECONFIG")!).Replace(Server.Url, $"http://127.0.0.1:{port}", StringComparison.Ordinal);
        File.WriteAllText(Environment.GetEnvironmentVariable("KUBECONFIG")!, kubeconfig);
        var set = ManifestGenerator.Generate(OneService());

        var (result, _) = await Apply(set, Fast);

        Assert.True(result.Unreachable);
        var failure = Assert.Single(result.Objects);
        Assert.StartsWith($"cannot reach the cluster at http://127.0.0.1:{port}", failure.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task DeleteAsync_ShopApp_DeletesInReverseOrderAndKeepsVolumesAndNamespace()
    {
        var set = ManifestGenerator.Generate(SampleApps.Shop(), new GenerateOptions { Namespace = "shop" });
        Server.Overrides["DELETE /api/v1/namespaces/shop/configmaps/worker-env"] = (HttpStatusCode.NotFound, FakeApiServer.Status(404, "NotFound", "configmaps \"worker-env\" not found"));
        using var connection = KubeConnection.Open();

        var result = await new ClusterApplier(connection).DeleteAsync(set, connection.DefaultNamespace, new ApplyOptions(), null, CancellationToken.None);

        Assert.True(result.Succeeded);
        var deletes = Server.Requests.Where(r => r.Method == "DELETE").Select(r => r.Path).ToList();
        Assert.Equal(set.Objects.Length - 2, deletes.Count); // all but the namespace and the claim
        Assert.Equal("/apis/networking.k8s.io/v1/namespaces/shop/ingresses/frontend", deletes[0]);
        Assert.DoesNotContain(deletes, p => p.Contains("persistentvolumeclaims", StringComparison.Ordinal) || p.EndsWith("/namespaces/shop", StringComparison.Ordinal));
        Assert.Equal("not found", result.Objects.Single(o => o.Object == "configmap/worker-env").Message);
        Assert.Equal("kept: it holds data (pass --volumes to delete it)", result.Objects.Single(o => o.Object == "persistentvolumeclaim/pgdata").Message);
    }

    [Fact]
    public async Task DeleteAsync_WithVolumes_DeletesTheClaims()
    {
        var set = ManifestGenerator.Generate(SampleApps.Shop());
        using var connection = KubeConnection.Open();

        var result = await new ClusterApplier(connection).DeleteAsync(set, "team-a", new ApplyOptions { DeleteVolumes = true }, null, CancellationToken.None);

        Assert.True(result.Succeeded);
        Assert.Contains(Server.Requests, r => r.Method == "DELETE" && r.Path == "/api/v1/namespaces/team-a/persistentvolumeclaims/pgdata");
    }

    [Fact]
    public void Open_UnknownContext_SaysHowToListContexts()
    {
        var e = Assert.Throws<KubernetesApiException>(() => KubeConnection.Open("nope"));

        Assert.Contains("context 'nope'; 'kubectl config get-contexts' lists them", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Open_NoKubeconfigAnywhere_SaysToSetKubeconfig()
    {
        Environment.SetEnvironmentVariable("KUBECONFIG", Path.Combine(Folder, "missing"));
        var home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        if (File.Exists(Path.Combine(home, ".kube", "config")) || k8s.KubernetesClientConfiguration.IsInCluster())
        {
            return; // KUBECONFIG names only a missing file, so nothing is read; but in-cluster would still answer
        }

        var e = Assert.Throws<KubernetesApiException>(() => KubeConnection.Open());

        Assert.StartsWith("no kubeconfig found: set KUBECONFIG or create ~/.kube/config", e.Message, StringComparison.Ordinal);
    }

    private sealed class SyncProgress(List<string> lines) : IProgress<string>
    {
        public void Report(string value)
        {
            lock (lines)
            {
                lines.Add(value);
            }
        }
    }
}
