namespace Berth.Cli.Tests.Kubernetes;

/// <summary><c>berth k8s …</c> as a user runs it: the real berth program in its own process, its exit code and its output.</summary>
public sealed class KubernetesCommandsTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("berth-cli-k8s-").FullName;

    /// <summary>No kubeconfig of the machine's: HOME is the temp folder and KUBECONFIG names a missing file.</summary>
    private BerthCli Cli => new(_dir)
    {
        Environment = { ["HOME"] = _dir, ["KUBECONFIG"] = Path.Combine(_dir, "no-kubeconfig"), ["KUBERNETES_SERVICE_HOST"] = null },
    };

    private async Task<(int Exit, string Stdout, string Stderr)> Berth(params string[] args)
    {
        var (code, stdout, stderr) = await Cli.RunAsync(args);
        return (code, stdout, stderr);
    }

    [Fact]
    public async Task Generate_ShopSample_WritesManifestsAndExitsZero()
    {
        var output = Path.Combine(_dir, "k8s");

        var (exit, stdout, stderr) = await Berth("k8s", "generate", "-f", Repository.Path("samples/shop/berth.yaml"), "-o", output, "--mesh", "istio");

        Assert.True(exit == 0, stderr);
        Assert.True(File.Exists(Path.Combine(output, "api-deployment.yaml")));
        Assert.True(File.Exists(Path.Combine(output, "api-virtualservice.yaml")));
        Assert.Contains(Path.Combine(output, "kustomization.yaml"), stdout.Split('\n'));
        Assert.Contains($"berth: wrote 23 objects to {output}", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Generate_UnknownMesh_ExitsWithUsage()
    {
        var (exit, _, stderr) = await Berth("k8s", "generate", "--mesh", "linkerd");

        Assert.Equal(ExitCodes.Usage, exit);
        Assert.Contains("Argument 'linkerd' not recognized", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Generate_MissingSpec_ExitsNotFound()
    {
        var (exit, _, stderr) = await Berth("k8s", "generate", "-f", "nope.yaml");

        Assert.Equal(ExitCodes.NotFound, exit);
        Assert.Contains("nope.yaml: no such file", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Apply_NoKubeconfig_ExitsUnavailableWithWhatToDo()
    {
        var (exit, _, stderr) = await Berth("k8s", "apply", "-f", Repository.Path("samples/shop/berth.yaml"));

        Assert.Equal(ExitCodes.Unavailable, exit);
        Assert.Contains("berth: no kubeconfig found: set KUBECONFIG or create ~/.kube/config", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", stderr, StringComparison.Ordinal); // no stack trace
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);
}
