using System.Text.Json.Nodes;
using Berth.Core.Model;
using Berth.Kubernetes.Apply;

namespace Berth.Kubernetes.Tests.Apply;

/// <summary><c>berth k8s diff</c> and <c>berth k8s status</c> against the stand-in API server (it keeps what is applied and answers dry runs).</summary>
[Collection(KubeconfigCollection.Name)]
public sealed class DiffAndStatusTests : FakeClusterTests
{
    private readonly StringWriter _stdout = new();
    private readonly StringWriter _stderr = new();

    private static Application Demo(params string[] names) => new()
    {
        Name = "demo",
        Services = [.. names.Select(n => new Service { Name = n, Image = $"example/{n}:1", Replicas = 2, Endpoints = [new Endpoint { Port = 8080 }] })],
    };

    private static async Task ApplyAsync(Application app)
    {
        using var connection = KubeConnection.Open();
        var result = await new ClusterApplier(connection).ApplyAsync(ManifestGenerator.Generate(app), "team-a", new ApplyOptions { Wait = false }, null, CancellationToken.None);
        Assert.True(result.Succeeded);
    }

    private Task<WorkflowOutcome> Diff(Application app, bool prune = false) =>
        KubernetesWorkflow.DiffAsync(app, new GenerateOptions(), null, new ApplyOptions { Prune = prune }, _stdout, _stderr, CancellationToken.None);

    [Fact]
    public async Task DiffAsync_NothingOnTheCluster_ShowsEveryObjectAsAddedAndReportsDifferences()
    {
        var outcome = await Diff(Demo("api"));

        Assert.Equal(WorkflowOutcome.Differences, outcome);
        var text = _stdout.ToString();
        Assert.Contains("--- live/apps.v1.Deployment.team-a.api\n+++ merged/apps.v1.Deployment.team-a.api\n@@ -0,0 +1,", text, StringComparison.Ordinal);
        Assert.Contains("--- live/v1.ConfigMap.team-a.api-env\n", text, StringComparison.Ordinal);
        Assert.DoesNotContain(text.Split('\n'), l => l.StartsWith('-') && !l.StartsWith("---", StringComparison.Ordinal));
        Assert.DoesNotContain("managedFields", text, StringComparison.Ordinal);
        Assert.All(Server.Requests.Where(r => r.Method == "PATCH"), r => Assert.Equal("All", r.Query["dryRun"]));
        Assert.Null(Server.Stored("/apis/apps/v1/namespaces/team-a/deployments/api"));
        Assert.Contains("berth: diff: apply would change 4 of 4 objects", _stderr.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task DiffAsync_RightAfterApply_ShowsNothingAndExitsOk()
    {
        await ApplyAsync(Demo("api"));

        var outcome = await Diff(Demo("api"));

        Assert.Equal(WorkflowOutcome.Ok, outcome);
        Assert.Equal("", _stdout.ToString());
        Assert.Contains("berth: diff: apply would change nothing", _stderr.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task DiffAsync_FieldChangedOnTheCluster_ShowsAUnifiedHunkWithoutManagedFields()
    {
        await ApplyAsync(Demo("api"));
        Server.EditAsOtherManager("/apis/apps/v1/namespaces/team-a/deployments/api", "kubectl-edit",
            d => d["spec"]!["replicas"] = 5, new JsonObject { ["f:spec"] = new JsonObject { ["f:replicas"] = new JsonObject() } });

        var outcome = await Diff(Demo("api"));

        Assert.Equal(WorkflowOutcome.Differences, outcome);
        var text = _stdout.ToString();
        Assert.StartsWith("--- live/apps.v1.Deployment.team-a.api\n+++ merged/apps.v1.Deployment.team-a.api\n@@ ", text, StringComparison.Ordinal);
        Assert.Contains("\n-  replicas: 5\n+  replicas: 2\n", text, StringComparison.Ordinal);
        Assert.Contains("\n-  generation: 1\n+  generation: 2\n", text, StringComparison.Ordinal);
        Assert.DoesNotContain("managedFields", text, StringComparison.Ordinal);
        Assert.DoesNotContain("ConfigMap", text, StringComparison.Ordinal);
        Assert.Equal(5, Server.Stored("/apis/apps/v1/namespaces/team-a/deployments/api")!["spec"]!["replicas"]!.GetValue<int>());
    }

    [Fact]
    public async Task DiffAsync_ServiceRemovedFromSpec_ListsWhatPruneWouldRemove()
    {
        await ApplyAsync(Demo("api", "old"));

        var outcome = await Diff(Demo("api"));

        Assert.Equal(WorkflowOutcome.Differences, outcome); // api's env loses old's discovery variable
        Assert.Contains("berth: deployment/old: the spec no longer has it; apply --prune would remove it", _stderr.ToString(), StringComparison.Ordinal);
        Assert.Contains("berth: service/old: the spec no longer has it; apply --prune would remove it", _stderr.ToString(), StringComparison.Ordinal);
        Assert.Contains("\n-  services__old__http__0: http://old:8080\n", _stdout.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain("merged/apps.v1.Deployment.team-a.old", _stdout.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task DiffAsync_PruneAndServiceRemoved_ShowsItAsRemovedAndReportsDifferences()
    {
        await ApplyAsync(Demo("api", "old"));

        var outcome = await Diff(Demo("api"), prune: true);

        Assert.Equal(WorkflowOutcome.Differences, outcome);
        Assert.Contains("--- live/apps.v1.Deployment.team-a.old\n+++ merged/apps.v1.Deployment.team-a.old\n@@ -1,", _stdout.ToString(), StringComparison.Ordinal);
        Assert.Contains("\n-  name: old\n", _stdout.ToString(), StringComparison.Ordinal);
        Assert.NotNull(Server.Stored("/apis/apps/v1/namespaces/team-a/deployments/old"));
    }

    [Fact]
    public async Task DiffAsync_SecretValueChanged_ShowsWhichKeyChangedButNoValueAsKubectlDiff()
    {
        Application App(string token) => Demo("api") with
        {
            Services = [Demo("api").Services[0] with { Env = ImmutableSortedDictionary.CreateRange<string, string>(StringComparer.Ordinal, [new("TOKEN", token), new("PLAIN_TOKEN", "x")]), SecretEnv = ["TOKEN"] }],
        };
        await ApplyAsync(App("first-secret-value"));

        var outcome = await Diff(App("second-secret-value"));

        Assert.Equal(WorkflowOutcome.Differences, outcome);
        var text = _stdout.ToString();
        Assert.Contains("--- live/v1.Secret.team-a.api-env\n", text, StringComparison.Ordinal);
        Assert.Contains("\n-  TOKEN: \"*** (before)\"\n+  TOKEN: \"*** (after)\"\n", text, StringComparison.Ordinal);
        foreach (var value in new[] { "first-secret-value", "second-secret-value" })
        {
            Assert.DoesNotContain(value, text, StringComparison.Ordinal);
            Assert.DoesNotContain(Convert.ToBase64String(Encoding.UTF8.GetBytes(value)), text, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Create_OneChangedLine_IsAUnifiedHunkWithThreeLinesOfContext()
    {
        var before = "a\nb\nc\nd\ne\nf\ng\nh\n";
        var after = "a\nb\nc\nd\nE\nf\ng\nh\n";

        var diff = UnifiedDiff.Create(before, after, "live/x", "merged/x");

        Assert.Equal("--- live/x\n+++ merged/x\n@@ -2,7 +2,7 @@\n b\n c\n d\n-e\n+E\n f\n g\n h\n", diff);
        Assert.Equal("", UnifiedDiff.Create(before, before, "a", "b"));
    }

    [Fact]
    public void ObjectYaml_NestedObject_SortedBlockYamlWithoutManagedFieldsThatReadsBackTheSame()
    {
        const string json = """
            {"kind":"X","apiVersion":"v1","metadata":{"name":"a","managedFields":[{"manager":"m"}]},
             "spec":{"list":[{"b":1,"a":"x","c":{"d":true}},"s",[]],"empty":{},"q":"1","t":"a: b","u":"-x","n":null}}
            """;

        var yaml = UnifiedDiff.ObjectYaml(json);

        Assert.Equal("""
            apiVersion: v1
            kind: X
            metadata:
              name: a
            spec:
              empty: {}
              list:
              - a: x
                b: 1
                c:
                  d: true
              - s
              - []
              q: "1"
              t: "a: b"
              u: "-x"

            """.Replace("\r", "", StringComparison.Ordinal), yaml);
        var withoutManaged = JsonNode.Parse(json)!.AsObject();
        withoutManaged["metadata"]!.AsObject().Remove("managedFields");
        withoutManaged["spec"]!.AsObject().Remove("n");
        Assert.Equal(Canonical.FromJson(withoutManaged.ToJsonString()), Canonical.FromYaml(yaml));
    }

    [Fact]
    public async Task StatusAsync_AppliedShop_ShowsLiveStateAutoscalerAndDriftFromManagedFields()
    {
        var app = SampleApps.Shop();
        var set = ManifestGenerator.Generate(app);
        using (var connection = KubeConnection.Open())
        {
            await new ClusterApplier(connection).ApplyAsync(set, "team-a", new ApplyOptions { Wait = false }, null, CancellationToken.None);
        }

        foreach (var o in set.Objects.Where(o => o.Kind == "Deployment"))
        {
            Server.ScriptStatus("deployments", o.Name, FakeApiServer.DeploymentStatus(2, 2, 2, 2));
        }

        Server.ScriptStatus("deployments", "worker", FakeApiServer.DeploymentStatus(2, 1, 2, 1));
        Server.ScriptStatus("statefulsets", "cache", """
            {"apiVersion":"apps/v1","kind":"StatefulSet","metadata":{"name":"cache","generation":1},"spec":{"replicas":3,"selector":{},"template":{},"serviceName":"x"},
             "status":{"observedGeneration":1,"replicas":3,"readyReplicas":3,"availableReplicas":3,"updatedReplicas":3,"currentRevision":"r1","updateRevision":"r1"}}
            """);
        Server.SetStatus("/apis/autoscaling/v2/namespaces/team-a/horizontalpodautoscalers/api", "kube-controller-manager", JsonNode.Parse("""
            {"currentReplicas":3,"desiredReplicas":3,"currentMetrics":[{"type":"Resource","resource":{"name":"cpu","current":{"averageUtilization":45,"averageValue":"120m"}}}]}
            """)!.AsObject());
        Server.EditAsOtherManager("/api/v1/namespaces/team-a/services/api", "kubectl-edit",
            s => s["spec"]!["type"] = "NodePort",
            new JsonObject { ["f:spec"] = new JsonObject { ["f:type"] = new JsonObject(), ["f:ports"] = new JsonObject { ["k:{\"port\":8081,\"protocol\":\"TCP\"}"] = new JsonObject { ["."] = new JsonObject(), ["f:nodePort"] = new JsonObject() } } } });

        var outcome = await KubernetesWorkflow.StatusAsync(app, new GenerateOptions(), null, _stdout, _stderr, CancellationToken.None);

        var lines = _stdout.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(WorkflowOutcome.Failed, outcome); // worker is not rolled out
        Assert.Contains("deployment/api\tok\t0/2 ready, 2 updated, 2 available; 2 of 2 replicas updated and available", lines);
        Assert.Contains("deployment/worker\tnot ready\t0/2 ready, 1 updated, 1 available; 1 of 2 replicas updated", lines);
        Assert.Contains("statefulset/cache\tok\t3/3 ready, 3 updated, 3 available; 3 of 3 replicas updated and ready", lines);
        Assert.Contains("horizontalpodautoscaler/api\tok\t3 replicas (desired 3, min 2, max 8); cpu 45% (target 70%)", lines);
        var drift = Assert.Single(lines, l => l.Contains("\tdrift\t", StringComparison.Ordinal));
        Assert.Matches(@"^service/api\tdrift\tkubectl-edit \(Update at 2026-01-01T\d\d:\d\d:\d\dZ\) changed \.spec\.type, \.spec\.ports\[port=8081,protocol=TCP\]\.nodePort$", drift);
        Assert.Contains("berth: status: 1 drift entries", _stderr.ToString(), StringComparison.Ordinal);
    }
}
