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

        var (exit, stdout, stderr) = await Berth("k8s", "generate", "-f", Repository.Path("samples/shop/berth.yaml"), "-d", output, "--mesh", "istio");

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
        Assert.Equal("berth k8s generate: --mesh wants one of none, istio; not 'linkerd'\nRun 'berth k8s generate --help' for usage.\n", stderr);
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

    [Fact]
    public async Task GenerateHelm_OutputDir_WritesAChart()
    {
        var chart = Path.Combine(_dir, "chart");

        var (exit, _, stderr) = await Berth("k8s", "generate", "-f", Repository.Path("samples/shop/berth.yaml"), "--format", "helm", "-d", chart);

        Assert.True(exit == 0, stderr);
        Assert.True(File.Exists(Path.Combine(chart, "Chart.yaml")));
        Assert.True(File.Exists(Path.Combine(chart, "values.yaml")));
        Assert.True(File.Exists(Path.Combine(chart, "templates", "api-deployment.yaml")));
    }

    [Fact]
    public async Task Generate_OutputFormat_PrintsManifestsOnStdoutAndWritesNoFolder()
    {
        var yaml = await Berth("k8s", "generate", "-f", Repository.Path("samples/shop/berth.yaml"), "-o", "yaml");
        var json = await Berth("k8s", "generate", "-f", Repository.Path("samples/shop/berth.yaml"), "-o", "json");
        var bad = await Berth("k8s", "generate", "-f", Repository.Path("samples/shop/berth.yaml"), "-o", "out");

        Assert.True(yaml.Exit == 0, yaml.Stderr);
        Assert.StartsWith("apiVersion: ", yaml.Stdout, StringComparison.Ordinal);
        Assert.True(json.Exit == 0, json.Stderr);
        using var list = JsonDocument.Parse(json.Stdout);
        Assert.Equal("List", list.RootElement.GetProperty("kind").GetString());
        var kinds = list.RootElement.GetProperty("items").EnumerateArray().Select(i => i.GetProperty("kind").GetString()).ToList();
        Assert.Equal(yaml.Stdout.Split("---\n").Length, kinds.Count);
        Assert.Contains("Deployment", kinds);
        Assert.False(Directory.Exists(Path.Combine(_dir, "json")) || Directory.Exists(Path.Combine(_dir, "yaml")), "-o is a format, never a folder");
        Assert.Equal(ExitCodes.Usage, bad.Exit);
        Assert.Equal("berth k8s generate: --output wants one of yaml, json; not 'out'\nRun 'berth k8s generate --help' for usage.\n", bad.Stderr);
    }

    [Fact]
    public async Task Diff_SpecError_ExitsAboveOneSoItDoesNotReadAsDifferences()
    {
        File.WriteAllText(Path.Combine(_dir, "berth.yaml"), "name: demo\nservices:\n  api:\n    replicas: -1\n");

        var (exit, _, _) = await Berth("k8s", "diff", "-f", Path.Combine(_dir, "berth.yaml"));

        Assert.Equal(ExitCodes.Failed, exit);
    }

    [Fact]
    public async Task Help_DryRunAndNamespace_SayWhatADryRunDoesWithAMissingNamespace()
    {
        var (exit, stdout, _) = await Berth("k8s", "apply", "--help");

        Assert.Equal(0, exit);
        var text = string.Join(' ', stdout.Split((char[])[' ', '\n'], StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains("objects bound for a namespace that does not exist yet are reported as not checked", text, StringComparison.Ordinal);
        Assert.Contains("(created if missing, except by --dry-run)", text, StringComparison.Ordinal);
        Assert.DoesNotContain("admits everything", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Delete_WaitFalse_Parses()
    {
        var (exit, _, stderr) = await Berth("k8s", "delete", "-f", Repository.Path("samples/shop/berth.yaml"), "--wait=false");

        Assert.Equal(ExitCodes.Unavailable, exit); // parsed, then no kubeconfig
        Assert.Contains("no kubeconfig found", stderr, StringComparison.Ordinal);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);
}
