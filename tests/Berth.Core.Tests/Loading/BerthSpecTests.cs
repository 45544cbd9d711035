
namespace Berth.Core.Tests.Loading;

/// <summary>How each berth.yaml construct lands in the model.</summary>
public class BerthSpecTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("berth-spec-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private Application Load(string yaml, Dictionary<string, string>? env = null)
    {
        var file = Path.Combine(_dir, "berth.yaml");
        File.WriteAllText(file, yaml);
        var result = SpecLoader.LoadFile(file, new LoadOptions { Environment = env ?? [] });
        Assert.True(result.Succeeded, string.Join("\n", result.Diagnostics));
        Assert.Empty(result.Diagnostics);
        return result.Application!;
    }

    [Fact]
    public void Defaults_AreKubernetesAndBerthDefaults()
    {
        var s = Load("services:\n  web:\n    run: [app]\n").Services[0];

        Assert.Equal(RuntimeKind.Process, s.EffectiveRuntime);
        Assert.Equal(1, s.Replicas);
        Assert.Equal(RestartPolicy.Default, s.Restart);
        Assert.Equal(RestartMode.Always, s.Restart.Mode);
        Assert.Equal(UpdateStrategy.Default, s.Update);
        Assert.Equal(MeshPolicy.Default, s.Mesh);
        Assert.Null(s.Readiness);
        Assert.Equal(_dir, s.WorkingDir);
    }

    [Fact]
    public void Probes_EveryForm_MapsWithKubernetesDefaults()
    {
        var s = Load("""
            services:
              db:
                run: [db]
                endpoints:
                  main: {port: 5432, protocol: tcp}
                  metrics: 9187
                probes:
                  startup: {tcp: 5432, period: 1s, failure_threshold: 30}
                  readiness: {tcp: metrics}
                  liveness:
                    http: {path: /live, endpoint: metrics, headers: {X-Probe: "1"}}
                    initial_delay: 5s
                    timeout: 2s
            """).Services[0];

        Assert.Equal(new Probe { Kind = ProbeKind.Tcp, Port = 5432, Period = TimeSpan.FromSeconds(1), FailureThreshold = 30 }, s.Startup);
        Assert.Equal(new Probe { Kind = ProbeKind.Tcp, Endpoint = "metrics" }, s.Readiness);
        Assert.Equal((ProbeKind.Http, "/live", "metrics", "1", TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(2), ProbeDefaults.Period, 1, 3),
            (s.Liveness!.Kind, s.Liveness.Path, s.Liveness.Endpoint, s.Liveness.Headers["X-Probe"], s.Liveness.InitialDelay, s.Liveness.Timeout,
             s.Liveness.Period, s.Liveness.SuccessThreshold, s.Liveness.FailureThreshold));
    }

    [Fact]
    public void ExecProbe_StringIsSplitIntoArgv()
    {
        var s = Load("services:\n  db:\n    run: [db]\n    probes:\n      readiness: {exec: \"pg_isready -U 'the user'\"}\n").Services[0];

        Assert.Equal(["pg_isready", "-U", "the user"], s.Readiness!.Command.ToArray());
    }

    [Fact]
    public void Endpoints_ShortAndLongForms()
    {
        var s = Load("""
            services:
              web:
                image: web:1
                endpoints:
                  http: 8080
                  admin: {port: 9000, target_port: 90, public: true, host_ip: 127.0.0.5}
                  internal: {protocol: tcp}
            """).Services[0];

        Assert.Equal(
        [
            new Endpoint { Name = "http", Port = 8080 },
            new Endpoint { Name = "admin", Port = 9000, TargetPort = 90, Public = true, HostIp = "127.0.0.5" },
            new Endpoint { Name = "internal", Protocol = EndpointProtocol.Tcp },
        ], s.Endpoints.ToArray());
    }

    [Fact]
    public void RestartUpdateRollback_MappingForms()
    {
        var s = Load("""
            services:
              web:
                run: [app]
                restart: {mode: on-failure, max_attempts: 5, backoff: 2s, max_backoff: 1m, reset_after: 5m}
                update: {max_surge: 2, max_unavailable: 10%, min_ready: 5s, progress_deadline: 2m, auto_rollback: false, order: stop-first}
                rollback: {max_surge: 100%, max_unavailable: 0}
            """).Services[0];

        Assert.Equal(new RestartPolicy { Mode = RestartMode.OnFailure, MaxAttempts = 5, InitialBackoff = TimeSpan.FromSeconds(2), MaxBackoff = TimeSpan.FromMinutes(1), ResetAfter = TimeSpan.FromMinutes(5) }, s.Restart);
        Assert.Equal(UpdateStrategy.Default with
        {
            MaxSurge = IntOrPercent.Count(2), MaxUnavailable = IntOrPercent.Percent(10), MinReady = TimeSpan.FromSeconds(5),
            ProgressDeadline = TimeSpan.FromMinutes(2), AutoRollback = false, Order = UpdateOrder.StopFirst,
        }, s.Update);
        Assert.Equal(UpdateStrategy.Default with { MaxSurge = IntOrPercent.Percent(100), MaxUnavailable = IntOrPercent.Count(0) }, s.Rollback);
    }

    [Fact]
    public void Mesh_EverySection_Maps()
    {
        var m = Load("""
            services:
              web:
                run: [app]
                mesh:
                  lb: consistent-hash
                  hash_on: header:X-User
                  timeout: none
                  per_try_timeout: 500ms
                  retries: {attempts: 3, on: [connect-failure, "503"], non_idempotent: true, max_buffered_body: 64Ki, budget_ratio: 0.1}
                  circuit_breaker: {consecutive_failures: 7, break_duration: 10s}
                  outlier_detection: {enabled: false}
                  limits: {max_connections: 10, max_pending_requests: 0, max_requests: 20}
                  split:
                    - {version: "3", weight: 90}
                    - {version: "version=v2", weight: 10}
                    - {version: "4", header: "X-Canary: true"}
                  access_log: true
            """).Services[0].Mesh;

        Assert.Equal((LoadBalancing.ConsistentHash, "header:X-User", (TimeSpan?)null, (TimeSpan?)TimeSpan.FromMilliseconds(500), true),
            (m.LoadBalancing, m.HashOn, m.Timeout, m.PerTryTimeout, m.AccessLog));
        Assert.Equal(RetryPolicy.Default with { Attempts = 3, NonIdempotent = true, MaxBufferedBody = new ByteSize(64 * 1024), BudgetRatio = 0.1 },
            m.Retries with { On = RetryPolicy.Default.On });
        Assert.Equal(["connect-failure", "503"], m.Retries.On.ToArray());
        Assert.Equal(CircuitBreakerPolicy.Default with { ConsecutiveFailures = 7, BreakDuration = TimeSpan.FromSeconds(10) }, m.CircuitBreaker);
        Assert.False(m.OutlierDetection.Enabled);
        Assert.Equal(new ConnectionLimits { MaxConnections = 10, MaxPendingRequests = 0, MaxRequests = 20 }, m.Limits);
        Assert.Equal(
        [
            new TrafficSplit { Version = "3", Weight = 90 },
            new TrafficSplit { Version = "version=v2", Weight = 10 },
            new TrafficSplit { Version = "4", HeaderName = "X-Canary", HeaderValue = "true" },
        ], m.Split.ToArray());
    }

    [Fact]
    public void Autoscale_CpuPercentWithOrWithoutSign()
    {
        var app = Load("""
            services:
              a:
                run: [a]
                resources: {requests: {cpu: 250m}}
                autoscale: {min: 2, max: 8, target_cpu: 70%}
              b:
                run: [b]
                autoscale: {max: 3, target_rps: 150.5, scale_down_stabilization: 1m}
            """);

        Assert.Equal(new AutoscalePolicy { Min = 2, Max = 8, TargetCpuPercent = 70 }, app.Services[0].Autoscale);
        Assert.Equal(new AutoscalePolicy { Min = 1, Max = 3, TargetRequestsPerSecond = 150.5, ScaleDownStabilization = TimeSpan.FromMinutes(1) }, app.Services[1].Autoscale);
    }

    [Fact]
    public void Secrets_GoIntoEnvAndAreMarkedSecret()
    {
        var s = Load("""
            services:
              web:
                run: [app]
                environment: {MODE: prod, TOKEN: t0k3n}
                secrets:
                  DB_PASSWORD: ${DB_PASSWORD}
                secret_env: [TOKEN]
            """, new() { ["DB_PASSWORD"] = "hunter2" }).Services[0];

        Assert.Equal(new Dictionary<string, string> { ["DB_PASSWORD"] = "hunter2", ["MODE"] = "prod", ["TOKEN"] = "t0k3n" }, s.Env);
        Assert.Equal(["DB_PASSWORD", "TOKEN"], s.SecretEnv.ToArray());
    }

    [Fact]
    public void Load_Telemetry_LimitsAndCollectorRead()
    {
        var app = Load("""
            telemetry: {otlp_endpoint: "http://127.0.0.1:4318", max_spans: 1000, max_logs: 200, max_metric_points: 3000}
            services:
              web: {run: [app]}
            """);

        Assert.Equal(new TelemetrySpec { OtlpEndpoint = new Uri("http://127.0.0.1:4318"), MaxSpans = 1000, MaxLogs = 200, MaxMetricPoints = 3000 }, app.Telemetry);
        Assert.Equal(TelemetrySpec.Default, Load("services:\n  web: {run: [app]}\n").Telemetry);
    }

    [Fact]
    public void NodesSchedulerAndPipelines_AtTheTop()
    {
        File.WriteAllText(Path.Combine(_dir, "release.yaml"), "jobs: {}\n");
        var app = Load("""
            name: demo
            scheduler: {policy: round-robin}
            nodes:
              - {name: small, cpu: 500m, memory: 512Mi}
              - name: big
                cpu: 2
                memory: 4Gi
                labels: {disk: ssd}
            pipelines:
              ci:
                jobs:
                  build: {steps: [{run: "dotnet build ${{ matrix.x }}"}]}
              release: release.yaml
            services:
              web: {run: [app]}
            """);

        Assert.Equal(("demo", SchedulerPolicy.RoundRobin), (app.Name, app.Scheduler));
        Assert.Equal([("small", 500L, 512L << 20), ("big", 2000L, 4L << 30)], app.Nodes.Select(n => (n.Name, n.Cpu.MilliCores, n.Memory.Bytes)));
        Assert.Equal("ssd", app.Nodes[1].Labels["disk"]);
        Assert.Equal(
        [
            new PipelineRef("ci", Path.Combine(_dir, "berth.yaml"), 11, 5),
            new PipelineRef("release", Path.Combine(_dir, "release.yaml"), 1, 1),
        ], app.Pipelines.Select(p => p with { Digest = null }).ToArray());
        Assert.All(app.Pipelines, p => Assert.Matches("^[0-9a-f]{64}$", p.Digest));
    }

    [Fact]
    public void ShellAndRuntime_AreExplicitOptIns()
    {
        var app = Load("""
            services:
              script:
                run: "echo $$HOME && sleep 1"
                shell: true
              container:
                image: app:1
                run: [serve]
                runtime: process
            """);

        Assert.True(app.Services[0].Shell);
        Assert.Equal(["echo $HOME && sleep 1"], app.Services[0].Command.ToArray()); // whole, for /bin/sh -c
        Assert.Equal(RuntimeKind.Process, app.Services[1].EffectiveRuntime);
    }

    [Fact]
    public void RelativeWorkingDirAndBindMounts_ResolveAgainstTheSpecFolder()
    {
        var s = Load("services:\n  web:\n    run: [app]\n    working_dir: src/web\n    volumes: [\"./data:/data\"]\n").Services[0];

        Assert.Equal(Path.Combine(_dir, "src", "web"), s.WorkingDir);
        Assert.Equal(Path.Combine(_dir, "data"), s.Volumes[0].Source);
    }

    [Fact]
    public void InheritEnv_OnAProcessServiceAndAContainer_ProcessKeepsItContainerWarned()
    {
        Assert.True(Load("services:\n  web:\n    run: [app]\n    inherit_env: true\n").Services[0].InheritEnv);
        Assert.False(Load("services:\n  web:\n    run: [app]\n").Services[0].InheritEnv);

        var file = Path.Combine(_dir, "berth.yaml");
        File.WriteAllText(file, "services:\n  db:\n    image: postgres:16\n    inherit_env: true\n");
        var result = SpecLoader.LoadFile(file, new LoadOptions { Environment = new Dictionary<string, string>() });
        Assert.True(result.Succeeded);
        Assert.Equal(
            "berth.yaml:2:3: warning: services.db.inherit_env: applies to process replicas only; a container inherits nothing from the environment Berth runs in (as Compose), so it is ignored; list what the container needs under environment:",
            Assert.Single(result.Diagnostics).ToString().Replace(_dir + Path.DirectorySeparatorChar, "", StringComparison.Ordinal));
    }

    [Fact]
    public void Logging_MaxSizeAndMaxFile_InKubernetesQuantities()
    {
        var s = Load("services:\n  web:\n    run: [app]\n    logging: {max_size: 1Mi, max_file: 2}\n").Services[0];

        Assert.Equal(new LogRotation(new ByteSize(1L << 20), 2), s.Logging);
        Assert.Equal(LogRotation.Default, Load("services:\n  web:\n    run: [app]\n").Services[0].Logging);
    }
}
