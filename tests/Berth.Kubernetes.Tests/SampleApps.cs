
namespace Berth.Kubernetes.Tests;

/// <summary>Applications built in code, covering every field the generator maps.</summary>
internal static class SampleApps
{
    /// <summary>A shop: a public frontend, an autoscaled API with secrets and a canary, a built worker, Postgres and a 3-replica Redis.</summary>
    public static Application Shop() => new()
    {
        Name = "shop",
        BaseDirectory = "/src/shop",
        Volumes = ["pgdata", "redis-data"],
        Services =
        [
            new Service
            {
                Name = "frontend",
                Image = "ghcr.io/example/shop-frontend:1.4.2",
                Replicas = 2,
                Endpoints = [new Endpoint { Name = "http", Port = 8080, TargetPort = 80, Public = true }],
                Env = ImmutableSortedDictionary.CreateRange(new Dictionary<string, string>
                {
                    ["API_URL"] = "http://127.0.0.1:8081/v1",
                    ["LOG_LEVEL"] = "info",
                }),
                Resources = new Resources { CpuRequest = CpuQuantity.Parse("100m"), MemoryLimit = ByteSize.Parse("128Mi") },
                Readiness = new Probe { Kind = ProbeKind.Http, Path = "/healthz", Period = TimeSpan.FromSeconds(5) },
                Labels = ImmutableSortedDictionary.CreateRange(new Dictionary<string, string> { ["com.example.team"] = "web shop" }),
            },
            new Service
            {
                Name = "api",
                Image = "ghcr.io/example/shop-api:2.0.0",
                Command = ["dotnet", "Shop.Api.dll", "--urls", "http://+:5000"],
                Replicas = 3,
                Endpoints = [new Endpoint { Name = "http", Port = 8081, TargetPort = 5000 }],
                Env = ImmutableSortedDictionary.CreateRange(new Dictionary<string, string>
                {
                    ["ConnectionStrings__Db"] = "Host=127.0.0.1;Port=5432;Username=shop",
                    ["DB_PASSWORD"] = "s3cret-pw",
                    ["REDIS"] = "localhost:6379",
                }),
                SecretEnv = ["DB_PASSWORD"],
                Resources = new Resources
                {
                    CpuRequest = CpuQuantity.Parse("250m"),
                    CpuLimit = CpuQuantity.Parse("1"),
                    MemoryRequest = ByteSize.Parse("256Mi"),
                    MemoryLimit = ByteSize.Parse("512Mi"),
                },
                Liveness = new Probe { Kind = ProbeKind.Http, Path = "/live", InitialDelay = TimeSpan.FromSeconds(3), Period = TimeSpan.FromSeconds(15), Timeout = TimeSpan.FromSeconds(2), FailureThreshold = 4, Headers = ImmutableSortedDictionary.CreateRange(new Dictionary<string, string> { ["X-Probe"] = "berth" }) },
                Readiness = new Probe { Kind = ProbeKind.Http, Path = "/ready", SuccessThreshold = 2 },
                Startup = new Probe { Kind = ProbeKind.Tcp, Period = TimeSpan.FromSeconds(2), FailureThreshold = 30 },
                Update = new UpdateStrategy
                {
                    MaxSurge = IntOrPercent.Count(1),
                    MaxUnavailable = IntOrPercent.Count(0),
                    MinReady = TimeSpan.FromSeconds(5),
                    ProgressDeadline = TimeSpan.FromMinutes(3),
                    RevisionHistoryLimit = 5,
                },
                StopGracePeriod = TimeSpan.FromSeconds(20),
                Autoscale = new AutoscalePolicy { Min = 2, Max = 8, TargetCpuPercent = 70, ScaleDownStabilization = TimeSpan.FromMinutes(2) },
                Mesh = new MeshPolicy
                {
                    LoadBalancing = LoadBalancing.RoundRobin,
                    Timeout = TimeSpan.FromSeconds(10),
                    PerTryTimeout = TimeSpan.FromSeconds(2),
                    Retries = new RetryPolicy { Attempts = 3, On = ["connect-failure", "reset", "503"] },
                    OutlierDetection = new OutlierDetectionPolicy { Consecutive5xx = 7, ConsecutiveGatewayErrors = 3, BaseEjectionTime = TimeSpan.FromSeconds(45), MaxEjectionPercent = 30, Interval = TimeSpan.FromSeconds(5) },
                    Limits = new ConnectionLimits { MaxConnections = 200, MaxPendingRequests = 50, MaxRequests = 400 },
                    Split =
                    [
                        new TrafficSplit { Version = "version=v1", Weight = 90 },
                        new TrafficSplit { Version = "version=v2", Weight = 10, HeaderName = "X-Canary", HeaderValue = "true" },
                    ],
                },
            },
            new Service
            {
                Name = "worker",
                Build = new BuildSpec { Context = "/src/shop/worker" },
                Command = ["./worker", "--queue", "orders"],
                Env = ImmutableSortedDictionary.CreateRange(new Dictionary<string, string> { ["QUEUE_URL"] = "redis://127.0.0.1:6379/0" }),
                Volumes = [new VolumeMount { Type = VolumeType.Tmpfs, Target = "/tmp/work" }],
                Liveness = new Probe { Kind = ProbeKind.Exec, Command = ["/bin/sh", "-c", "test -f /tmp/work/alive"], Period = TimeSpan.FromMilliseconds(2500) },
                Update = new UpdateStrategy { Order = UpdateOrder.StopFirst, MaxUnavailable = IntOrPercent.Count(0) },
            },
            new Service
            {
                Name = "db",
                Image = "postgres:16",
                User = "999:999",
                Endpoints = [new Endpoint { Name = "postgres", Port = 5432, TargetPort = 5432, Protocol = EndpointProtocol.Tcp }],
                Env = ImmutableSortedDictionary.CreateRange(new Dictionary<string, string> { ["POSTGRES_PASSWORD"] = "s3cret-pw", ["POSTGRES_USER"] = "shop" }),
                SecretEnv = ["POSTGRES_PASSWORD"],
                Volumes =
                [
                    new VolumeMount { Type = VolumeType.Volume, Source = "pgdata", Target = "/var/lib/postgresql/data" },
                    new VolumeMount { Type = VolumeType.Bind, Source = "/src/shop/init.sql", Target = "/docker-entrypoint-initdb.d/init.sql", ReadOnly = true },
                ],
                Readiness = new Probe { Kind = ProbeKind.Exec, Command = ["pg_isready", "-U", "shop"], Period = TimeSpan.FromSeconds(5) },
            },
            new Service
            {
                Name = "cache",
                Image = "redis:7",
                Entrypoint = ["redis-server"],
                Command = ["--appendonly", "yes"],
                Replicas = 3,
                Endpoints = [new Endpoint { Name = "redis", Port = 6379, TargetPort = 6379, Protocol = EndpointProtocol.Tcp }],
                Volumes = [new VolumeMount { Type = VolumeType.Volume, Source = "redis-data", Target = "/data" }],
                Mesh = new MeshPolicy { LoadBalancing = LoadBalancing.ConsistentHash, HashOn = "header:X-User" },
            },
        ],
    };
}
