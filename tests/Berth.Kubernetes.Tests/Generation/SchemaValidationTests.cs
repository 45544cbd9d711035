
namespace Berth.Kubernetes.Tests.Generation;

/// <summary>Runs SchemaValidator/validate.mjs over generated objects: kubernetes-models' published OpenAPI/CRD schemas, plus the
/// field lists of the official JavaScript client's models for unknown fields — validators independent of the C# client that wrote them.</summary>
public sealed class SchemaValidationTests
{
    private static readonly string ValidatorDirectory = Path.Combine(Path.GetDirectoryName(Snapshots.Root)!, "SchemaValidator");

    [NodeValidatorFact]
    public async Task Validate_EveryGeneratedObject_MatchesKubernetesAndIstioSchemas()
    {
        var dir = Path.Combine(Path.GetTempPath(), $"berth-k8s-schema-{Guid.NewGuid():N}");
        try
        {
            var variants = new (string Name, Application App, GenerateOptions Options)[]
            {
                ("shop", SampleApps.Shop(), new GenerateOptions()),
                ("shop-istio", SampleApps.Shop(), new GenerateOptions { Mesh = MeshTarget.Istio, Namespace = "shop-prod", IngressDomain = "example.com" }),
                ("autoscale-rps", SampleApps.Shop() with
                {
                    Services = [.. SampleApps.Shop().Services.Select(s => s.Name == "api" ? s with { Autoscale = new AutoscalePolicy { Max = 5, TargetRequestsPerSecond = 12.5 } } : s)],
                }, new GenerateOptions { Mesh = MeshTarget.Istio }),
            };
            var count = 0;
            foreach (var (name, app, options) in variants.Concat(ExtraCases()))
            {
                var set = ManifestGenerator.Generate(app, options);
                Assert.True(set.Succeeded, string.Join("\n", set.Errors));
                set.WriteTo(Path.Combine(dir, name));
                count += set.Objects.Length;
            }

            foreach (var (name, path) in SampleSpecSnapshotTests.Specs().Select(row => ((string)row[0], (string)row[1])))
            {
                var set = ManifestGenerator.Generate(SampleSpecSnapshotTests.Load(path), new GenerateOptions { Mesh = MeshTarget.Istio, Namespace = "berth-test" });
                Assert.True(set.Succeeded, string.Join("\n", set.Errors));
                set.WriteTo(Path.Combine(dir, $"{name}-istio"));
                count += set.Objects.Length;
            }

            var (exit, output) = await RunValidatorAsync(dir, Snapshots.Root);

            Assert.True(exit == 0, $"schema validation failed:\n{output}");
            var snapshotObjects = Directory.GetFiles(Snapshots.Root, "*.yaml", SearchOption.AllDirectories).Count(f => Path.GetFileName(f) != "kustomization.yaml");
            Assert.Contains($"validated {count + snapshotObjects} objects, 0 problems", output, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [NodeValidatorFact]
    public async Task Validate_BrokenObject_IsRejectedWithItsPath()
    {
        var dir = Path.Combine(Path.GetTempPath(), $"berth-k8s-schema-bad-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        try
        {
            File.WriteAllText(Path.Combine(dir, "bad.yaml"), """
                apiVersion: apps/v1
                kind: Deployment
                metadata:
                  name: bad
                spec:
                  selector: {}
                  template:
                    spec:
                      containers:
                      - name: a
                        image: b
                        ports:
                        - containerPort: http
                """);

            var (exit, output) = await RunValidatorAsync(dir);

            Assert.Equal(1, exit);
            Assert.Contains("Deployment/bad: data/spec/template/spec/containers/0/ports/0/containerPort must be integer", output, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [NodeValidatorFact]
    public async Task Validate_UnknownField_IsRejectedWithItsPath()
    {
        var dir = Path.Combine(Path.GetTempPath(), $"berth-k8s-schema-unknown-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        try
        {
            File.WriteAllText(Path.Combine(dir, "typo.yaml"), """
                apiVersion: v1
                kind: Service
                metadata:
                  name: typo
                spec:
                  ports:
                  - port: 80
                    targetPorts: http
                """);

            var (exit, output) = await RunValidatorAsync(dir);

            Assert.Equal(1, exit);
            Assert.Contains("Service/typo: data.spec.ports[0].targetPorts: unknown field (V1ServicePort has no 'targetPorts')", output, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [NodeValidatorFact]
    public async Task Validate_UnknownIstioField_IsRejectedWithItsPath()
    {
        var dir = Path.Combine(Path.GetTempPath(), $"berth-k8s-schema-istio-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        try
        {
            File.WriteAllText(Path.Combine(dir, "dr.yaml"), """
                apiVersion: networking.istio.io/v1
                kind: DestinationRule
                metadata:
                  name: api
                spec:
                  host: api
                  trafficPolicy:
                    connectionPool:
                      http:
                        http2MaxRequest: 10
                """);

            var (exit, output) = await RunValidatorAsync(dir);

            Assert.Equal(1, exit);
            Assert.Contains("DestinationRule/api: data.spec.trafficPolicy.connectionPool.http.http2MaxRequest: unknown field", output, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    // Every field-mapping case as an app of its own, so each mapped field is schema-checked too.
    private static IEnumerable<(string, Application, GenerateOptions)> ExtraCases()
    {
        var i = 0;
        foreach (var field in FieldMappingTests.Fields())
        {
            yield return ($"field-{i++}", FieldMappingTests.AppFor(field), new GenerateOptions { Mesh = MeshTarget.Istio });
        }
    }

    private static async Task<(int Exit, string Output)> RunValidatorAsync(params string[] dirs)
    {
        var start = new ProcessStartInfo("node") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = ValidatorDirectory };
        start.ArgumentList.Add(Path.Combine(ValidatorDirectory, "validate.mjs"));
        foreach (var dir in dirs)
        {
            start.ArgumentList.Add(dir);
        }

        using var process = Process.Start(start)!;
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        var stdout = process.StandardOutput.ReadToEndAsync(timeout.Token);
        var stderr = process.StandardError.ReadToEndAsync(timeout.Token);
        await process.WaitForExitAsync(timeout.Token);
        return (process.ExitCode, await stdout + await stderr);
    }
}
