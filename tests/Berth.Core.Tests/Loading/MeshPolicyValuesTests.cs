using Berth.Core.Loading;
using Berth.Core.Model;

namespace Berth.Core.Tests.Loading;

/// <summary>retries.on and hash_on: one parser (RetryConditions, HashKey) for the loader's errors and the mesh's typed values.</summary>
public class MeshPolicyValuesTests
{
    [Fact]
    public void Load_RetryOnWithGrpcStatusAndCode_TypedValueHasThem()
    {
        var result = SpecLoader.LoadText("""
            services:
              api:
                run: [api]
                mesh: {retries: {on: [connect-failure, unavailable, "429"]}, lb: consistent-hash, hash_on: "Cookie: session"}
            """, Path.Combine(Path.GetTempPath(), "berth.yaml"), new LoadOptions { Environment = new Dictionary<string, string>() });

        Assert.True(result.Succeeded, string.Join("\n", result.Diagnostics));
        var mesh = result.Application!.Services[0].Mesh;
        var on = mesh.Retries.Conditions!;
        Assert.True(on.ConnectFailure);
        Assert.False(on.Reset);
        Assert.Equal([429], on.Statuses.ToArray());
        Assert.Equal([14], on.GrpcStatuses.ToArray());
        Assert.Equal(new HashKey(HashSource.Cookie, "session"), mesh.HashKey);
    }

    [Theory]
    [InlineData("sometimes", false)]
    [InlineData("200", false)]
    [InlineData("399", false)]
    [InlineData("400", true)]
    [InlineData("599", true)]
    [InlineData("600", false)]
    [InlineData("Reset", true)]
    [InlineData("resource-exhausted", true)]
    public void IsValid_StatusRangeAndWords_SameRuleForLoaderAndMesh(string item, bool valid) =>
        Assert.Equal(valid, RetryConditions.IsValid(item));

    [Fact]
    public void Load_UnknownRetryCondition_ErrorSaysWhatIsAllowed()
    {
        var result = SpecLoader.LoadText("""
            services:
              api:
                run: [api]
                mesh: {retries: {on: [connect-failure, sometimes]}}
            """, Path.Combine(Path.GetTempPath(), "berth.yaml"), new LoadOptions { Environment = new Dictionary<string, string>() });

        Assert.Equal(
            ["4:26: services.api.mesh.retries.on: 'sometimes' is not a retry condition; use connect-failure, reset, gateway-error, 5xx, a status code such as 503, or a gRPC status such as unavailable"],
            result.Errors.Select(d => $"{d.Line}:{d.Column}: {d.Path}: {d.Message}"));
    }
}
