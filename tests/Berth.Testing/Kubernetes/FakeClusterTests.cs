namespace Berth.Testing.Kubernetes;

/// <summary>A test class against the stand-in API server: a <see cref="FakeApiServer"/> per test and a kubeconfig naming it in a
/// temporary folder, set as the process-wide <c>KUBECONFIG</c> while the test runs (and restored after). Classes deriving from it
/// belong in <see cref="KubeconfigCollection"/>, since the variable is the process's.</summary>
public abstract class FakeClusterTests : IAsyncLifetime
{
    private string? _previousKubeconfig;

    /// <summary>The stand-in API server of the running test.</summary>
    protected FakeApiServer Server { get; private set; } = null!;

    /// <summary>The test's temporary folder (it holds the kubeconfig); deleted after the test.</summary>
    protected string Folder { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Server = await FakeApiServer.StartAsync();
        Folder = Directory.CreateTempSubdirectory("berth-k8s-").FullName;
        _previousKubeconfig = Environment.GetEnvironmentVariable("KUBECONFIG");
        Environment.SetEnvironmentVariable("KUBECONFIG", Server.WriteKubeconfig(Folder));
    }

    public async Task DisposeAsync()
    {
        Environment.SetEnvironmentVariable("KUBECONFIG", _previousKubeconfig);
        await Server.DisposeAsync();
        Directory.Delete(Folder, recursive: true);
    }
}

/// <summary>Tests that set the process-wide KUBECONFIG run one at a time.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class KubeconfigCollection
{
    public const string Name = "KUBECONFIG";
}
