using System.Text.Json.Nodes;

namespace Berth.Kubernetes.Tests.Apply;

/// <summary>Issue #19's fixes, against the stand-in API server that keeps what is applied and normalizes it as a real server does.</summary>
[Collection(KubeconfigCollection.Name)]
public sealed class IdempotentApplyTests : FakeClusterTests
{

    private static readonly ApplyOptions NoWait = new() { Wait = false };

    private static async Task<ApplyResult> Apply(ManifestSet set, ApplyOptions options, List<string>? progress = null)
    {
        using var connection = KubeConnection.Open();
        return await new ClusterApplier(connection).ApplyAsync(set, connection.DefaultNamespace, options, progress is null ? null : new ListProgress(progress), CancellationToken.None);
    }

    public static IEnumerable<object[]> Apps()
    {
        yield return ["shop (in code)", "", "istio"];
        yield return ["shop (in code)", "", "none"];
        foreach (var row in SampleSpecSnapshotTests.Specs())
        {
            yield return [(string)row[0], (string)row[1], "istio"];
        }
    }

    [Theory]
    [MemberData(nameof(Apps))]
    public async Task ApplyAsync_Twice_SecondBodyIsTheServersNormalizedFormAndNothingIsWritten(string name, string specPath, string mesh)
    {
        var app = specPath.Length == 0 ? SampleApps.Shop() : SampleSpecSnapshotTests.Load(specPath);
        var set = ManifestGenerator.Generate(app, new GenerateOptions { Mesh = mesh == "istio" ? MeshTarget.Istio : MeshTarget.None, Namespace = "shop" });
        Assert.True(set.Succeeded, string.Join("\n", set.Errors));

        var first = await Apply(set, NoWait);
        var versions = set.Objects.ToDictionary(o => o.DisplayName, o => ResourceVersion(Server.Stored(PathOf(o))!));
        var before = Server.Requests.Count;
        var second = await Apply(set, NoWait);

        Assert.True(first.Succeeded && second.Succeeded, name);
        var bodies = Server.Requests.Skip(before).Where(r => r.Method == "PATCH").ToList();
        Assert.Equal(set.Objects.Length, bodies.Count);
        var kinds = new HashSet<string>();
        foreach (var (obj, request) in set.Objects.Zip(bodies))
        {
            var stored = Server.Stored(request.Path);
            Assert.True(stored is not null, $"{name}: {obj.DisplayName} was not stored");
            var body = JsonNode.Parse(request.Body)!.AsObject();
            Assert.Equal(FakeApiServer.Content(ServerNormalization.Normalize(body)), FakeApiServer.Content(body));
            Assert.Equal(FakeApiServer.Content(stored), FakeApiServer.Content(body));
            Assert.True(versions[obj.DisplayName] == ResourceVersion(stored), $"{name}: the second apply of {obj.DisplayName} wrote (resourceVersion {versions[obj.DisplayName]} → {ResourceVersion(stored)})");
            kinds.Add(obj.Kind);
        }

        if (name == "shop (in code)" && mesh == "istio")
        {
            // every kind Berth generates
            Assert.Equal(
                ["ConfigMap", "Deployment", "DestinationRule", "HorizontalPodAutoscaler", "Ingress", "Namespace", "PersistentVolumeClaim", "PodDisruptionBudget", "Secret", "Service", "StatefulSet", "VirtualService"],
                kinds.Order(StringComparer.Ordinal));
        }
    }

    [Fact]
    public async Task ApplyAsync_JobAndRequestsPerSecondTarget_AreIdempotentToo()
    {
        var app = new Application
        {
            Name = "demo",
            Services =
            [
                new Service { Name = "setup", Image = "example/setup:1" },
                new Service
                {
                    Name = "app", Image = "example/app:1", Endpoints = [new Endpoint { Port = 8080 }],
                    DependsOn = [new Dependency("setup", DependencyCondition.Completed)],
                    Autoscale = new AutoscalePolicy { Min = 2, Max = 5, TargetRequestsPerSecond = 10 },
                },
            ],
        };
        var set = ManifestGenerator.Generate(app);
        await Apply(set, NoWait);
        var versions = set.Objects.ToDictionary(o => o.DisplayName, o => ResourceVersion(Server.Stored(PathOf(o, "team-a"))!));

        await Apply(set, NoWait);

        Assert.Contains(set.Objects, o => o.Kind == "Job");
        Assert.Contains(set.Objects, o => o.Kind == "HorizontalPodAutoscaler");
        Assert.All(set.Objects, o => Assert.Equal(versions[o.DisplayName], ResourceVersion(Server.Stored(PathOf(o, "team-a"))!)));
    }

    [Fact]
    public async Task StandIn_BodyWithAZeroOmitemptyField_IsRewrittenOnEveryApply()
    {
        // The stand-in can fail the test above: what Berth sent before this fix is written again on each apply.
        var set = ManifestGenerator.Generate(new Application { Name = "demo", Services = [new Service { Name = "api", Image = "example/api:1", Endpoints = [new Endpoint { Port = 8080 }] }] });
        var path = "/apis/apps/v1/namespaces/team-a/deployments/api";
        using var http = new HttpClient();
        http.DefaultRequestHeaders.Authorization = new("Bearer", FakeApiServer.Token);
        var body = JsonNode.Parse(set.Find("Deployment", "api")!.ToJson())!.AsObject();
        body["spec"]!["minReadySeconds"] = 0;

        async Task<string> ApplyRaw()
        {
            using var content = new StringContent(body.ToJsonString(), System.Text.Encoding.UTF8, "application/apply-patch+yaml");
            using var response = await http.PatchAsync($"{Server.Url}{path}?fieldManager=berth", content);
            response.EnsureSuccessStatusCode();
            return ResourceVersion(JsonNode.Parse(await response.Content.ReadAsStringAsync())!.AsObject());
        }

        var first = await ApplyRaw();
        var second = await ApplyRaw();

        Assert.NotEqual(first, second);
        Assert.Null(Server.Stored(path)!["spec"]!["minReadySeconds"]);
    }

    [Theory]
    [InlineData("1000m", "1")]
    [InlineData("0.5", "500m")]
    [InlineData("1024Mi", "1Gi")]
    [InlineData("1536Mi", "1536Mi")]
    [InlineData("2000", "2k")]
    [InlineData("1500", "1500")]
    [InlineData("12500m", "12500m")]
    [InlineData("256Mi", "256Mi")]
    [InlineData("0", "0")]
    public void Canonical_Quantity_IsWhatTheServerStores(string text, string expected) =>
        Assert.Equal(expected, ServerNormalization.Canonical(text));

    [Fact]
    public void Generate_WholeCpuAndZeroDefaults_QuantityIsAStringAndZerosAreLeftOut()
    {
        var set = ManifestGenerator.Generate(new Application
        {
            Name = "demo",
            Services =
            [
                new Service
                {
                    Name = "api", Image = "example/api:1", Endpoints = [new Endpoint { Port = 8080 }],
                    Resources = new Resources { CpuLimit = CpuQuantity.Parse("1"), CpuRequest = CpuQuantity.Parse("2") },
                    Readiness = new Probe { Kind = ProbeKind.Tcp },
                    Volumes = [new VolumeMount { Type = VolumeType.Volume, Source = "data", Target = "/data" }],
                },
            ],
        });

        var yaml = set.Find("Deployment", "api")!.ToYaml();
        Assert.Contains("\n            cpu: \"1\"\n", yaml, StringComparison.Ordinal);
        Assert.Contains("\n            cpu: \"2\"\n", yaml, StringComparison.Ordinal);
        Assert.DoesNotContain("minReadySeconds", yaml, StringComparison.Ordinal);
        Assert.DoesNotContain("initialDelaySeconds", yaml, StringComparison.Ordinal);
        Assert.Equal("Filesystem", Yaml.Get(set.Find("PersistentVolumeClaim", "data")!.ToYaml(), "spec.volumeMode"));
    }

    [Fact]
    public async Task ApplyAsync_DryRunIntoMissingNamespace_ChecksTheNamespaceAndReportsTheRestAsNotChecked()
    {
        Server.EnforceNamespaces = true;
        var set = ManifestGenerator.Generate(SampleApps.Shop(), new GenerateOptions { Namespace = "fresh" });
        var progress = new List<string>();

        var result = await Apply(set, new ApplyOptions { DryRun = true }, progress);

        Assert.True(result.Succeeded, string.Join("\n", result.Objects.Where(o => !o.Succeeded).Select(o => o.Message)));
        Assert.Equal("applied (server dry run)", result.Objects.Single(o => o.Object == "namespace/fresh").Message);
        var others = result.Objects.Where(o => o.Object != "namespace/fresh").ToList();
        Assert.All(others, o => Assert.True(o.NotChecked));
        Assert.All(others, o => Assert.Equal("not checked: namespace 'fresh' does not exist yet, and a dry run creates none", o.Message));
        Assert.Single(Server.Requests, r => r.Method == "PATCH"); // only the Namespace, dry run
        Assert.Null(Server.Stored("/api/v1/namespaces/fresh"));
    }

    [Fact]
    public async Task ApplyAsync_DryRunIntoExistingNamespace_ChecksEveryObject()
    {
        Server.EnforceNamespaces = true;
        Server.Namespaces["team-a"] = true;
        var set = ManifestGenerator.Generate(SampleApps.Shop());

        var result = await Apply(set, new ApplyOptions { DryRun = true });

        Assert.True(result.Succeeded);
        Assert.DoesNotContain(result.Objects, o => o.NotChecked);
        Assert.Equal(set.Objects.Length, Server.Requests.Count(r => r.Method == "PATCH" && r.Query["dryRun"] == "All"));
    }

    [Fact]
    public async Task ApplyAsync_RealApplyIntoNewNamespace_CreatesItFirst()
    {
        Server.EnforceNamespaces = true;
        var set = ManifestGenerator.Generate(SampleApps.Shop(), new GenerateOptions { Namespace = "fresh" });

        var result = await Apply(set, NoWait);

        Assert.True(result.Succeeded, string.Join("\n", result.Objects.Where(o => !o.Succeeded).Select(o => o.Message)));
        Assert.NotNull(Server.Stored("/apis/apps/v1/namespaces/fresh/deployments/api"));
    }

    // A quota refusal and an RBAC denial are both 403 Forbidden: only the denial gets the "ask for a role" advice.
    [Theory]
    [InlineData(
        "deployments.apps \"api\" is forbidden: exceeded quota: object-counts, requested: count/deployments.apps=1, used: count/deployments.apps=4, limited: count/deployments.apps=4",
        "deployment/api: the cluster refused it: deployments.apps \"api\" is forbidden: exceeded quota: object-counts, requested: count/deployments.apps=1, used: count/deployments.apps=4, limited: count/deployments.apps=4")]
    [InlineData(
        "deployments.apps \"api\" is forbidden: User \"jane\" cannot patch resource \"deployments\" in API group \"apps\" in the namespace \"team-a\"",
        "deployment/api: not allowed in namespace 'team-a' (deployments.apps \"api\" is forbidden: User \"jane\" cannot patch resource \"deployments\" in API group \"apps\" in the namespace \"team-a\"); ask for a role that allows this on Deployment there, or use another --namespace")]
    public async Task ApplyAsync_Forbidden_ShowsTheServersMessageAndAsksForARoleOnlyOnAnRbacDenial(string serverMessage, string expected)
    {
        var set = ManifestGenerator.Generate(SampleApps.Shop());
        Server.Overrides["PATCH /apis/apps/v1/namespaces/team-a/deployments/api"] = (HttpStatusCode.Forbidden, FakeApiServer.Status(403, "Forbidden", serverMessage));

        var result = await Apply(set, NoWait);

        Assert.Equal(expected, Assert.Single(result.Objects, o => !o.Succeeded).Message);
    }

    [Fact]
    public async Task ApplyAsync_CrdMissing_PlainTextAnswerHasNoStrayNewline()
    {
        // A real API server answers a group it does not serve with text/plain "404 page not found\n".
        var set = ManifestGenerator.Generate(SampleApps.Shop(), new GenerateOptions { Mesh = MeshTarget.Istio });
        Server.PlainTextOverrides["PATCH /apis/networking.istio.io/v1/namespaces/team-a/destinationrules/api"] = (HttpStatusCode.NotFound, "404 page not found\n");

        var result = await Apply(set, NoWait);

        var message = Assert.Single(result.Objects, o => !o.Succeeded).Message;
        Assert.Equal("destinationrule/api: the cluster does not serve networking.istio.io/v1 (404 page not found); install Istio, or generate without --mesh istio", message);
        Assert.DoesNotContain('\n', message);
    }

    [Fact]
    public async Task DeleteAsync_ClaimWithFinalizer_WaitsUntilItIsGoneAndSaysWhatIsTerminating()
    {
        var set = ManifestGenerator.Generate(SampleApps.Shop());
        await Apply(set, NoWait);
        Server.FinalizerReads = 3;
        var progress = new List<string>();
        using var connection = KubeConnection.Open();

        var result = await new ClusterApplier(connection).DeleteAsync(set, "team-a", new ApplyOptions { DeleteVolumes = true, PollInterval = TimeSpan.FromMilliseconds(20) }, new ListProgress(progress), CancellationToken.None);

        Assert.True(result.Succeeded, string.Join("\n", result.Objects.Where(o => !o.Succeeded).Select(o => o.Message)));
        Assert.Equal("deleted", result.Objects.Single(o => o.Object == "persistentvolumeclaim/pgdata").Message);
        Assert.Contains("persistentvolumeclaim/pgdata: terminating, waiting for finalizers: kubernetes.io/pvc-protection (a pod still mounts the claim)", progress);
        Assert.Equal("persistentvolumeclaim/pgdata: deleted", progress[^1]);
        Assert.Null(Server.Stored("/api/v1/namespaces/team-a/persistentvolumeclaims/pgdata"));
        Assert.True(Server.Requests.Count(r => r.Method == "GET" && r.Path == "/api/v1/namespaces/team-a/persistentvolumeclaims/pgdata") >= 4);
    }

    [Fact]
    public async Task DeleteAsync_FinalizerNeverDone_FailsAtTheTimeoutSayingWhatIsStillTerminating()
    {
        var set = await ApplyShopWhosePvcFinalizerNeverEndsAsync();
        using var connection = KubeConnection.Open();

        var result = await new ClusterApplier(connection).DeleteAsync(set, "team-a", new ApplyOptions { DeleteVolumes = true, PollInterval = TimeSpan.FromMilliseconds(20), Timeout = TimeSpan.FromMilliseconds(300) }, null, CancellationToken.None);

        Assert.False(result.Succeeded);
        Assert.Equal(
            "still terminating after 300ms: terminating, waiting for finalizers: kubernetes.io/pvc-protection (a pod still mounts the claim)",
            Assert.Single(result.Objects, o => !o.Succeeded).Message);
    }

    [Fact]
    public async Task DeleteAsync_WaitFalse_ReturnsAtOnceSayingDeletionWasRequested()
    {
        var set = await ApplyShopWhosePvcFinalizerNeverEndsAsync();
        using var connection = KubeConnection.Open();
        var before = Server.Requests.Count;

        var result = await new ClusterApplier(connection).DeleteAsync(set, "team-a", new ApplyOptions { DeleteVolumes = true, Wait = false }, null, CancellationToken.None);

        Assert.True(result.Succeeded);
        Assert.Equal("deletion requested (not waited for)", result.Objects.Single(o => o.Object == "persistentvolumeclaim/pgdata").Message);
        Assert.DoesNotContain(Server.Requests.Skip(before), r => r.Method == "GET");
        Assert.NotNull(Server.Stored("/api/v1/namespaces/team-a/persistentvolumeclaims/pgdata")!["metadata"]!["deletionTimestamp"]);
    }

    /// <summary>Applies the shop, with the fake API server never ending the finalizer of a PVC it is asked to delete.</summary>
    private async Task<ManifestSet> ApplyShopWhosePvcFinalizerNeverEndsAsync()
    {
        var set = ManifestGenerator.Generate(SampleApps.Shop());
        await Apply(set, NoWait);
        Server.FinalizerReads = int.MaxValue;
        return set;
    }

    internal static string PathOf(ManifestObject o, string ns = "shop")
    {
        var plural = o.Kind.ToLowerInvariant() switch
        {
            "horizontalpodautoscaler" => "horizontalpodautoscalers",
            "ingress" => "ingresses",
            var k => k + "s",
        };
        var prefix = o.ApiVersion == "v1" ? "/api/v1" : $"/apis/{o.ApiVersion}";
        return o.Kind == "Namespace" ? $"/api/v1/namespaces/{o.Name}" : $"{prefix}/namespaces/{o.Namespace ?? ns}/{plural}/{o.Name}";
    }

    private static string ResourceVersion(JsonObject obj) => obj["metadata"]!["resourceVersion"]!.GetValue<string>();

    internal sealed class ListProgress(List<string> lines) : IProgress<string>
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
