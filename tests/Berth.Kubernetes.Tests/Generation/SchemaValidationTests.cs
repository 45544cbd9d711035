
namespace Berth.Kubernetes.Tests.Generation;

/// <summary>Runs SchemaValidator/validate.mjs over generated objects: kubernetes-models' published OpenAPI/CRD schemas, plus the
/// field lists of the official JavaScript client's models for unknown fields — validators independent of the C# client that wrote them.</summary>
public sealed class SchemaValidationTests
{
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

    // Each row: a manifest the validator must reject, and the problem line it must print for it.
    public static TheoryData<string, string, string> RejectedObjects() => new()
    {
        {
            "bad.yaml",
            """
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
            """,
            "Deployment/bad: data/spec/template/spec/containers/0/ports/0/containerPort must be integer"
        },
        {
            "typo.yaml",
            """
            apiVersion: v1
            kind: Service
            metadata:
              name: typo
            spec:
              ports:
              - port: 80
                targetPorts: http
            """,
            "Service/typo: data.spec.ports[0].targetPorts: unknown field (V1ServicePort has no 'targetPorts')"
        },
        {
            "dr.yaml",
            """
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
            """,
            "DestinationRule/api: data.spec.trafficPolicy.connectionPool.http.http2MaxRequest: unknown field"
        },
    };

    [NodeValidatorTheory]
    [MemberData(nameof(RejectedObjects))]
    public async Task Validate_BrokenOrUnknownField_IsRejectedWithItsPath(string file, string yaml, string expected)
    {
        using var dir = new TempFolder("berth-k8s-schema-bad-");
        dir.Write(file, yaml);

        var (exit, output) = await RunValidatorAsync(dir.Path);

        Assert.Equal(1, exit);
        Assert.Contains(expected, output, StringComparison.Ordinal);
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
        var (exit, stdout, stderr) = await SchemaValidatorScript.RunAsync("validate.mjs", dirs);
        return (exit, stdout + stderr);
    }
}
