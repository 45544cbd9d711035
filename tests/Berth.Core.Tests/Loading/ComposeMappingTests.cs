
namespace Berth.Core.Tests.Loading;

/// <summary>How each Compose construct lands in the model.</summary>
public class ComposeMappingTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("berth-compose-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private LoadResult Load(string yaml, Dictionary<string, string>? env = null, string[]? profiles = null)
    {
        var file = Path.Combine(_dir, "compose.yaml");
        File.WriteAllText(file, yaml);
        return SpecLoader.LoadFile(file, new LoadOptions { Environment = env ?? [], Profiles = profiles ?? [] });
    }

    private Service Single(string yaml, Dictionary<string, string>? env = null)
    {
        var result = Load(yaml, env);
        Assert.True(result.Succeeded, string.Join("\n", result.Diagnostics));
        return Assert.Single(result.Application!.Services);
    }

    [Fact]
    public void Ports_EveryShortForm_BecomesEndpoints()
    {
        var s = Single("""
            services:
              web:
                image: nginx
                ports:
                  - 3000
                  - "8000:8000"
                  - "127.0.0.2:8001:8001"
                  - "127.0.0.1::5000"
                  - "9090-9091:8080-8081"
                  - "[::1]:6001:6001"
                  - "6060:6060/tcp"
                  - "53:53/udp"
            """);

        Assert.Equal(
        [
            (null, 3000, "127.0.0.1"), (8000, 8000, "127.0.0.1"), (8001, 8001, "127.0.0.2"), (null, 5000, "127.0.0.1"),
            (9090, 8080, "127.0.0.1"), (9091, 8081, "127.0.0.1"), (6001, 6001, "::1"), (6060, 6060, "127.0.0.1"),
        ], s.Endpoints.Select(e => (e.Port, e.TargetPort!.Value, e.HostIp)));
        Assert.Equal(["tcp", "tcp-8000", "tcp-8001", "tcp-5000", "tcp-8080", "tcp-8081", "tcp-6001", "tcp-6060"], s.Endpoints.Select(e => e.Name));
        Assert.All(s.Endpoints, e => Assert.Equal(EndpointProtocol.Tcp, e.Protocol));
    }

    [Fact]
    public void Ports_UdpPort_IsIgnoredWithAWarning()
    {
        var result = Load("services:\n  dns:\n    image: coredns\n    ports: [\"53:53/udp\"]\n");

        Assert.True(result.Succeeded);
        Assert.Empty(result.Application!.Services[0].Endpoints);
        Assert.Equal("services.dns.ports[0]: udp ports are not supported yet; port 53/udp is ignored", $"{Assert.Single(result.Warnings).Path}: {result.Warnings.Single().Message}");
    }

    [Fact]
    public void Ports_LongFormWithHttpAppProtocol_IsAnHttpEndpoint()
    {
        var s = Single("""
            services:
              web:
                image: nginx
                ports:
                  - target: 80
                    published: "8080"
                    host_ip: 127.0.0.1
                    protocol: tcp
                    app_protocol: http
                    name: web
                    mode: host
            """);

        var e = Assert.Single(s.Endpoints);
        Assert.Equal(new Endpoint { Name = "web", Port = 8080, TargetPort = 80, Protocol = EndpointProtocol.Http, Public = true }, e);
    }

    [Fact]
    public void Expose_BecomesEndpointsWithoutStablePort()
    {
        var s = Single("services:\n  db:\n    image: postgres\n    expose: [\"5432\", 9187]\n");

        Assert.Equal([(null, 5432), (null, 9187)], s.Endpoints.Select(e => (e.Port, e.TargetPort!.Value)));
    }

    [Fact]
    public void Environment_ListMapEnvFileAndBareNames_MergeInComposeOrder()
    {
        File.WriteAllText(Path.Combine(_dir, "app.env"), "FROM_FILE=file\nOVERRIDDEN=file\n");
        var s = Single("""
            services:
              web:
                image: nginx
                env_file: app.env
                environment:
                  - OVERRIDDEN=env
                  - FROM_HOST
                  - NOT_ON_HOST
                  - EMPTY=
            """, new() { ["FROM_HOST"] = "host" });

        Assert.Equal(new Dictionary<string, string> { ["EMPTY"] = "", ["FROM_FILE"] = "file", ["FROM_HOST"] = "host", ["OVERRIDDEN"] = "env" }, s.Env);
        Assert.Equal(["app.env"], s.EnvFiles.ToArray());
    }

    [Fact]
    public void DotEnvBesideTheFile_FeedsInterpolation_AndTheEnvironmentWins()
    {
        File.WriteAllText(Path.Combine(_dir, ".env"), "TAG=from-dotenv\nREGISTRY=registry.local\n");
        var s = Single("services:\n  web:\n    image: ${REGISTRY}/web:${TAG}\n", new() { ["TAG"] = "from-env" });

        Assert.Equal("registry.local/web:from-env", s.Image);
    }

    [Fact]
    public void Volumes_BindNamedAndLong_ResolveBindSourcesAgainstTheSpecFolder()
    {
        var s = Single("""
            services:
              db:
                image: postgres
                volumes:
                  - ./init:/docker-entrypoint-initdb.d:ro
                  - data:/var/lib/postgresql/data
                  - /var/cache
                  - type: bind
                    source: ../shared
                    target: /shared
                    read_only: true
            volumes:
              data:
            """);

        Assert.Equal(
        [
            new VolumeMount { Type = VolumeType.Bind, Source = Path.Combine(_dir, "init"), Target = "/docker-entrypoint-initdb.d", ReadOnly = true },
            new VolumeMount { Type = VolumeType.Volume, Source = "data", Target = "/var/lib/postgresql/data", VolumeName = $"{Path.GetFileName(_dir).ToLowerInvariant()}_data" },
            new VolumeMount { Type = VolumeType.Volume, Target = "/var/cache" },
            new VolumeMount { Type = VolumeType.Bind, Source = Path.GetFullPath(Path.Combine(_dir, "../shared")), Target = "/shared", ReadOnly = true },
        ], s.Volumes.ToArray());
    }

    [Fact]
    public void Healthcheck_CmdShellAndDockerDefaults_BecomeTheReadinessProbe()
    {
        var result = Load("""
            services:
              a:
                image: x
                healthcheck:
                  test: ["CMD", "pg_isready", "-U", "postgres"]
                  interval: 5s
                  retries: 10
                  start_period: 30s
              b:
                image: x
                healthcheck:
                  test: curl -f http://localhost/ || exit 1
              c:
                image: x
                healthcheck:
                  test: ["NONE"]
            """);

        var (a, b, c) = (result.Application!.Services[0], result.Application.Services[1], result.Application.Services[2]);
        Assert.Equal(ProbeKind.Exec, a.Readiness!.Kind);
        Assert.Equal(["pg_isready", "-U", "postgres"], a.Readiness.Command.ToArray());
        Assert.Equal((TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(30), 10, TimeSpan.FromSeconds(30)),
            (a.Readiness.Period, a.Readiness.Timeout, a.Readiness.FailureThreshold, a.Readiness.InitialDelay));
        Assert.Equal(["/bin/sh", "-c", "curl -f http://localhost/ || exit 1"], b.Readiness!.Command.ToArray());
        Assert.Equal(ComposeDefaults.HealthcheckInterval, b.Readiness.Period);
        Assert.Null(c.Readiness);
    }

    [Theory]
    [InlineData("\"no\"", RestartMode.Never, null)]
    [InlineData("always", RestartMode.Always, null)]
    [InlineData("unless-stopped", RestartMode.Always, null)]
    [InlineData("on-failure", RestartMode.OnFailure, null)]
    [InlineData("on-failure:3", RestartMode.OnFailure, 3)]
    public void Restart_ComposePolicies_MapToModes(string text, RestartMode mode, int? max)
    {
        var s = Single($"services:\n  web:\n    image: x\n    restart: {text}\n");

        Assert.Equal((mode, max), (s.Restart.Mode, s.Restart.MaxAttempts));
    }

    [Fact]
    public void Restart_Absent_IsNeverAsCompose()
    {
        Assert.Equal(RestartMode.Never, Single("services:\n  web:\n    image: x\n").Restart.Mode);
    }

    [Fact]
    public void Deploy_ReplicasResourcesRestartUpdateRollback_Map()
    {
        var s = Single("""
            services:
              web:
                image: x
                deploy:
                  replicas: 3
                  resources:
                    limits: {cpus: '0.5', memory: 512M}
                    reservations: {cpus: '0.25', memory: 128m}
                  restart_policy: {condition: on-failure, delay: 5s, max_attempts: 4, window: 2m}
                  update_config: {parallelism: 2, delay: 10s, order: start-first, failure_action: pause, monitor: 1m, max_failure_ratio: 0.25}
                  rollback_config: {parallelism: 0}
            """);

        Assert.Equal(3, s.Replicas);
        Assert.Equal(new Resources { CpuLimit = new(500), MemoryLimit = ByteSize.FromMebibytes(512), CpuRequest = new(250), MemoryRequest = ByteSize.FromMebibytes(128) }, s.Resources);
        Assert.Equal(RestartPolicy.Default with { Mode = RestartMode.OnFailure, InitialBackoff = TimeSpan.FromSeconds(5), MaxAttempts = 4, ResetAfter = TimeSpan.FromMinutes(2) }, s.Restart);
        Assert.Equal(UpdateStrategy.Default with
        {
            MaxSurge = IntOrPercent.Count(2), MaxUnavailable = IntOrPercent.Count(0), Delay = TimeSpan.FromSeconds(10), Order = UpdateOrder.StartFirst,
            FailureAction = FailureAction.Pause, Monitor = TimeSpan.FromMinutes(1), MaxFailureRatio = 0.25,
        }, s.Update);
        Assert.Equal(UpdateStrategy.Default with { MaxSurge = IntOrPercent.Count(0), MaxUnavailable = IntOrPercent.Percent(100), Order = UpdateOrder.StopFirst }, s.Rollback);
    }

    [Fact]
    public void DependsOn_ShortAndLongForms_KeepConditions()
    {
        var result = Load("""
            services:
              web:
                image: x
                depends_on:
                  db: {condition: service_healthy, restart: true}
                  migrate: {condition: service_completed_successfully}
                  cache: {condition: service_started, required: false}
              worker:
                image: x
                depends_on: [db]
              db:
                image: postgres
                healthcheck: {test: ["CMD", "pg_isready"]}
              migrate:
                image: x
              cache:
                image: redis
            """);

        Assert.True(result.Succeeded, string.Join("\n", result.Diagnostics));
        Assert.Equal(
        [
            new Dependency("db", DependencyCondition.Healthy) { Restart = true },
            new Dependency("migrate", DependencyCondition.Completed),
            new Dependency("cache") { Required = false },
        ], result.Application!.Services[0].DependsOn.ToArray());
        Assert.Equal([new Dependency("db")], result.Application.Services[1].DependsOn.ToArray());
    }

    [Fact]
    public void Profiles_InactiveServicesAreLeftOut_UntilTheirProfileIsActive()
    {
        const string Yaml = """
            services:
              web: {image: x}
              debug: {image: y, profiles: [debug]}
            """;

        Assert.Equal(["web"], Load(Yaml).Application!.Services.Select(s => s.Name));
        Assert.Equal(["web", "debug"], Load(Yaml, profiles: ["debug"]).Application!.Services.Select(s => s.Name));
        Assert.Equal(["web", "debug"], Load(Yaml, env: new() { ["COMPOSE_PROFILES"] = "debug,other" }).Application!.Services.Select(s => s.Name));
    }

    [Fact]
    public void XBerth_OverridesComposeAndAddsBerthKeys()
    {
        var result = Load("""
            x-berth:
              scheduler: bin-pack
              nodes:
                - {name: a, cpu: 2, memory: 2Gi}
            services:
              web:
                image: x
                ports: ["8080:80"]
                environment:
                  API_KEY: s3cret
                  MODE: prod
                deploy: {replicas: 2}
                x-berth:
                  replicas: 4
                  secret_env: [API_KEY]
                  endpoints:
                    tcp: {port: 8080, target_port: 80, protocol: http}
                  probes:
                    readiness: {http: /ready}
                  mesh: {lb: round-robin, timeout: 5s}
                x-other: ignored
            """);

        Assert.True(result.Succeeded, string.Join("\n", result.Diagnostics));
        var app = result.Application!;
        Assert.Equal(SchedulerPolicy.BinPack, app.Scheduler);
        Assert.Equal([new Node("a", new CpuQuantity(2000), ByteSize.FromMebibytes(2048))], app.Nodes.ToArray());
        var s = app.Services[0];
        Assert.Equal(4, s.Replicas);
        Assert.Equal(["API_KEY"], s.SecretEnv.ToArray());
        Assert.Equal(EndpointProtocol.Http, Assert.Single(s.Endpoints).Protocol);
        Assert.Equal("/ready", s.Readiness!.Path);
        Assert.Equal((LoadBalancing.RoundRobin, TimeSpan.FromSeconds(5)), (s.Mesh.LoadBalancing, s.Mesh.Timeout));
        Assert.Contains("API_KEY: '***'", SpecWriter.ToYaml(app), StringComparison.Ordinal);
        Assert.DoesNotContain("s3cret", SpecWriter.ToYaml(app), StringComparison.Ordinal);
        Assert.Contains("s3cret", SpecWriter.ToYaml(app, showSecrets: true), StringComparison.Ordinal);
    }

    [Fact]
    public void XBerthEgress_TrueOnTheServiceOnly_WrittenBackInTheNormalizedSpec()
    {
        var result = Load("""
            services:
              out:
                image: x
                x-berth: {egress: true}
              plain:
                image: x
            """);

        Assert.True(result.Succeeded, string.Join("\n", result.Diagnostics));
        Assert.Equal((true, false), (result.Application!.FindService("out")!.Egress, result.Application.FindService("plain")!.Egress));
        Assert.Single(System.Text.RegularExpressions.Regex.Matches(SpecWriter.ToYaml(result.Application), "egress: true"));
    }

    [Fact]
    public void UnsupportedKeys_LoadWithOneWarningEach_NamingTheKey()
    {
        var result = Load("""
            version: "3.9"
            services:
              web:
                image: x
                networks: [front]
                container_name: web1
                logging: {driver: syslog}
            networks:
              front: {}
            """);

        Assert.True(result.Succeeded);
        Assert.Equal(
        [
            "1:1 version: 'version' is obsolete and is ignored (as Compose does); you can remove it",
            "7:23 services.web.logging.driver: log driver 'syslog' is not supported: Berth reads replica logs back from the engine, which only the local and json-file drivers keep; the engine's default is used",
            "8:1 networks: 'networks' is not supported yet and is ignored; every service of the app is on one network in Berth: replicas reach each other by service name through the mesh",
        ], result.Warnings.Select(w => $"{w.Line}:{w.Column} {w.Path}: {w.Message}"));
    }

    [Fact]
    public void NetworkKeys_NamesAndModes_BecomeAliasesAndNetworkModes()
    {
        var result = Load("""
            services:
              web:
                image: x
                container_name: web1
                hostname: webhost
                links: ["db:database", "cache"]
                networks:
                  front: {aliases: [www]}
              db:
                image: x
                network_mode: host
              cache:
                image: x
                network_mode: none
              odd:
                image: x
                network_mode: "service:web"
            """);

        Assert.True(result.Succeeded, string.Join("\n", result.Diagnostics));
        var app = result.Application!;
        Assert.Equal(["web1", "www"], app.FindService("web")!.Aliases.ToArray());
        Assert.Equal(["database"], app.FindService("db")!.Aliases.ToArray());
        Assert.Empty(app.FindService("cache")!.Aliases);
        Assert.Equal((NetworkMode.Auto, NetworkMode.Isolated), (app.FindService("web")!.Network, app.FindService("web")!.EffectiveNetwork));
        Assert.Equal((NetworkMode.Host, NetworkMode.Host), (app.FindService("db")!.Network, app.FindService("db")!.EffectiveNetwork));
        Assert.Equal(NetworkMode.Isolated, app.FindService("cache")!.Network);
        Assert.Equal(["17:19 services.odd.network_mode: 'service:web' is not supported; the service gets a pod of its own (its own loopback, the app's names). Write host or none"],
            result.Warnings.Select(w => $"{w.Line}:{w.Column} {w.Path}: {w.Message}"));
    }

    [Fact]
    public void Links_UnknownServiceOrOneAliasForTwo_ErrorsNamingThem()
    {
        var result = Load("""
            services:
              web:
                image: x
                links: ["nope", "db:store"]
              worker:
                image: x
                links: ["cache:store"]
              db: {image: x}
              cache: {image: x}
            """);

        Assert.False(result.Succeeded);
        Assert.Equal(
        [
            "services.web.links: links 'nope', which is not a service of this app; link one of: web, worker, db, cache",
            "services.worker.links: the alias 'store' is given to both 'db' and 'cache'; every name means one service in Berth's pods, so use two aliases",
        ], result.Diagnostics.Where(d => d.Severity == DiagnosticSeverity.Error).Select(d => $"{d.Path}: {d.Message}"));
    }

    [Fact]
    public void YamlAnchorsAndMergeKeys_AreResolved()
    {
        var result = Load("""
            x-common: &common
              image: base:1
              environment: {SHARED: "yes"}
            services:
              a:
                <<: *common
                command: ["a"]
              b:
                <<: *common
                image: other:2
            """);

        Assert.True(result.Succeeded, string.Join("\n", result.Diagnostics));
        Assert.Equal(("base:1", "yes"), (result.Application!.Services[0].Image, result.Application.Services[0].Env["SHARED"]));
        Assert.Equal("other:2", result.Application.Services[1].Image);
    }

    [Fact]
    public void CommandAndEntrypoint_StringsAreSplitNotShelled()
    {
        var s = Single("services:\n  web:\n    image: x\n    entrypoint: /bin/sh -c\n    command: 'echo \"hello world\"'\n");

        Assert.Equal(["/bin/sh", "-c"], s.Entrypoint!.Value.ToArray());
        Assert.Equal(["echo", "hello world"], s.Command.ToArray());
        Assert.False(s.Shell);
        Assert.Equal(RuntimeKind.Docker, s.EffectiveRuntime);
    }

    [Fact]
    public void ProjectName_ComesFromComposeProjectNameWhenSet()
    {
        Assert.Equal("myproj", Load("services:\n  web: {image: x}\n", env: new() { ["COMPOSE_PROJECT_NAME"] = "MyProj" }).Application!.Name);
    }

    [Fact]
    public void ProjectName_DefaultsToTheFolderName()
    {
        var result = Load("services:\n  web: {image: x}\n");

        Assert.Equal(new string([.. Path.GetFileName(_dir).ToLowerInvariant().Where(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_')]), result.Application!.Name);
    }

    [Fact]
    public void Logging_MaxSizeAndMaxFile_AreTheReplicasRotationOtherOptionsStayTheEngines()
    {
        var s = Single("""
            services:
              web:
                image: x
                logging: {driver: json-file, options: {max-size: "2m", max-file: "3", compress: "true"}}
            """);
        Assert.Equal(new LogRotation(new ByteSize(2L << 20), 3), s.Logging);
        Assert.Equal("json-file", s.Container.LogDriver);
        Assert.Equal(["compress"], s.Container.LogOptions.Keys);
    }

    [Fact]
    public void Logging_OnlyMaxSizeOrNothing_KubeletDefaultsForTheRest()
    {
        var result = Load("""
            services:
              small:
                image: x
                logging: {options: {max-size: 512k}}
              plain:
                image: x
            """);

        Assert.True(result.Succeeded, string.Join("\n", result.Diagnostics));
        Assert.Empty(result.Warnings);
        Assert.Equal(new LogRotation(new ByteSize(512 << 10), 5), result.Application!.Services.Single(x => x.Name == "small").Logging);
        Assert.Equal(new LogRotation(new ByteSize(10L << 20), 5), result.Application.Services.Single(x => x.Name == "plain").Logging);
    }

    [Fact]
    public void Logging_BadSizeOrCount_ErrorsSayWhatToWrite()
    {
        var result = Load("""
            services:
              web:
                image: x
                logging: {options: {max-size: lots, max-file: "0"}}
            """);

        Assert.Equal(
        [
            "4:24 services.web.logging.options.max-size: 'lots' is not a size; write a number with a unit such as 512m, 64MiB or 1g (Docker's units, all binary)",
            "4:24 services.web.logging.options.max-file: is '0'; give the number of log files to keep, 1 or more (e.g. \"5\")",
        ], result.Diagnostics.Where(d => d.Severity == DiagnosticSeverity.Error).Select(d => $"{d.Line}:{d.Column} {d.Path}: {d.Message}"));
    }
}
