using System.Text.Json;

namespace Berth.Cli.Tests.Spec;

/// <summary>berth validate and berth config on the shop sample and every real-world Compose file in samples/compose.</summary>
public class SampleCommandsTests
{
    public static TheoryData<string> Samples()
    {
        var data = new TheoryData<string> { "samples/shop/berth.yaml" };
        foreach (var dir in Directory.GetDirectories(CliRunner.Repo("samples/compose")).Order(StringComparer.Ordinal))
        {
            data.Add($"samples/compose/{Path.GetFileName(dir)}/compose.yaml");
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Samples))]
    public async Task ValidateAndConfig_EverySample_Pass(string spec)
    {
        var validate = await CliRunner.RunAsync(CliRunner.Repo("."), "validate", "-f", spec);
        var config = await CliRunner.RunAsync(CliRunner.Repo("."), "config", "-f", spec, "-o", "json");

        Assert.True(validate.ExitCode == ExitCodes.Ok, validate.Stderr);
        Assert.StartsWith($"{spec}: valid", validate.Stdout, StringComparison.Ordinal);
        Assert.True(config.ExitCode == ExitCodes.Ok, config.Stderr);
        using var json = JsonDocument.Parse(config.Stdout);
        Assert.NotEmpty(json.RootElement.GetProperty("services").EnumerateObject());
    }
}
