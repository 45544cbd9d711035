
namespace Berth.Cli.Tests.Spec;

/// <summary>berth validate and berth config on the shop sample and every real-world Compose file in samples/compose.</summary>
public class SampleCommandsTests
{
    public static TheoryData<string> Samples() => Repository.SampleSpecs();

    [Theory]
    [MemberData(nameof(Samples))]
    public async Task ValidateAndConfig_EverySample_Pass(string spec)
    {
        var validate = await new BerthCli(Repository.Path(".")).RunAsync("validate", "-f", spec);
        var config = await new BerthCli(Repository.Path(".")).RunAsync("config", "-f", spec, "-o", "json");

        Assert.True(validate.Code == ExitCodes.Ok, validate.Err);
        Assert.StartsWith($"{spec}: valid", validate.Out, StringComparison.Ordinal);
        Assert.True(config.Code == ExitCodes.Ok, config.Err);
        using var json = JsonDocument.Parse(config.Out);
        Assert.NotEmpty(json.RootElement.GetProperty("services").EnumerateObject());
    }
}
