
namespace Berth.Kubernetes.Tests.Generation;

/// <summary>The repository's sample app and real-world Compose files, loaded by the spec loader and generated, against snapshots.</summary>
public sealed class SampleSpecSnapshotTests
{
    /// <summary>Every samples/compose/*/compose.yaml and samples/shop/berth.yaml, as (snapshot name, path from the repository root).</summary>
    public static TheoryData<string, string> Specs()
    {
        var data = new TheoryData<string, string> { { "sample-shop", "samples/shop/berth.yaml" } };
        foreach (var dir in Directory.GetDirectories(Path.Combine(Repository.Root, "samples", "compose")).Order(StringComparer.Ordinal))
        {
            var file = SpecLoader.FindDefaultFile(dir);
            if (file is not null)
            {
                data.Add($"compose-{Path.GetFileName(dir)}", Path.GetRelativePath(Repository.Root, file).Replace('\\', '/'));
            }
        }

        return data;
    }

    /// <summary>Loads a sample with no process environment, so the machine's variables cannot change the snapshot.</summary>
    public static Core.Model.Application Load(string relativePath)
    {
        var result = SpecLoader.LoadFile(Path.Combine(Repository.Root, relativePath), new LoadOptions { Environment = new Dictionary<string, string>() });
        Assert.True(result.Succeeded, string.Join("\n", result.Errors));
        return result.Application!;
    }

    [Fact]
    public void Specs_Repository_HasTheSampleAndTheComposeFiles()
    {
        var specs = Specs();
        Assert.True(specs.Count() >= 10, $"expected the shop sample and the Compose samples, found {specs.Count()}");
    }

    [Theory]
    [MemberData(nameof(Specs))]
    public void Generate_SampleSpec_MatchesSnapshot(string name, string relativePath)
    {
        var app = Load(relativePath);

        var set = ManifestGenerator.Generate(app);

        Assert.True(set.Succeeded, string.Join("\n", set.Errors));
        foreach (var o in set.Objects)
        {
            // Output must not depend on where the spec sits on this machine.
            Assert.DoesNotContain(Repository.Root, o.ToYaml(), StringComparison.Ordinal);
        }

        Snapshots.Verify(set, name);
    }

    [Theory]
    [MemberData(nameof(Specs))]
    public void Generate_SampleSpecWithIstio_EveryServiceWithEndpointsGetsADestinationRule(string name, string relativePath)
    {
        var app = Load(relativePath);

        var set = ManifestGenerator.Generate(app, new GenerateOptions { Mesh = MeshTarget.Istio });

        Assert.True(set.Succeeded, $"{name}: {string.Join("\n", set.Errors)}");
        // A -headless or -public Service is a second front of the same pods: the workload's own DestinationRule covers them.
        foreach (var service in set.Objects.Where(o => o.Kind == "Service"))
        {
            var workload = service.Name.EndsWith("-headless", StringComparison.Ordinal) || service.Name.EndsWith("-public", StringComparison.Ordinal)
                ? service.Name[..service.Name.LastIndexOf('-')] : service.Name;
            Assert.NotNull(set.Find("DestinationRule", workload));
        }
    }
}
