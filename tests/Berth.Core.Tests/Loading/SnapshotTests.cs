
namespace Berth.Core.Tests.Loading;

/// <summary>The normalized output (<c>berth config</c>) of the sample and of real-world Compose files, compared with the
/// snapshots under tests/Berth.Core.Tests/Snapshots. Set BERTH_UPDATE_SNAPSHOTS=1 to rewrite them after a deliberate change.</summary>
public class SnapshotTests
{
    public static TheoryData<string> Specs() => Repository.SampleSpecs();

    private static LoadResult Load(string spec) =>
        SpecLoader.LoadFile(Repository.Path(spec), new LoadOptions { Environment = new Dictionary<string, string>() });

    private static string Normalize(string text) => text.Replace(Repository.Root, "$ROOT", StringComparison.Ordinal);

    [Fact]
    public void Specs_CoverAtLeastTenComposeFiles()
    {
        Assert.True(Specs().Count >= 11, $"expected the shop sample and at least 10 Compose files, found {Specs().Count}");
    }

    [Theory]
    [MemberData(nameof(Specs))]
    public void ToYaml_Spec_MatchesSnapshot(string spec)
    {
        var result = Load(spec);
        Assert.True(result.Succeeded, string.Join("\n", result.Diagnostics));

        var actual = Normalize(SpecWriter.ToYaml(result.Application!));
        var warnings = string.Join("", result.Warnings.Select(w => Normalize(w.ToString()) + "\n"));
        var snapshot = Repository.Path($"tests/Berth.Core.Tests/Snapshots/{Path.GetFileName(Path.GetDirectoryName(spec))}.yaml");
        var expected = File.Exists(snapshot) ? File.ReadAllText(snapshot) : null;
        var content = (warnings.Length > 0 ? string.Join("", warnings.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => $"# {l}\n")) : "") + actual;
        if (expected != content && Environment.GetEnvironmentVariable("BERTH_UPDATE_SNAPSHOTS") == "1")
        {
            File.WriteAllText(snapshot, content);
            return;
        }

        Assert.True(expected is not null, $"no snapshot at {snapshot}; run with BERTH_UPDATE_SNAPSHOTS=1 to create it, then review it");
        Assert.Equal(expected, content);
    }

    [Theory]
    [MemberData(nameof(Specs))]
    public void ToYaml_LoadedBackAsBerthYaml_GivesTheSameSpec(string spec)
    {
        var first = Load(spec);
        Assert.True(first.Succeeded, string.Join("\n", first.Diagnostics));
        var yaml = SpecWriter.ToYaml(first.Application!, showSecrets: true);

        // Paths in the output are absolute, so the copy may live anywhere; keep it beside the original for the default name.
        var second = SpecLoader.LoadText(yaml, Path.Combine(Path.GetDirectoryName(Repository.Path(spec))!, "normalized.berth.yaml"),
            new LoadOptions { Environment = new Dictionary<string, string>(), Format = SpecFormat.Berth });

        Assert.Empty(second.Diagnostics);
        Assert.Equal(yaml, SpecWriter.ToYaml(second.Application!, showSecrets: true));
        Assert.Equal(SpecWriter.ToJson(first.Application!, showSecrets: true), SpecWriter.ToJson(second.Application!, showSecrets: true));
    }

    [Fact]
    public void ToJson_ShopSample_IsValidJsonWithTheServices()
    {
        var result = Load("samples/shop/berth.yaml");

        using var json = System.Text.Json.JsonDocument.Parse(SpecWriter.ToJson(result.Application!));

        var services = json.RootElement.GetProperty("services");
        Assert.Equal(["frontend", "api", "worker", "db"], services.EnumerateObject().Select(p => p.Name));
        Assert.Equal(7200, services.GetProperty("api").GetProperty("endpoints").GetProperty("http").GetProperty("port").GetInt32());
        Assert.Equal("10s", services.GetProperty("api").GetProperty("mesh").GetProperty("timeout").GetString());
    }
}
