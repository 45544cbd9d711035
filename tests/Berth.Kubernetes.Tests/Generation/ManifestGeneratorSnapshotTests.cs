namespace Berth.Kubernetes.Tests.Generation;

public sealed class ManifestGeneratorSnapshotTests
{
    [Fact]
    public void Generate_ShopApp_MatchesSnapshot()
    {
        var set = ManifestGenerator.Generate(SampleApps.Shop());

        Assert.True(set.Succeeded, string.Join("\n", set.Errors));
        Snapshots.Verify(set, "shop");
    }

    [Fact]
    public void Generate_ShopAppWithIstioAndNamespace_MatchesSnapshot()
    {
        var set = ManifestGenerator.Generate(SampleApps.Shop(), new GenerateOptions { Mesh = MeshTarget.Istio, Namespace = "shop-prod", IngressDomain = "shop.example.com" });

        Assert.True(set.Succeeded, string.Join("\n", set.Errors));
        Snapshots.Verify(set, "shop-istio");
    }

    [Fact]
    public void Generate_SameInputTwice_WritesByteIdenticalFiles()
    {
        var first = Path.Combine(Path.GetTempPath(), $"berth-k8s-det-{Guid.NewGuid():N}");
        var second = Path.Combine(Path.GetTempPath(), $"berth-k8s-det-{Guid.NewGuid():N}");
        try
        {
            var options = new GenerateOptions { Mesh = MeshTarget.Istio };
            ManifestGenerator.Generate(SampleApps.Shop(), options).WriteTo(first);
            ManifestGenerator.Generate(SampleApps.Shop(), options).WriteTo(second);

            var files = Directory.GetFiles(first).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList();
            Assert.Equal(files, Directory.GetFiles(second).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList());
            Assert.True(files.Count > 20, $"expected the whole shop, got {files.Count} files");
            foreach (var file in files)
            {
                Assert.Equal(File.ReadAllBytes(Path.Combine(first, file!)), File.ReadAllBytes(Path.Combine(second, file!)));
            }
        }
        finally
        {
            Directory.Delete(first, recursive: true);
            Directory.Delete(second, recursive: true);
        }
    }

    [Fact]
    public void WriteTo_ServiceRemovedSinceLastRun_RemovesItsStaleFilesOnly()
    {
        var dir = Path.Combine(Path.GetTempPath(), $"berth-k8s-stale-{Guid.NewGuid():N}");
        try
        {
            var app = SampleApps.Shop();
            ManifestGenerator.Generate(app).WriteTo(dir);
            File.WriteAllText(Path.Combine(dir, "README.txt"), "mine");
            Assert.True(File.Exists(Path.Combine(dir, "frontend-ingress.yaml")));

            ManifestGenerator.Generate(app with { Services = [.. app.Services.Where(s => s.Name != "frontend")] }).WriteTo(dir);

            Assert.False(File.Exists(Path.Combine(dir, "frontend-ingress.yaml")));
            Assert.False(File.Exists(Path.Combine(dir, "frontend-deployment.yaml")));
            Assert.True(File.Exists(Path.Combine(dir, "api-deployment.yaml")));
            Assert.True(File.Exists(Path.Combine(dir, "README.txt")));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
