using BenchmarkDotNet.Attributes;
using Berth.Core.Loading;
using YamlDotNet.RepresentationModel;

namespace Berth.Bench.Spec;

/// <summary>Loading + validating a 500-service spec, against the floor every YAML-based loader pays: parsing the same
/// text into YamlDotNet's node tree and nothing else.</summary>
[MemoryDiagnoser]
public class SpecLoadingBenchmarks
{
    private static readonly LoadOptions Options = new() { Environment = new Dictionary<string, string>() };
    private string _berth = "";
    private string _compose = "";

    [Params(500)]
    public int Services { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _berth = SpecGenerator.BerthYaml(Services);
        _compose = SpecGenerator.ComposeYaml(Services);
    }

    [Benchmark(Baseline = true, Description = "YamlDotNet parse only (berth.yaml text)")]
    public int ParseOnly()
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(_berth));
        return ((YamlMappingNode)stream.Documents[0].RootNode).Children.Count;
    }

    [Benchmark(Description = "SpecLoader berth.yaml: load + validate")]
    public int LoadBerthYaml() => SpecLoader.LoadText(_berth, "/bench/berth.yaml", Options).Application!.Services.Length;

    [Benchmark(Description = "SpecLoader compose.yaml: load + validate")]
    public int LoadComposeYaml() => SpecLoader.LoadText(_compose, "/bench/compose.yaml", Options).Application!.Services.Length;
}
