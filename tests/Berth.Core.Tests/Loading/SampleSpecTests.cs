
namespace Berth.Core.Tests.Loading;

public class SampleSpecTests
{
    private static readonly LoadOptions NoEnvironment = new() { Environment = new Dictionary<string, string>() };

    [Fact]
    public void LoadFile_ShopSample_LoadsFourServicesWithoutDiagnostics()
    {
        var result = SpecLoader.LoadFile(Repository.Path("samples/shop/berth.yaml"), NoEnvironment);

        Assert.Empty(result.Diagnostics);
        Assert.True(result.Succeeded);
        var app = result.Application!;
        Assert.Equal("shop", app.Name);
        Assert.Equal(["frontend", "api", "worker", "db"], app.Services.Select(s => s.Name));

        var api = app.FindService("api")!;
        Assert.Equal(RuntimeKind.Process, api.EffectiveRuntime);
        Assert.Equal(["dotnet", "app/out/Shop.dll", "api"], api.Command.ToArray());
        Assert.Equal(Repository.Path("samples/shop"), api.WorkingDir);
        Assert.Equal(Repository.Path("samples/shop"), api.Build!.WorkingDir);
        Assert.Equal(2, api.Replicas);
        Assert.Equal(7200, Assert.Single(api.Endpoints).Port);
        Assert.Equal(ProbeKind.Http, api.Readiness!.Kind);
        Assert.Equal("/healthz", api.Readiness.Path);
        Assert.Equal(TimeSpan.FromSeconds(2), api.Readiness.Period);
        Assert.Equal(ProbeDefaults.FailureThreshold, api.Readiness.FailureThreshold);
        Assert.Equal([new Dependency("worker", DependencyCondition.Healthy), new Dependency("db", DependencyCondition.Healthy)], api.DependsOn.ToArray());
        Assert.Equal(CpuQuantity.Parse("100m"), api.Resources.CpuRequest);
        Assert.Equal(ByteSize.Parse("256Mi"), api.Resources.MemoryLimit);
        Assert.Equal(IntOrPercent.Count(1), api.Update.MaxSurge);
        Assert.Equal(TimeSpan.FromSeconds(10), api.Mesh.Timeout);

        var db = app.FindService("db")!;
        Assert.Equal(EndpointProtocol.Tcp, db.Endpoints[0].Protocol);
        Assert.Equal(ProbeKind.Tcp, db.Readiness!.Kind);
        Assert.Equal(Path.Combine(Repository.Path("samples/shop")), db.Build!.Context);
        Assert.Equal(["dotnet", "build", "app/Shop.csproj", "-c", "Release", "-o", "app/out"], db.Build.Command.ToArray());
    }

    [Fact]
    public void LoadFile_ShopSampleWithDockerRuntime_RunsOnDocker()
    {
        var result = SpecLoader.LoadFile(Repository.Path("samples/shop/berth.yaml"),
            new LoadOptions { Environment = new Dictionary<string, string> { ["BERTH_RUNTIME"] = "docker" } });

        Assert.True(result.Succeeded, string.Join("\n", result.Diagnostics));
        Assert.All(result.Application!.Services, s => Assert.Equal(RuntimeKind.Docker, s.EffectiveRuntime));
        Assert.All(result.Application.Services, s => Assert.Equal("berth-shop:dev", s.Image));
    }
}
