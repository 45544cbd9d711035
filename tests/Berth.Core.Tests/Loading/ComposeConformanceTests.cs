using Berth.Core.Loading;
using Berth.Core.Model;

namespace Berth.Core.Tests.Loading;

/// <summary>Conformance with the Compose Specification and the behaviour of <c>docker compose config</c> it documents: one test
/// per point of issue #12, each with the exact input and the exact normalized value or error (file:line:col).</summary>
public class ComposeConformanceTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("berth-conformance-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string File(string name) => Path.Combine(_dir, name);

    private LoadResult Load(string yaml, Dictionary<string, string>? env = null, string name = "compose.yaml")
    {
        System.IO.File.WriteAllText(File(name), yaml);
        return SpecLoader.LoadFile(File(name), new LoadOptions { Environment = env ?? [] });
    }

    private Application App(string yaml, Dictionary<string, string>? env = null)
    {
        var result = Load(yaml, env);
        Assert.True(result.Succeeded, string.Join("\n", result.Diagnostics));
        return result.Application!;
    }

    private static string Errors(LoadResult result) => string.Join("\n", result.Errors.Select(e => $"{Path.GetFileName(e.File)}:{e.Line}:{e.Column}: {e.Path}: {e.Message}"));

    // ---- silent wrong values -----------------------------------------------------------------------------------

    [Fact]
    public void EnvFile_VariablesExpandFromEarlierLinesThenTheEnvironment()
    {
        System.IO.File.WriteAllText(File("app.env"), "A=1\nB=${A}_x\nBAR=$FOO\nQUOTED=\"quote $FOO\"\nLITERAL='$A stays'\nK='Let\\'s go!'\nFOO_FIRST=${FOO}\nFOO=from-file\nAFTER=$FOO\n");
        var s = App("services:\n  web:\n    image: x\n    env_file: app.env\n", new() { ["FOO"] = "env" }).Services[0];

        Assert.Equal(new Dictionary<string, string>
        {
            ["A"] = "1", ["AFTER"] = "from-file", ["B"] = "1_x", ["BAR"] = "env", ["FOO"] = "from-file", ["FOO_FIRST"] = "env",
            ["K"] = "Let's go!", ["LITERAL"] = "$A stays", ["QUOTED"] = "quote env",
        }, s.Env);
    }

    [Fact]
    public void DotEnv_VariablesExpandInsideIt_AndFeedInterpolation()
    {
        System.IO.File.WriteAllText(File(".env"), "REGISTRY=registry.local\nIMAGE=${REGISTRY}/web\n");
        var s = App("services:\n  web:\n    image: ${IMAGE}:1\n").Services[0];

        Assert.Equal("registry.local/web:1", s.Image);
    }

    [Fact]
    public void EnvFile_BadTemplate_IsAnErrorAtItsLine()
    {
        System.IO.File.WriteAllText(File("app.env"), "OK=1\nBAD=${A\n");
        var result = Load("services:\n  web:\n    image: x\n    env_file: app.env\n");

        Assert.Equal("app.env:2:1: : the value of BAD has a '${' without its closing '}'", Errors(result));
    }

    private static readonly Dictionary<string, string> JsonVariable = new() { ["JSON"] = "{\"json\":2}" };

    [Theory]
    [InlineData("${JSON:-{\"json\":1}}", "{\"json\":2}")]
    [InlineData("${UNSET:-{\"json\":1}}", "{\"json\":1}")]
    [InlineData("${UNSET:+{y}}", "")]
    [InlineData("${JSON:+{y}}", "{y}")]
    [InlineData("${UNSET:-a{b{c}}d}", "a{b{c}}d")]
    public void Interpolation_BracesInsideDefaultsAndAlternatives_Pair(string text, string expected) => InterpolationTests.AssertInterpolates(JsonVariable, text, expected);

    [Fact]
    public void Interpolation_UnusedBranch_IsNotExpanded()
    {
        var interpolator = new Interpolator(new Dictionary<string, string> { ["SET"] = "v" });

        Assert.True(interpolator.TryInterpolate("${SET:-${NOT_THERE}}${UNSET:+${ALSO_NOT}}${SET:-${REQ:?never asked}}", out var result, out var error), error);
        Assert.Equal("vv", result);
        Assert.Empty(interpolator.Unset);
    }

    [Fact]
    public void RestartPolicy_WinsOverRestart_InEitherOrder()
    {
        var app = App("""
            services:
              a:
                image: x
                restart: always
                deploy: {restart_policy: {condition: on-failure}}
              b:
                image: x
                deploy: {restart_policy: {condition: none}}
                restart: always
            """);

        Assert.Equal([RestartMode.OnFailure, RestartMode.Never], app.Services.Select(s => s.Restart.Mode));
    }

    [Fact]
    public void ConflictingKeys_DistinctValues_AreErrorsNamingBothKeys()
    {
        var result = Load("""
            services:
              web:
                image: x
                scale: 3
                cpus: 0.5
                mem_limit: 512m
                deploy:
                  replicas: 2
                  resources:
                    limits: {cpus: "1", memory: 256M}
            """);

        Assert.Equal("""
            compose.yaml:8:17: services.web.deploy.replicas: can't set distinct values on 'scale' (3) and 'deploy.replicas' (2); scale is at FILE:4:12; keep one of them (Compose rejects both with different values)
            compose.yaml:10:24: services.web.deploy.resources.limits.cpus: can't set distinct values on 'cpus' (0.5) and 'deploy.resources.limits.cpus' (1); cpus is at FILE:5:11; keep one of them (Compose rejects both with different values)
            compose.yaml:10:37: services.web.deploy.resources.limits.memory: can't set distinct values on 'mem_limit' (512m) and 'deploy.resources.limits.memory' (256M); mem_limit is at FILE:6:16; keep one of them (Compose rejects both with different values)
            """.Replace("FILE", File("compose.yaml"), StringComparison.Ordinal), Errors(result));
    }

    [Fact]
    public void ConflictingKeys_SameValues_AreFine()
    {
        var s = App("services:\n  web:\n    image: x\n    scale: 2\n    mem_limit: 1g\n    deploy: {replicas: 2, resources: {limits: {memory: 1024M}}}\n").Services[0];

        Assert.Equal((2, 1L << 30), (s.Replicas, s.Resources.MemoryLimit!.Value.Bytes));
    }

    [Fact]
    public void ComposeProjectName_IsSetDuringInterpolation_FromNameOrFolder()
    {
        var named = App("name: shop\nservices:\n  web:\n    image: x\n    environment: {PROJECT: \"${COMPOSE_PROJECT_NAME}\"}\n");
        var fromFolder = App("services:\n  web:\n    image: x\n    environment: {PROJECT: \"${COMPOSE_PROJECT_NAME}\"}\n");
        var fromEnv = App("name: shop\nservices:\n  web:\n    image: x\n    environment: {PROJECT: \"${COMPOSE_PROJECT_NAME}\"}\n", new() { ["COMPOSE_PROJECT_NAME"] = "other" });

        Assert.Equal(("shop", "shop"), (named.Name, named.Services[0].Env["PROJECT"]));
        Assert.Equal(Path.GetFileName(_dir).ToLowerInvariant(), fromFolder.Services[0].Env["PROJECT"]);
        Assert.Equal(("other", "other"), (fromEnv.Name, fromEnv.Services[0].Env["PROJECT"]));
    }

    [Fact]
    public void DeployLabels_AreTheServicesOwn_NotMergedOverLabels()
    {
        var s = App("services:\n  web:\n    image: x\n    labels: {tier: web}\n    deploy: {labels: {tier: swarm, team: a}}\n").Services[0];

        Assert.Equal(new Dictionary<string, string> { ["tier"] = "web" }, s.Labels);
        Assert.Equal(new Dictionary<string, string> { ["team"] = "a", ["tier"] = "swarm" }, s.DeployLabels);
    }

    [Fact]
    public void Environment_KeyWithSpaces_IsAnError()
    {
        var result = Load("services:\n  web:\n    image: x\n    environment: [\"DEBUG = true\"]\n");

        Assert.Equal("compose.yaml:4:19: services.web.environment.DEBUG: 'DEBUG ' has a space in the variable's name; write DEBUG=true (no spaces around '=')", Errors(result));
    }

    // ---- valid Compose that loads --------------------------------------------------------------------------------

    [Fact]
    public void ExposeAndPorts_OnTheSamePort_AreOnePort_InEitherOrder()
    {
        var app = App("services:\n  a:\n    image: x\n    expose: [\"80\"]\n    ports: [\"8080:80\"]\n  b:\n    image: x\n    ports: [\"8081:80\"]\n    expose: [\"80\"]\n");

        Assert.All(app.Services, s => Assert.Equal(80, Assert.Single(s.Endpoints).TargetPort));
        Assert.Equal([8080, 8081], app.Services.Select(s => s.Endpoints[0].Port!.Value));
    }

    [Fact]
    public void ExtensionKeys_AreAllowedWhereTheSchemaAllowsThem()
    {
        var result = Load("""
            services:
              db:
                image: x
                healthcheck: {test: ["CMD", "true"], x-note: a}
              web:
                image: x
                build: {context: ., x-note: a}
                ports:
                  - {target: 80, published: "8080", x-note: a}
                depends_on:
                  db: {condition: service_healthy, x-note: a}
                deploy: {replicas: 1, x-note: a, resources: {x-note: a, limits: {x-note: a}}}
                volumes:
                  - {type: bind, source: ., target: /src, x-note: a}
            """);

        Assert.True(result.Succeeded, string.Join("\n", result.Diagnostics));
        Assert.Empty(result.Warnings);
    }

    [Fact]
    public void BuildKeysBeyondTheFour_AndPreStart_AreWarnings()
    {
        var result = Load("""
            services:
              web:
                build: {context: ., provenance: true, sbom: true, no_cache_filter: [a]}
                pre_start: [{command: ["true"]}]
                pull_refresh_after: 1h
                volumes:
                  - {type: image, source: img, target: /img}
                  - {type: npipe, source: p, target: /p}
            """);

        Assert.True(result.Succeeded, string.Join("\n", result.Diagnostics));
        Assert.Equal(
        [
            "services.web.build.provenance", "services.web.build.sbom", "services.web.build.no_cache_filter", "services.web.pre_start",
            "services.web.pull_refresh_after", "services.web.volumes[0].type", "services.web.volumes[1].type",
        ], result.Warnings.Select(w => w.Path));
        Assert.Empty(result.Application!.Services[0].Volumes);
    }

    [Fact]
    public void ProjectName_IsLowercased()
    {
        Assert.Equal("myproject", App("name: myProject\nservices:\n  web:\n    image: x\n").Name);
    }

    [Fact]
    public void BuildWithOnlyDockerfile_DefaultsTheContextToTheSpecFolder()
    {
        var s = App("name: shop\nservices:\n  web:\n    build: {dockerfile: web.Dockerfile}\n").Services[0];

        Assert.Equal((_dir, "web.Dockerfile", "shop-web"), (s.Build!.Context, s.Build.Dockerfile, s.Image));
    }

    [Theory]
    [InlineData("64MiB", 64L << 20)]
    [InlineData("64 MB", 64L << 20)]
    [InlineData("2KiB", 2L << 10)]
    [InlineData("1GiB", 1L << 30)]
    [InlineData("512m", 512L << 20)]
    [InlineData("256Mi", 256L << 20)]
    [InlineData("1.5g", 3L << 29)]
    [InlineData("100", 100)]
    public void MemoryInDockerUnits_IsRead(string text, long bytes)
    {
        var s = App($"services:\n  web:\n    image: x\n    mem_limit: \"{text}\"\n").Services[0];

        Assert.Equal(bytes, s.Resources.MemoryLimit!.Value.Bytes);
    }

    [Fact]
    public void MemoryMinusOne_IsUnlimited()
    {
        var s = App("services:\n  web:\n    image: x\n    mem_limit: -1\n    deploy: {resources: {limits: {memory: \"-1\"}}}\n").Services[0];

        Assert.Null(s.Resources.MemoryLimit);
    }

    [Theory]
    [InlineData("0.0001", 1)]
    [InlineData("0.0015", 2)]
    [InlineData("0.5", 500)]
    [InlineData("2", 2000)]
    public void Cpus_FinerThanAMillicore_RoundToTheNearest(string text, long milli)
    {
        var s = App($"services:\n  web:\n    image: x\n    cpus: {text}\n").Services[0];

        Assert.Equal(milli, s.Resources.CpuLimit!.Value.MilliCores);
    }

    [Fact]
    public void MaxFailureRatio_IsNotRangeChecked()
    {
        var s = App("services:\n  web:\n    image: x\n    deploy: {update_config: {max_failure_ratio: 1.5}}\n").Services[0];

        Assert.Equal(1.5, s.Update.MaxFailureRatio);
    }

    [Fact]
    public void Healthcheck_WithoutTest_KeepsTheImagesOne_AndRetriesZeroIsTheDefault()
    {
        var result = Load("services:\n  a:\n    image: x\n    healthcheck: {interval: 5s}\n  b:\n    image: x\n    healthcheck: {test: [\"CMD\", \"true\"], retries: 0}\n");

        Assert.True(result.Succeeded, string.Join("\n", result.Diagnostics));
        Assert.Null(result.Application!.Services[0].Readiness);
        Assert.Equal("4:18 services.a.healthcheck: has no test:, so Docker runs the image's own HEALTHCHECK; Berth does not read its result, so the service gets no readiness probe from it (give test: to have one)",
            result.Warnings.Select(w => $"{w.Line}:{w.Column} {w.Path}: {w.Message}").Single());
        Assert.Equal(3, result.Application.Services[1].Readiness!.FailureThreshold);
    }

    [Fact]
    public void Ports_PublishedRangeForOneTarget_TakesTheFirst()
    {
        var s = App("services:\n  web:\n    image: x\n    ports:\n      - \"8000-8010:80\"\n      - {target: 81, published: \"9000-9010\"}\n").Services[0];

        Assert.Equal([(8000, 80), (9000, 81)], s.Endpoints.Select(e => (e.Port!.Value, e.TargetPort!.Value)));
    }

    // ---- run-time features: what the loader makes of them ----------------------------------------------------------

    [Fact]
    public void SecretsAndConfigs_ShortAndLongForms_BecomeFilesToMount()
    {
        System.IO.File.WriteAllText(File("db-password.txt"), "s3cret");
        var s = App("""
            services:
              db:
                image: mysql
                secrets:
                  - db-password
                  - {source: token, target: api-token, uid: "999", gid: "999", mode: 0440}
                configs:
                  - app
                  - {source: app, target: /etc/app.conf, mode: 0o644}
            secrets:
              db-password: {file: ./db-password.txt}
              token: {environment: OAUTH_TOKEN}
            configs:
              app: {content: "mode: fast"}
            """, new() { ["OAUTH_TOKEN"] = "tok" }).Services[0];

        Assert.Equal(
        [
            new MountedFile { Name = "db-password", Kind = MountedFileKind.Secret, Target = "/run/secrets/db-password", SourceFile = File("db-password.txt") },
            new MountedFile { Name = "token", Kind = MountedFileKind.Secret, Target = "/run/secrets/api-token", Content = "tok", Uid = "999", Gid = "999", Mode = 288 },
            new MountedFile { Name = "app", Kind = MountedFileKind.Config, Target = "/app", Content = "mode: fast" },
            new MountedFile { Name = "app", Kind = MountedFileKind.Config, Target = "/etc/app.conf", Content = "mode: fast", Mode = 420 },
        ], s.Files.ToArray());
    }

    [Fact]
    public void Secrets_UndeclaredExternalOrSourceless_AreErrors()
    {
        var result = Load("""
            services:
              db:
                image: mysql
                secrets: [tokn]
            secrets:
              token: {content: t}
              db-password: {file: ./nope.txt}
              vault: {external: true}
              empty: {}
            """);

        Assert.Equal($"""
            compose.yaml:4:15: services.db.secrets[0]: refers to secret 'tokn', which is not declared; add it under the top-level secrets: (or did you mean 'token'?)
            compose.yaml:7:23: secrets.db-password.file: '{File("nope.txt")}' does not exist; create it, or point file: at the secret's file
            compose.yaml:8:3: secrets.vault.external: external secrets need a secret store, which Berth does not have; give it file:, environment: or content: instead
            compose.yaml:9:3: secrets.empty: needs one of file:, environment: or content:
            """, Errors(result));
    }

    [Fact]
    public void ContainerOptions_AreReadAsCompose_AndNonNamespacedSysctlsRefused()
    {
        var result = Load("""
            services:
              web:
                image: x
                init: true
                read_only: true
                tmpfs: /run
                cap_add: [NET_ADMIN]
                ulimits: {nproc: 65535, nofile: {soft: 1024, hard: 2048}}
                sysctls: {kernel.shmmax: "65536", net.core.somaxconn: "1024", vm.swappiness: "10"}
                extra_hosts: ["db=127.0.0.1", "cache:127.0.0.2"]
                devices: [{source: /dev/fuse, target: /dev/fuse, permissions: rwm}]
                shm_size: 64m
                pids_limit: 100
                stop_signal: SIGINT
                logging: {driver: local, options: {max-size: 1m}}
                pull_policy: never
            """);

        Assert.Equal("compose.yaml:9:82: services.web.sysctls.vm.swappiness: 'vm.swappiness' is not a namespaced sysctl, so Docker refuses to set it per container; only kernel.msg*, kernel.sem, kernel.shm* and fs.mqueue.* are", Errors(result));
        Assert.Equal(["services.web.sysctls.net.core.somaxconn"], result.Warnings.Select(w => w.Path));
    }

    [Fact]
    public void ContainerOptions_Values()
    {
        var s = App("""
            services:
              web:
                image: x
                init: true
                tmpfs: /run
                ulimits: {nproc: 65535, nofile: {soft: 1024, hard: 2048}}
                extra_hosts: ["db=127.0.0.1", "cache:127.0.0.2"]
                devices: [{source: /dev/fuse, target: /dev/fuse, permissions: rwm}, "/dev/null"]
                shm_size: 64m
                pids_limit: 100
                logging: {driver: local, options: {max-size: 1m}}
                pull_policy: never
            """).Services[0];
        var c = s.Container;

        Assert.Equal((true, "/run", 65535L, 1024L, 2048L), (c.Init, c.Tmpfs.Single(), c.Ulimits["nproc"].Soft, c.Ulimits["nofile"].Soft, c.Ulimits["nofile"].Hard));
        Assert.Equal(["db:127.0.0.1", "cache:127.0.0.2"], c.ExtraHosts.ToArray());
        Assert.Equal(["/dev/fuse:/dev/fuse:rwm", "/dev/null"], c.Devices.ToArray());
        // max-size is the replica's log rotation (issue #14 §5), handed back to the engine by the Docker driver.
        Assert.Equal((64L << 20, 100L, "local", 1L << 20), (c.ShmSize!.Value.Bytes, c.PidsLimit!.Value, c.LogDriver, s.Logging.MaxSize.Bytes));
        Assert.Equal(PullPolicy.Never, s.PullPolicy);
    }

    [Fact]
    public void NamedVolumes_GetComposesEngineNames()
    {
        var s = App("""
            name: shop
            services:
              db:
                image: x
                volumes:
                  - data:/data
                  - shared:/shared
                  - named:/named
                  - {type: volume, source: data, target: /sub, volume: {nocopy: true, subpath: logs}}
                  - {type: tmpfs, target: /fast, tmpfs: {size: 1m, mode: 0700}}
            volumes:
              data:
              shared: {external: true}
              named: {name: my-named}
            """).Services[0];

        Assert.Equal(
            [("shop_data", false), ("shared", true), ("my-named", false), ("shop_data", false), (null, false)],
            s.Volumes.Select(v => (v.VolumeName, v.External)));
        Assert.Equal((true, "logs"), (s.Volumes[3].NoCopy, s.Volumes[3].Subpath));
        Assert.Equal((1L << 20, 448), (s.Volumes[4].TmpfsSize!.Value.Bytes, s.Volumes[4].TmpfsMode!.Value));
    }

    // ---- extends, include, several files, env files -----------------------------------------------------------

    [Fact]
    public void Extends_SameFileAndOtherFile_MergeAsComposeDoes()
    {
        Directory.CreateDirectory(File("common"));
        System.IO.File.WriteAllText(File("common/base.yaml"), """
            services:
              base:
                image: base:1
                environment: {FROM_BASE: "1", SHARED: base}
                volumes: [./data:/data]
            """);
        var app = App("""
            services:
              web:
                extends: {file: common/base.yaml, service: base}
                environment: {SHARED: web}
              worker:
                extends: web
                command: ["work"]
            """);

        var web = app.Services[0];
        var worker = app.Services[1];
        Assert.Equal(("base:1", "1", "web"), (web.Image, web.Env["FROM_BASE"], web.Env["SHARED"]));
        Assert.Equal(File("common/data"), Assert.Single(web.Volumes).Source); // relative to the extended file, as Compose
        Assert.Equal(("base:1", "web", "work"), (worker.Image, worker.Env["SHARED"], worker.Command.Single()));
    }

    [Fact]
    public void Extends_UnknownServiceAndCycle_AreErrors()
    {
        var result = Load("services:\n  a:\n    extends: b\n    image: x\n  b:\n    extends: a\n    image: x\n  c:\n    extends: nope\n    image: x\n");

        Assert.Equal("""
            compose.yaml:3:14: services.a.extends: extends forms a cycle: compose.yaml#b → compose.yaml#a → compose.yaml#b; a service cannot extend itself
            compose.yaml:6:14: services.b.extends: extends forms a cycle: compose.yaml#a → compose.yaml#b → compose.yaml#a; a service cannot extend itself
            compose.yaml:9:14: services.c.extends: extends service 'nope', which is not in this file
            """.Replace("compose.yaml#", File("compose.yaml") + "#", StringComparison.Ordinal), Errors(result));
    }

    [Fact]
    public void Include_AddsTheOtherFilesServicesAndVolumes_WithItsOwnFolder()
    {
        Directory.CreateDirectory(File("db"));
        System.IO.File.WriteAllText(File("db/compose.yaml"), "services:\n  db:\n    image: postgres\n    env_file: db.env\n    volumes: [data:/var/lib/postgresql/data]\nvolumes:\n  data:\n");
        System.IO.File.WriteAllText(File("db/db.env"), "POSTGRES_PASSWORD=pw\n");
        var app = App("name: shop\ninclude:\n  - db/compose.yaml\nservices:\n  web:\n    image: web\n    depends_on: [db]\n");

        Assert.Equal(["db", "web"], app.Services.Select(s => s.Name));
        Assert.Equal("pw", app.Services[0].Env["POSTGRES_PASSWORD"]);
        Assert.Equal("shop_data", app.Services[0].Volumes.Single().VolumeName);
    }

    [Fact]
    public void Include_RedefiningAService_IsAnError()
    {
        System.IO.File.WriteAllText(File("other.yaml"), "services:\n  web:\n    image: other\n");
        var result = Load("services:\n  web:\n    image: web\ninclude: [other.yaml]\n");

        Assert.Equal($"other.yaml:2:3: services.web: service web is defined both here and at {File("compose.yaml")}:2:3; an included file may not redefine a service (as Compose); rename one of them", Errors(result));
    }

    [Fact]
    public void SeveralFiles_MergeInOrder_AndEnvFilesReplaceDotEnv()
    {
        System.IO.File.WriteAllText(File(".env"), "TAG=from-dotenv\n");
        System.IO.File.WriteAllText(File("prod.env"), "TAG=1.0\nREPLICAS=3\n");
        System.IO.File.WriteAllText(File("compose.yaml"), "services:\n  web:\n    image: web:${TAG}\n    ports: [\"8080:80\"]\n");
        System.IO.File.WriteAllText(File("compose.prod.yaml"), "services:\n  web:\n    deploy: {replicas: \"${REPLICAS}\"}\n    ports: [\"8443:443\"]\n");

        var result = SpecLoader.LoadFiles([File("compose.yaml"), File("compose.prod.yaml")], new LoadOptions { Environment = new Dictionary<string, string>(), EnvFiles = [File("prod.env")] });

        Assert.True(result.Succeeded, string.Join("\n", result.Diagnostics));
        var web = result.Application!.Services.Single();
        Assert.Equal(("web:1.0", 3), (web.Image, web.Replicas));
        Assert.Equal([8080, 8443], web.Endpoints.Select(e => e.Port!.Value));
    }

    // ---- wrongly accepted until now ----------------------------------------------------------------------------

    [Fact]
    public void Ports_InvalidHostIp_IsAnError()
    {
        var result = Load("services:\n  web:\n    image: x\n    ports: [\"127.0.1:8080:80\"]\n");

        Assert.Equal("compose.yaml:4:13: services.web.ports[0]: '127.0.1' is not an IP address; write four numbers such as 127.0.0.1, or an IPv6 address in brackets such as [::1]", Errors(result));
    }

    [Fact]
    public void NumericKeys_AreErrors_AsComposeWantsStrings()
    {
        var result = Load("services:\n  123:\n    image: x\n  web:\n    image: x\n    environment:\n      1: a\n");

        Assert.Equal("""
            compose.yaml:2:3: services.123: the key 123 is a number in YAML, but keys here must be strings (as Compose requires); quote it ("123") or rename it
            compose.yaml:7:7: services.web.environment.1: the key 1 is a number in YAML, but keys here must be strings (as Compose requires); quote it ("1") or rename it
            """, Errors(result));
    }

    [Fact]
    public void MergeKey_OfAScalar_IsAnError()
    {
        var result = Load("x-a: &a hello\nservices:\n  web:\n    <<: *a\n    image: x\n");

        Assert.Equal("compose.yaml:1:6: : '<<:' merges a mapping (or a list of mappings) into this one, not a single value; point it at an anchored mapping (<<: *defaults)", Errors(result));
    }
}
