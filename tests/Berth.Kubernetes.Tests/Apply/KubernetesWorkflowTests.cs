
namespace Berth.Kubernetes.Tests.Apply;

/// <summary>What <c>berth k8s</c> does from a loaded spec: files, stdout stream, and apply/delete against the local stand-in API server.</summary>
[Collection(KubeconfigCollection.Name)]
public sealed class KubernetesWorkflowTests : FakeClusterTests
{
    private readonly StringWriter _stdout = new();
    private readonly StringWriter _stderr = new();

    private static Application Shop() => SampleSpecSnapshotTests.Load("samples/shop/berth.yaml");

    [Fact]
    public async Task GenerateAsync_ToFolder_WritesEveryFileAndListsThemOnStdout()
    {
        var output = Path.Combine(Folder, "k8s");

        var outcome = await KubernetesWorkflow.GenerateAsync(Shop(), output, new GenerateOptions(), _stdout, _stderr, CancellationToken.None);

        Assert.Equal(WorkflowOutcome.Ok, outcome);
        var listed = _stdout.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(Directory.GetFiles(output).Order(StringComparer.Ordinal), listed.Order(StringComparer.Ordinal));
        Assert.Contains(Path.Combine(output, "kustomization.yaml"), listed);
        Assert.Contains($"kubectl apply -k {output}", _stderr.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task GenerateAsync_OutputIsAFile_FailsWithAClearMessage()
    {
        var output = Path.Combine(Folder, "taken");
        File.WriteAllText(output, "not a folder");

        var outcome = await KubernetesWorkflow.GenerateAsync(Shop(), output, new GenerateOptions(), _stdout, _stderr, CancellationToken.None);

        Assert.Equal(WorkflowOutcome.Failed, outcome);
        Assert.Contains($"berth: cannot write the manifests to {output}: ", _stderr.ToString(), StringComparison.Ordinal);
        Assert.EndsWith("; pick another folder with -o\n", _stderr.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task GenerateAsync_ToStdout_StreamsEveryObjectAsOneYamlDocumentEach()
    {
        var outcome = await KubernetesWorkflow.GenerateAsync(Shop(), "-", new GenerateOptions(), _stdout, _stderr, CancellationToken.None);

        Assert.Equal(WorkflowOutcome.Ok, outcome);
        var docs = _stdout.ToString().Split("---\n");
        var expected = ManifestGenerator.Generate(Shop());
        Assert.Equal(expected.Objects.Select(o => o.ToYaml()), docs);
    }

    [Fact]
    public async Task GenerateAsync_ServiceWithoutImage_InvalidSpecAndNothingWritten()
    {
        var app = new Application { Name = "demo", Services = [new Service { Name = "job", Command = ["./run.sh"] }] };
        var output = Path.Combine(Folder, "none");

        var outcome = await KubernetesWorkflow.GenerateAsync(app, output, new GenerateOptions(), _stdout, _stderr, CancellationToken.None);

        Assert.Equal(WorkflowOutcome.InvalidSpec, outcome);
        Assert.False(Directory.Exists(output));
        Assert.Equal(
            "error: services.job: has no image: or build:, so there is nothing to run in a pod; give service 'job' an image: or build: to run it on Kubernetes\n"
            + "berth: 1 problem keeps this spec from running on Kubernetes; nothing was written or applied\n",
            _stderr.ToString());
    }

    [Fact]
    public async Task ApplyAsync_ShopSample_AppliesWaitsAndReportsEachStepOnStdout()
    {
        foreach (var name in new[] { "frontend", "api", "worker", "db" })
        {
            Server.ScriptStatus("deployments", name,
                FakeApiServer.DeploymentStatus(2, 1, 2, 1),
                FakeApiServer.DeploymentStatus(2, 2, 2, 2));
        }

        var outcome = await KubernetesWorkflow.ApplyAsync(Shop(), new GenerateOptions { Namespace = "shop" }, null, new ApplyOptions { PollInterval = TimeSpan.FromMilliseconds(20) }, null, _stdout, _stderr, CancellationToken.None);

        Assert.True(outcome == WorkflowOutcome.Ok, _stderr.ToString());
        Assert.Equal("/api/v1/namespaces/shop", Server.Requests.First(r => r.Method == "PATCH").Path);
        var lines = _stdout.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Contains("deployment/api\tok\tapplied", lines);
        Assert.Contains("deployment/api\tok\trolled out: 2 of 2 replicas updated and available", lines);
        Assert.Contains("  deployment/api: 1 of 2 replicas updated", _stderr.ToString().Split('\n'));
        Assert.StartsWith($"berth: apply: 17 objects, namespace 'shop', cluster {Server.Url}", _stderr.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task ApplyAsync_RolloutFails_FailedWithThePodReason()
    {
        Server.ScriptStatus("deployments", "api", FakeApiServer.DeploymentStatus(1, 1, 1, 0));
        Server.PodsJson = """
            {"kind":"PodList","apiVersion":"v1","items":[{"metadata":{"name":"api-1"},"status":{"containerStatuses":[
              {"name":"api","image":"i","imageID":"","ready":false,"restartCount":0,"state":{"waiting":{"reason":"ErrImagePull","message":"not found"}}}]}}]}
            """;
        var app = new Application { Name = "demo", Services = [new Service { Name = "api", Image = "example/nope:1" }] };

        var outcome = await KubernetesWorkflow.ApplyAsync(app, new GenerateOptions(), null, new ApplyOptions { PollInterval = TimeSpan.FromMilliseconds(20) }, null, _stdout, _stderr, CancellationToken.None);

        Assert.Equal(WorkflowOutcome.Failed, outcome);
        Assert.Contains("deployment/api\tfailed\trollout failed: 0 of 1 updated replicas available; pod api-1: api: ErrImagePull: not found", _stdout.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task ApplyAsync_BadTimeout_UsageError()
    {
        var outcome = await KubernetesWorkflow.ApplyAsync(Shop(), new GenerateOptions(), null, new ApplyOptions(), "soon", _stdout, _stderr, CancellationToken.None);

        Assert.Equal(WorkflowOutcome.Usage, outcome);
        Assert.StartsWith("berth: --timeout 'soon'", _stderr.ToString(), StringComparison.Ordinal);
        Assert.Empty(Server.Requests);
    }

    [Fact]
    public async Task ApplyAsync_NoKubeconfig_UnavailableAndSaysWhereItLooked()
    {
        Environment.SetEnvironmentVariable("KUBECONFIG", Path.Combine(Folder, "missing"));
        if (File.Exists(Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".kube", "config")) || k8s.KubernetesClientConfiguration.IsInCluster())
        {
            return; // this machine has a kubeconfig of its own to fall back on
        }

        var outcome = await KubernetesWorkflow.ApplyAsync(Shop(), new GenerateOptions(), null, new ApplyOptions(), null, _stdout, _stderr, CancellationToken.None);

        Assert.Equal(WorkflowOutcome.Unavailable, outcome);
        Assert.StartsWith("berth: no kubeconfig found: set KUBECONFIG or create ~/.kube/config", _stderr.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task DeleteAsync_DryRun_SendsDryRunDeletesOnly()
    {
        var app = new Application { Name = "demo", Services = [new Service { Name = "api", Image = "i", Env = ImmutableSortedDictionary<string, string>.Empty.Add("A", "1") }] };

        var outcome = await KubernetesWorkflow.DeleteAsync(app, new GenerateOptions(), "fake", new ApplyOptions { DryRun = true }, null, _stdout, _stderr, CancellationToken.None);

        Assert.Equal(WorkflowOutcome.Ok, outcome);
        Assert.Equal(
            ["/apis/apps/v1/namespaces/team-a/deployments/api", "/api/v1/namespaces/team-a/configmaps/api-env"],
            Server.Requests.Select(r => r.Path));
        Assert.All(Server.Requests, r => Assert.Equal(("DELETE", "All"), (r.Method, r.Query["dryRun"])));
        Assert.Contains("deployment/api\tok\tdeleted (server dry run)", _stdout.ToString(), StringComparison.Ordinal);
    }
}
