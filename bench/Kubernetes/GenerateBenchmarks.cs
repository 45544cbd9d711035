using BenchmarkDotNet.Attributes;
using Berth.Core.Loading;
using Berth.Core.Model;
using k8s;

namespace Berth.Kubernetes.Bench;

/// <summary>Cost of <c>berth k8s generate</c> in process: mapping plus YAML, against the serializer alone on the same
/// objects (the floor any generator built on KubernetesClient pays), for the shop sample and all Compose samples.</summary>
[MemoryDiagnoser]
public class GenerateBenchmarks
{
    private Application _shop = null!;
    private Application[] _compose = [];
    private object[] _shopObjects = [];

    [GlobalSetup]
    public void Setup()
    {
        var root = FindRepositoryRoot();
        var noEnv = new LoadOptions { Environment = new Dictionary<string, string>() };
        _shop = SpecLoader.LoadFile(Path.Combine(root, "samples", "shop", "berth.yaml"), noEnv).Application!;
        _compose = [.. Directory.GetDirectories(Path.Combine(root, "samples", "compose")).Order(StringComparer.Ordinal)
            .Select(d => SpecLoader.LoadFile(SpecLoader.FindDefaultFile(d)!, noEnv).Application!)];
        _shopObjects = [.. ManifestGenerator.Generate(_shop, new GenerateOptions { Mesh = MeshTarget.Istio }).Objects.Select(o => (object)o.Object)];
    }

    [Benchmark(Baseline = true, Description = "serialize only (shop, istio)")]
    public int SerializeOnly_Shop()
    {
        var total = 0;
        foreach (var o in _shopObjects)
        {
            total += KubernetesYaml.Serialize(o).Length;
        }

        return total;
    }

    [Benchmark(Description = "generate + serialize (shop, istio)")]
    public int Generate_Shop()
    {
        var total = 0;
        foreach (var o in ManifestGenerator.Generate(_shop, new GenerateOptions { Mesh = MeshTarget.Istio }).Objects)
        {
            total += o.ToYaml().Length;
        }

        return total;
    }

    [Benchmark(Description = "generate + serialize (12 Compose samples)")]
    public int Generate_ComposeSamples()
    {
        var total = 0;
        foreach (var app in _compose)
        {
            foreach (var o in ManifestGenerator.Generate(app).Objects)
            {
                total += o.ToYaml().Length;
            }
        }

        return total;
    }

    private static string FindRepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Berth.slnx")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("run from inside the Berth repository");
    }
}
