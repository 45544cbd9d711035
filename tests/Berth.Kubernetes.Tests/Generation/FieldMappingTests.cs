
namespace Berth.Kubernetes.Tests.Generation;

/// <summary>Each spec field, set to a value other than its default, and the Kubernetes or Istio field it becomes.
/// Paths use '~' for a '.' inside a key.</summary>
public sealed class FieldMappingTests
{
    private static readonly Service Api = new()
    {
        Name = "api",
        Image = "example/api:1",
        Endpoints = [new Endpoint { Name = "http", Port = 8081, TargetPort = 5000 }],
    };

    private const string Container = "spec.template.spec.containers[0]";

    private static readonly Dictionary<string, (Func<Service, Service> Set, string Object, string Path, string Expected)> Cases = new()
    {
        // what runs
        ["image"] = (s => s with { Image = "example/api:2" }, "Deployment/api", $"{Container}.image", "example/api:2"),
        ["run (command)"] = (s => s with { Command = ["serve", "--fast"] }, "Deployment/api", $"{Container}.args[1]", "--fast"),
        ["entrypoint"] = (s => s with { Entrypoint = ["/app/start"] }, "Deployment/api", $"{Container}.command[0]", "/app/start"),
        ["shell"] = (s => s with { Command = ["echo hi && serve"], Shell = true }, "Deployment/api", $"{Container}.args[0]", "echo hi && serve"),
        ["working_dir"] = (s => s with { WorkingDir = "/srv" }, "Deployment/api", $"{Container}.workingDir", "/srv"),
        ["user"] = (s => s with { User = "1000:2000" }, "Deployment/api", $"{Container}.securityContext.runAsGroup", "2000"),
        ["replicas"] = (s => s with { Replicas = 4 }, "Deployment/api", "spec.replicas", "4"),
        ["labels"] = (s => s with { Labels = ImmutableSortedDictionary<string, string>.Empty.Add("team", "core") }, "Deployment/api", "metadata.annotations.team", "core"),

        // probes
        ["liveness.path"] = (s => s with { Liveness = new Probe { Kind = ProbeKind.Http, Path = "/live" } }, "Deployment/api", $"{Container}.livenessProbe.httpGet.path", "/live"),
        ["liveness.endpoint"] = (s => s with { Liveness = new Probe { Kind = ProbeKind.Http } }, "Deployment/api", $"{Container}.livenessProbe.httpGet.port", "http"),
        ["liveness.port"] = (s => s with { Liveness = new Probe { Kind = ProbeKind.Http, Port = 9090 } }, "Deployment/api", $"{Container}.livenessProbe.httpGet.port", "9090"),
        ["liveness.headers"] = (s => s with { Liveness = new Probe { Kind = ProbeKind.Http, Headers = ImmutableSortedDictionary<string, string>.Empty.Add("X-Probe", "1") } }, "Deployment/api", $"{Container}.livenessProbe.httpGet.httpHeaders[0].name", "X-Probe"),
        ["liveness.initial_delay"] = (s => s with { Liveness = new Probe { Kind = ProbeKind.Http, InitialDelay = TimeSpan.FromSeconds(7) } }, "Deployment/api", $"{Container}.livenessProbe.initialDelaySeconds", "7"),
        ["liveness.period"] = (s => s with { Liveness = new Probe { Kind = ProbeKind.Http, Period = TimeSpan.FromSeconds(30) } }, "Deployment/api", $"{Container}.livenessProbe.periodSeconds", "30"),
        ["liveness.timeout"] = (s => s with { Liveness = new Probe { Kind = ProbeKind.Http, Timeout = TimeSpan.FromSeconds(4) } }, "Deployment/api", $"{Container}.livenessProbe.timeoutSeconds", "4"),
        ["liveness.failure_threshold"] = (s => s with { Liveness = new Probe { Kind = ProbeKind.Http, FailureThreshold = 6 } }, "Deployment/api", $"{Container}.livenessProbe.failureThreshold", "6"),
        ["readiness.success_threshold"] = (s => s with { Readiness = new Probe { Kind = ProbeKind.Http, SuccessThreshold = 2 } }, "Deployment/api", $"{Container}.readinessProbe.successThreshold", "2"),
        ["readiness (tcp)"] = (s => s with { Readiness = new Probe { Kind = ProbeKind.Tcp } }, "Deployment/api", $"{Container}.readinessProbe.tcpSocket.port", "http"),
        ["startup (exec)"] = (s => s with { Startup = new Probe { Kind = ProbeKind.Exec, Command = ["cat", "/ready"] } }, "Deployment/api", $"{Container}.startupProbe.exec.command[1]", "/ready"),

        // resources
        ["resources.cpu request"] = (s => s with { Resources = new Resources { CpuRequest = CpuQuantity.Parse("0.25") } }, "Deployment/api", $"{Container}.resources.requests.cpu", "250m"),
        ["resources.cpu limit"] = (s => s with { Resources = new Resources { CpuLimit = CpuQuantity.Parse("2") } }, "Deployment/api", $"{Container}.resources.limits.cpu", "2"),
        ["resources.memory request"] = (s => s with { Resources = new Resources { MemoryRequest = ByteSize.Parse("64Mi") } }, "Deployment/api", $"{Container}.resources.requests.memory", "64Mi"),
        ["resources.memory limit"] = (s => s with { Resources = new Resources { MemoryLimit = ByteSize.Parse("1Gi") } }, "Deployment/api", $"{Container}.resources.limits.memory", "1Gi"),

        // update strategy
        ["update.max_surge"] = (s => s with { Update = new UpdateStrategy { MaxSurge = IntOrPercent.Count(2) } }, "Deployment/api", "spec.strategy.rollingUpdate.maxSurge", "2"),
        ["update.max_unavailable"] = (s => s with { Update = new UpdateStrategy { MaxUnavailable = IntOrPercent.Percent(50) } }, "Deployment/api", "spec.strategy.rollingUpdate.maxUnavailable", "50%"),
        ["update.order stop-first"] = (s => s with { Update = new UpdateStrategy { Order = UpdateOrder.StopFirst } }, "Deployment/api", "spec.strategy.rollingUpdate.maxSurge", "0"),
        ["update.min_ready"] = (s => s with { Update = new UpdateStrategy { MinReady = TimeSpan.FromSeconds(12) } }, "Deployment/api", "spec.minReadySeconds", "12"),
        ["update.progress_deadline"] = (s => s with { Update = new UpdateStrategy { ProgressDeadline = TimeSpan.FromMinutes(2) } }, "Deployment/api", "spec.progressDeadlineSeconds", "120"),
        ["update.revision_history_limit"] = (s => s with { Update = new UpdateStrategy { RevisionHistoryLimit = 3 } }, "Deployment/api", "spec.revisionHistoryLimit", "3"),
        ["stop_grace_period"] = (s => s with { StopGracePeriod = TimeSpan.FromSeconds(45) }, "Deployment/api", "spec.template.spec.terminationGracePeriodSeconds", "45"),

        // env
        ["environment (plain)"] = (s => s with { Env = ImmutableSortedDictionary<string, string>.Empty.Add("MODE", "fast") }, "ConfigMap/api-env", "data.MODE", "fast"),
        ["environment (referenced)"] = (s => s with { Env = ImmutableSortedDictionary<string, string>.Empty.Add("MODE", "fast") }, "Deployment/api", $"{Container}.envFrom[0].configMapRef.name", "api-env"),
        ["environment (secret)"] = (s => s with { Env = ImmutableSortedDictionary<string, string>.Empty.Add("TOKEN", "abc"), SecretEnv = ["TOKEN"] }, "Secret/api-env", "data.TOKEN", "YWJj"),
        ["environment (secret referenced)"] = (s => s with { Env = ImmutableSortedDictionary<string, string>.Empty.Add("TOKEN", "abc"), SecretEnv = ["TOKEN"] }, "Deployment/api", $"{Container}.envFrom[1].secretRef.name", "api-env"),

        // ports
        ["endpoints.port"] = (s => s, "Service/api", "spec.ports[0].port", "8081"),
        ["endpoints.target_port"] = (s => s, "Deployment/api", $"{Container}.ports[0].containerPort", "5000"),
        ["endpoints.name"] = (s => s, "Service/api", "spec.ports[0].targetPort", "http"),
        ["endpoints.protocol"] = (s => s with { Endpoints = [new Endpoint { Name = "redis", Port = 6379, Protocol = EndpointProtocol.Tcp }] }, "Service/api", "spec.ports[0].appProtocol", "tcp"),
        ["endpoints.public"] = (s => s with { Endpoints = [new Endpoint { Name = "web", Port = 80, Public = true }] }, "Ingress/api", "spec.rules[0].http.paths[0].backend.service.port.name", "web"),
        ["endpoints.public (tcp)"] = (s => s with { Endpoints = [new Endpoint { Name = "db", Port = 5433, TargetPort = 5432, Protocol = EndpointProtocol.Tcp, Public = true }] }, "Service/api-public", "spec.type", "LoadBalancer"),
        ["endpoints.public (tcp port)"] = (s => s with { Endpoints = [new Endpoint { Name = "db", Port = 5433, TargetPort = 5432, Protocol = EndpointProtocol.Tcp, Public = true }] }, "Service/api-public", "spec.ports[0].port", "5433"),

        // volumes
        ["volumes (named)"] = (s => s with { Volumes = [new VolumeMount { Source = "data", Target = "/data" }] }, "PersistentVolumeClaim/data", "spec.accessModes[0]", "ReadWriteOnce"),
        ["volumes (named, mounted)"] = (s => s with { Volumes = [new VolumeMount { Source = "data", Target = "/data", ReadOnly = true }] }, "Deployment/api", $"{Container}.volumeMounts[0].readOnly", "true"),
        ["volumes (named, per replica)"] = (s => s with { Replicas = 3, Volumes = [new VolumeMount { Source = "data", Target = "/data" }] }, "StatefulSet/api", "spec.volumeClaimTemplates[0].metadata.name", "data"),
        ["volumes (tmpfs)"] = (s => s with { Volumes = [new VolumeMount { Type = VolumeType.Tmpfs, Target = "/tmp" }] }, "Deployment/api", "spec.template.spec.volumes[0].emptyDir.medium", "Memory"),

        // autoscale and disruption
        ["autoscale.min"] = (s => s with { Autoscale = new AutoscalePolicy { Min = 2, Max = 9 } }, "HorizontalPodAutoscaler/api", "spec.minReplicas", "2"),
        ["autoscale.max"] = (s => s with { Autoscale = new AutoscalePolicy { Min = 2, Max = 9 } }, "HorizontalPodAutoscaler/api", "spec.maxReplicas", "9"),
        ["autoscale.target_cpu"] = (s => s with { Autoscale = new AutoscalePolicy { Max = 9, TargetCpuPercent = 65 } }, "HorizontalPodAutoscaler/api", "spec.metrics[0].resource.target.averageUtilization", "65"),
        ["autoscale.target_rps"] = (s => s with { Autoscale = new AutoscalePolicy { Max = 9, TargetRequestsPerSecond = 12.5 } }, "HorizontalPodAutoscaler/api", "spec.metrics[0].pods.target.averageValue", "12500m"),
        ["autoscale.scale_down_stabilization"] = (s => s with { Autoscale = new AutoscalePolicy { Max = 9, ScaleDownStabilization = TimeSpan.FromMinutes(1) } }, "HorizontalPodAutoscaler/api", "spec.behavior.scaleDown.stabilizationWindowSeconds", "60"),
        ["autoscale (replicas left to the HPA)"] = (s => s with { Replicas = 3, Autoscale = new AutoscalePolicy { Max = 9 } }, "Deployment/api", "spec.replicas", null!),
        ["replicas 2+ (disruption budget)"] = (s => s with { Replicas = 2 }, "PodDisruptionBudget/api", "spec.maxUnavailable", "1"),

        // mesh policy → Istio
        ["mesh.load_balancing"] = (s => s with { Mesh = new MeshPolicy { LoadBalancing = LoadBalancing.Random } }, "DestinationRule/api", "spec.trafficPolicy.loadBalancer.simple", "RANDOM"),
        ["mesh.hash_on"] = (s => s with { Mesh = new MeshPolicy { LoadBalancing = LoadBalancing.ConsistentHash, HashOn = "cookie:sid" } }, "DestinationRule/api", "spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.name", "sid"),
        ["mesh.limits.max_connections"] = (s => s with { Mesh = new MeshPolicy { Limits = new ConnectionLimits { MaxConnections = 77 } } }, "DestinationRule/api", "spec.trafficPolicy.connectionPool.tcp.maxConnections", "77"),
        ["mesh.limits.max_pending_requests"] = (s => s with { Mesh = new MeshPolicy { Limits = new ConnectionLimits { MaxPendingRequests = 33 } } }, "DestinationRule/api", "spec.trafficPolicy.connectionPool.http.http1MaxPendingRequests", "33"),
        ["mesh.limits.max_requests"] = (s => s with { Mesh = new MeshPolicy { Limits = new ConnectionLimits { MaxRequests = 99 } } }, "DestinationRule/api", "spec.trafficPolicy.connectionPool.http.http2MaxRequests", "99"),
        ["mesh.outlier_detection.consecutive_5xx"] = (s => s with { Mesh = new MeshPolicy { OutlierDetection = new OutlierDetectionPolicy { Consecutive5xx = 9 } } }, "DestinationRule/api", "spec.trafficPolicy.outlierDetection.consecutive5xxErrors", "9"),
        ["mesh.outlier_detection.consecutive_gateway_errors"] = (s => s with { Mesh = new MeshPolicy { OutlierDetection = new OutlierDetectionPolicy { ConsecutiveGatewayErrors = 4 } } }, "DestinationRule/api", "spec.trafficPolicy.outlierDetection.consecutiveGatewayErrors", "4"),
        ["mesh.outlier_detection.base_ejection_time"] = (s => s with { Mesh = new MeshPolicy { OutlierDetection = new OutlierDetectionPolicy { BaseEjectionTime = TimeSpan.FromSeconds(90) } } }, "DestinationRule/api", "spec.trafficPolicy.outlierDetection.baseEjectionTime", "1m30s"),
        ["mesh.outlier_detection.interval"] = (s => s with { Mesh = new MeshPolicy { OutlierDetection = new OutlierDetectionPolicy { Interval = TimeSpan.FromSeconds(3) } } }, "DestinationRule/api", "spec.trafficPolicy.outlierDetection.interval", "3s"),
        ["mesh.outlier_detection.max_ejection_percent"] = (s => s with { Mesh = new MeshPolicy { OutlierDetection = new OutlierDetectionPolicy { MaxEjectionPercent = 20 } } }, "DestinationRule/api", "spec.trafficPolicy.outlierDetection.maxEjectionPercent", "20"),
        ["mesh.outlier_detection.enabled false"] = (s => s with { Mesh = new MeshPolicy { OutlierDetection = new OutlierDetectionPolicy { Enabled = false } } }, "DestinationRule/api", "spec.trafficPolicy.outlierDetection", null!),
        ["mesh.timeout"] = (s => s with { Mesh = new MeshPolicy { Timeout = TimeSpan.FromSeconds(4) } }, "VirtualService/api", "spec.http[0].timeout", "4s"),
        ["mesh.per_try_timeout"] = (s => s with { Mesh = new MeshPolicy { PerTryTimeout = TimeSpan.FromMilliseconds(750) } }, "VirtualService/api", "spec.http[0].retries.perTryTimeout", "750ms"),
        ["mesh.retries.attempts"] = (s => s with { Mesh = new MeshPolicy { Retries = new RetryPolicy { Attempts = 5 } } }, "VirtualService/api", "spec.http[0].retries.attempts", "5"),
        ["mesh.retries.on"] = (s => s with { Mesh = new MeshPolicy { Retries = new RetryPolicy { On = ["reset", "503"] } } }, "VirtualService/api", "spec.http[0].retries.retryOn", "reset,503"),
        ["mesh.split.weight"] = (s => s with { Mesh = new MeshPolicy { Split = [new TrafficSplit { Version = "version=v1", Weight = 80 }, new TrafficSplit { Version = "version=v2", Weight = 20 }] } }, "VirtualService/api", "spec.http[0].route[1].weight", "20"),
        ["mesh.split.version"] = (s => s with { Mesh = new MeshPolicy { Split = [new TrafficSplit { Version = "version=v2", Weight = 100 }] } }, "DestinationRule/api", "spec.subsets[0].labels.version", "v2"),
        ["mesh.split.header"] = (s => s with { Mesh = new MeshPolicy { Split = [new TrafficSplit { Version = "version=v1", Weight = 100 }, new TrafficSplit { Version = "version=v2", HeaderName = "X-Canary", HeaderValue = "on" }] } }, "VirtualService/api", "spec.http[0].match[0].headers.x-canary.exact", "on"),
    };

    public static TheoryData<string> Fields() => [.. Cases.Keys];

    internal static Application AppFor(string field) => new() { Name = "demo", Services = [Cases[field].Set(Api)] };

    [Theory]
    [MemberData(nameof(Fields))]
    public void Generate_SpecField_BecomesKubernetesField(string field)
    {
        var (_, objectRef, path, expected) = Cases[field];
        var app = AppFor(field);

        var manifests = ManifestGenerator.Generate(app, new GenerateOptions { Mesh = MeshTarget.Istio });

        Assert.True(manifests.Succeeded, string.Join("\n", manifests.Errors));
        var (kind, name) = (objectRef.Split('/')[0], objectRef.Split('/')[1]);
        var obj = manifests.Find(kind, name);
        Assert.True(obj is not null, $"no {objectRef} among {string.Join(", ", manifests.Objects.Select(o => $"{o.Kind}/{o.Name}"))}");
        Assert.Equal(expected, Yaml.Get(obj.ToYaml(), path));
    }

    [Fact]
    public void Generate_DefaultField_DiffersFromEveryMappedValue()
    {
        // Guards the table above: each case must change what is written, or it proves nothing.
        var baseline = ManifestGenerator.Generate(new Application { Name = "demo", Services = [Api] }, new GenerateOptions { Mesh = MeshTarget.Istio });
        foreach (var (field, (_, objectRef, path, expected)) in Cases)
        {
            var (kind, name) = (objectRef.Split('/')[0], objectRef.Split('/')[1]);
            var before = baseline.Find(kind, name) is { } o ? Yaml.Get(o.ToYaml(), path) : null;
            if (field is "endpoints.port" or "endpoints.target_port" or "endpoints.name" or "environment (referenced)")
            {
                continue; // the base service already sets these (and BERTH_SERVICE always fills the ConfigMap)
            }

            Assert.True(before != expected, $"{field}: the default already writes {expected} at {objectRef} {path}");
        }
    }
}
