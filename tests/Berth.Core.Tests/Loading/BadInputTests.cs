
namespace Berth.Core.Tests.Loading;

/// <summary>Every bad input gets an exact message at its exact line and column.</summary>
public class BadInputTests
{
    private static readonly string Folder = Path.Combine(Path.GetTempPath(), "berth-bad-input");

    private static string[] Errors(string yaml, string file = "berth.yaml", Dictionary<string, string>? env = null)
    {
        var result = SpecLoader.LoadText(yaml, Path.Combine(Folder, file), new LoadOptions { Environment = env ?? [] });
        Assert.Null(result.Application);
        Assert.False(result.Succeeded);
        return [.. result.Errors.Select(d => $"{d.Line}:{d.Column}: {d.Path}: {d.Message}")];
    }

    [Fact]
    public void Load_MisspelledServiceKey_SuggestsTheKnownKey()
    {
        Assert.Equal(
        [
            "2:3: services.web: has neither image: nor run:; add run: [program, args…] to run it as a process, or image: to run it in a container",
            "3:5: services.web.imgae: unknown key 'imgae' in a service; did you mean 'image'?",
        ], Errors("""
            services:
              web:
                imgae: nginx
            """));
    }

    [Fact]
    public void Load_TelemetryBadEndpointAndLimit_SaysWhatToWrite()
    {
        Assert.Equal(
        [
            "1:28: telemetry.otlp_endpoint: 'localhost:4318' is not an http(s) URL; write the collector's OTLP/HTTP address, e.g. http://127.0.0.1:4318",
            "1:55: telemetry.max_spans: must be between 1 and 10000000, got 0",
        ], Errors("""
            telemetry: {otlp_endpoint: localhost:4318, max_spans: 0}
            services:
              web: {run: [app]}
            """));
    }

    [Fact]
    public void Load_MisspelledTopLevelKey_SuggestsServices()
    {
        Assert.Equal(
        [
            "1:1: servics: unknown key 'servics' in the spec; did you mean 'services'?",
            "1:1: : has no services:; add a services: mapping with at least one service",
        ], Errors("""
            servics:
              web:
                run: [app]
            """));
    }

    [Fact]
    public void Load_UnknownKeyWithNothingClose_PointsToTheReference()
    {
        Assert.Equal(["3:5: services.web.frobnicate: unknown key 'frobnicate' in a service; see docs/spec.md for the keys a service takes"], Errors("""
            services:
              web:
                frobnicate: 1
                run: [app]
            """));
    }

    [Fact]
    public void Load_CamelCaseKey_SuggestsSnakeCase()
    {
        Assert.Equal(["4:5: services.web.workingDir: unknown key 'workingDir' in a service; did you mean 'working_dir'?"], Errors("""
            services:
              web:
                run: [app]
                workingDir: /srv
            """));
    }

    [Fact]
    public void Load_ReplicasIsAList_ReportsWrongType()
    {
        Assert.Equal(["4:15: services.web.replicas: must be a whole number, got a list"], Errors("""
            services:
              web:
                run: [app]
                replicas: [1, 2]
            """));
    }

    [Fact]
    public void Load_ReplicasIsAWord_ReportsWrongType()
    {
        Assert.Equal(["4:15: services.web.replicas: must be a whole number, got 'two'"], Errors("""
            services:
              web:
                run: [app]
                replicas: two
            """));
    }

    [Fact]
    public void Load_NegativeReplicas_ReportsTheRange()
    {
        Assert.Equal(["4:15: services.web.replicas: must be 0 or more, got -1"], Errors("""
            services:
              web:
                run: [app]
                replicas: -1
            """));
    }

    [Fact]
    public void Load_BadCpuQuantity_SaysHowToWriteOne()
    {
        Assert.Equal(["6:14: services.web.resources.limits.cpu: '2x' is not a CPU quantity; write cores such as 0.5 or 2, or millicores such as 500m"], Errors("""
            services:
              web:
                run: [app]
                resources:
                  limits:
                    cpu: 2x
            """));
    }

    [Fact]
    public void Load_BadMemorySize_SaysHowToWriteOne()
    {
        Assert.Equal(["6:17: services.web.resources.requests.memory: '12Q' is not a memory size; write a number with a unit such as 256Mi, 1Gi or 500M"], Errors("""
            services:
              web:
                run: [app]
                resources:
                  requests:
                    memory: 12Q
            """));
    }

    [Fact]
    public void Load_DurationWithUnknownUnit_ListsTheUnits()
    {
        Assert.Equal(["4:24: services.web.stop_grace_period: '5sec' has an unknown unit 'sec'; use ns, us, ms, s, m or h"], Errors("""
            services:
              web:
                run: [app]
                stop_grace_period: 5sec
            """));
    }

    [Fact]
    public void Load_SamePortOnTwoServices_PointsAtBothPlaces()
    {
        Assert.Equal(["8:13: services.b.endpoints.http: port 8080 is already used by service a (services.a.endpoints.http at /tmp/berth-bad-input/berth.yaml:4:23); give one of them another port"],
            Errors("""
            services:
              a:
                run: [a]
                endpoints: {http: 8080}
              b:
                run: [b]
                endpoints:
                  http: 8080
            """).Select(e => e.Replace(Folder, "/tmp/berth-bad-input", StringComparison.Ordinal)));
    }

    [Fact]
    public void Load_ComposeSamePublishedPortTwice_ReportsTheConflict()
    {
        Assert.Equal(["6:9: services.web.ports[1]: port 8080 is already used by this service (services.web.ports[0] at /tmp/berth-bad-input/compose.yaml:5:9); give one of them another port"],
            Errors("""
            services:
              web:
                image: nginx
                ports:
                  - "8080:80"
                  - "8080:81"
            """, "compose.yaml").Select(e => e.Replace(Folder, "/tmp/berth-bad-input", StringComparison.Ordinal)));
    }

    [Fact]
    public void Load_DuplicateKey_ReportsIt()
    {
        Assert.Equal(["4:5: : this key appears twice in the same mapping; keep one"], Errors("""
            services:
              web:
                run: [app]
                run: [other]
            """));
    }

    [Fact]
    public void Load_DependsOnUnknownService_SuggestsTheClosest()
    {
        Assert.Equal(["5:9: services.web.depends_on[0]: depends on 'databse', which is not a service in this spec; did you mean 'database'?"], Errors("""
            services:
              web:
                run: [web]
                depends_on:
                  - databse
              database:
                run: [db]
            """));
    }

    [Fact]
    public void Load_DependsOnCycle_SpellsOutTheLoop()
    {
        Assert.Equal(["10:18: services.c.depends_on.a: depends_on forms a cycle: a → b → c → a; services in a cycle can never start, so remove one of these dependencies"], Errors("""
            services:
              a:
                run: [a]
                depends_on: {b: started}
              b:
                run: [b]
                depends_on: [c]
              c:
                run: [c]
                depends_on: {a: started}
            """));
    }

    [Fact]
    public void Load_DependsOnItself_ReportsIt()
    {
        Assert.Equal(["4:18: services.a.depends_on[0]: a depends on itself; remove this entry"], Errors("""
            services:
              a:
                run: [a]
                depends_on: [a]
            """));
    }

    [Fact]
    public void Load_WaitsForHealthyServiceWithoutProbe_SaysWhatToAdd()
    {
        Assert.Equal(["5:7: services.web.depends_on.db: waits for 'db' to be healthy, but db has no readiness probe; add probes.readiness to db, or use condition started"], Errors("""
            services:
              web:
                run: [web]
                depends_on:
                  db: healthy
              db:
                run: [db]
            """));
    }

    [Fact]
    public void Load_ServiceWithNeitherImageNorRun_SaysHowToFix()
    {
        Assert.Equal(["2:3: services.web: has neither image: nor run:; add run: [program, args…] to run it as a process, or image: to run it in a container"], Errors("""
            services:
              web:
                replicas: 2
            """));
    }

    // Each row: the probes: block of a service web (run: [app], endpoints: {http: 8080}) and the one error it must give.
    [Theory]
    [InlineData("readiness:\n  period: 10\n  http: /healthz",
        "7:17: services.web.probes.readiness.period: '10' has no unit; write 10s rather than 10 (units: ns, us, ms, s, m, h)")]
    [InlineData("liveness:\n  http: /healthz\n  failure_threshold: 3\n  success_threshold: 2",
        "9:28: services.web.probes.liveness.success_threshold: must be 1 for a liveness probe, got 2; one success is enough to count it alive (as Kubernetes requires)")]
    [InlineData("readiness:\n  http: /healthz\n  failure_threshold: 0",
        "8:28: services.web.probes.readiness.failure_threshold: must be 1 or more, got 0")]
    [InlineData("readiness:\n  http: /healthz\n  tcp: http",
        "7:9: services.web.probes.readiness: has http and tcp; a probe checks one way, keep one of them")]
    [InlineData("readiness: {http: /healthz, endpoint: htp}",
        "2:3: services.web.probes.readiness.endpoint: 'htp' is not an endpoint of web; did you mean 'http'?")]
    public void Load_BadProbe_SaysWhereWhatAndTheFix(string probes, string expected)
    {
        var yaml = "services:\n  web:\n    run: [app]\n    endpoints: {http: 8080}\n    probes:\n"
            + string.Join('\n', probes.Split('\n').Select(l => "      " + l));

        Assert.Equal([expected], Errors(yaml));
    }

    [Fact]
    public void Load_ProbeWithoutCheck_AsksForOne()
    {
        Assert.Equal(["5:18: services.web.probes.readiness: needs one of http:, tcp: or exec:, e.g. http: /healthz"], Errors("""
            services:
              web:
                run: [app]
                probes:
                  readiness: {period: 5s}
            """));
    }

    [Fact]
    public void Load_MaxSurgeAndMaxUnavailableBothZero_CannotProgress()
    {
        Assert.Equal(["6:24: services.web.update.max_unavailable: max_surge and max_unavailable are both 0, so a rolling update could never make progress; set max_surge: 1 (start a new replica first) or max_unavailable: 1"], Errors("""
            services:
              web:
                run: [app]
                update:
                  max_surge: 0
                  max_unavailable: 0%
            """));
    }

    [Fact]
    public void Load_PercentAbove100_ReportsTheRange()
    {
        Assert.Equal(["5:18: services.web.update.max_surge: must be at most 100%, got 150%"], Errors("""
            services:
              web:
                run: [app]
                update:
                  max_surge: 150%
            """));
    }

    [Fact]
    public void Load_LimitsBelowRequests_ReportsCpuAndMemory()
    {
        Assert.Equal(
        [
            "8:14: services.web.resources.limits.cpu: the CPU limit 250m is below the request 500m; raise the limit or lower the request",
            "9:17: services.web.resources.limits.memory: the memory limit 128Mi is below the request 256Mi; raise the limit or lower the request",
        ], Errors("""
            services:
              web:
                run: [app]
                resources:
                  requests: {cpu: 500m, memory: 256Mi}
                  limits:
                    # too small
                    cpu: 250m
                    memory: 128Mi
            """));
    }

    [Fact]
    public void Load_ComposeReservationAboveLimit_ReportsIt()
    {
        Assert.Equal(["7:19: services.web.deploy.resources.limits.memory: the memory limit 256Mi is below the reservation 512Mi; raise the limit or lower the reservation"], Errors("""
            services:
              web:
                image: nginx
                deploy:
                  resources:
                    limits:
                      memory: 256M
                    reservations:
                      memory: 512M
            """, "compose.yaml"));
    }

    [Fact]
    public void Load_RequiredVariableMissing_ShowsTheFileAuthorsMessage()
    {
        Assert.Equal(["5:20: services.web.environment.DB_PASSWORD: required variable DB_PASSWORD is not set: set it in .env"], Errors("""
            services:
              web:
                run: [app]
                environment:
                  DB_PASSWORD: ${DB_PASSWORD:?set it in .env}
            """));
    }

    [Fact]
    public void Load_LoneDollar_AsksForDoubleDollar()
    {
        Assert.Equal(["4:19: services.web.environment[0]: has a '$' that starts no variable at '$1'; write $$ for a literal $, or ${NAME} for a variable"], Errors("""
            services:
              web:
                run: [app]
                environment: ["PRICE=$100"]
            """));
    }

    [Fact]
    public void Load_UnclosedBrace_ReportsIt()
    {
        Assert.Equal(["3:12: services.web.image: has a '${' without its closing '}'"], Errors("""
            services:
              web:
                image: "app:${TAG"
            """));
    }

    [Fact]
    public void Load_UnclosedFlowList_ReportsWhereTheYamlStopsMakingSense()
    {
        Assert.Equal(["3:10: : is not valid YAML after this point; look for a [ or { that is never closed, or an unclosed quote"], Errors("""
            services:
              web:
                run: [app
                replicas: 2
            """));
    }

    [Fact]
    public void Load_BadIndentation_ReportsTheParserPosition()
    {
        Assert.Equal(["4:5: : is not valid YAML: While parsing a block mapping, did not find expected key"], Errors("""
            services:
              web:
               run: [app]
                replicas: 2
            """));
    }

    [Fact]
    public void Load_EmptyFile_SaysWhatASpecNeeds()
    {
        Assert.Equal(["1:1: : is empty; a spec needs services: with at least one service"], Errors("# nothing yet\n"));
    }

    [Fact]
    public void Load_ComposeMisspelledDependsOn_Suggests()
    {
        Assert.Equal(["4:5: services.web.depend_on: unknown key 'depend_on' in a Compose service; did you mean 'depends_on'?"], Errors("""
            services:
              web:
                image: nginx
                depend_on: [db]
              db:
                image: postgres
            """, "compose.yaml"));
    }

    [Fact]
    public void Load_ComposeHealthcheckWithoutCmdPrefix_ExplainsTheForms()
    {
        Assert.Equal(["5:13: services.db.healthcheck.test: must start with \"CMD\" (then the command and its arguments), \"CMD-SHELL\" (then one shell command) or be [\"NONE\"], got [\"pg_isready\", \"-U\", \"postgres\"]"], Errors("""
            services:
              db:
                image: postgres
                healthcheck:
                  test: ["pg_isready", "-U", "postgres"]
            """, "compose.yaml"));
    }

    [Fact]
    public void Load_ComposeRestartTypo_SuggestsThePolicy()
    {
        Assert.Equal(["4:14: services.web.restart: 'allways' is not a restart policy; use no, always, on-failure, on-failure:N or unless-stopped (did you mean 'always'?)"], Errors("""
            services:
              web:
                image: nginx
                restart: allways
            """, "compose.yaml"));
    }

    [Fact]
    public void Load_ComposeMalformedPort_ShowsTheForms()
    {
        Assert.Equal(["5:9: services.web.ports[0]: '1:2:3:4' is not a port; write TARGET, PUBLISHED:TARGET or HOST_IP:PUBLISHED:TARGET, e.g. 8080:80"], Errors("""
            services:
              web:
                image: nginx
                ports:
                  - "1:2:3:4"
            """, "compose.yaml"));
    }

    [Fact]
    public void Load_ComposeUndeclaredNamedVolume_AsksToDeclareIt()
    {
        Assert.Equal(["5:9: services.db.volumes[0]: uses volume 'pgdata', which is not declared; add it under the top-level volumes: (or did you mean 'pg-data'?)"], Errors("""
            services:
              db:
                image: postgres
                volumes:
                  - pgdata:/var/lib/postgresql/data
            volumes:
              pg-data:
            """, "compose.yaml"));
    }

    [Fact]
    public void Load_MissingEnvFile_SaysWhereItLooked()
    {
        Assert.Equal([$"4:15: services.web.env_file: env file 'missing.env' does not exist (looked for {Path.Combine(Folder, "missing.env")}); create it, or mark it required: false"], Errors("""
            services:
              web:
                image: nginx
                env_file: missing.env
            """, "compose.yaml"));
    }

    [Fact]
    public void Load_BadLineInEnvFile_PointsIntoTheEnvFile()
    {
        var dir = Directory.CreateTempSubdirectory("berth-env-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(dir, "broken.env"), "GOOD=1\n# comment\n  not a pair\n");

            var result = SpecLoader.LoadText("services:\n  web:\n    image: nginx\n    env_file: broken.env\n", Path.Combine(dir, "compose.yaml"),
                new LoadOptions { Environment = new Dictionary<string, string>() });

            Assert.Equal([Path.Combine(dir, "broken.env") + ":3:3: error: 'not a pair' is not KEY=value"], result.Errors.Select(d => d.ToString()));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Load_ComposeKeysInBerthYaml_SayWhatBerthYamlUses()
    {
        Assert.Equal(
        [
            "3:5: services.web.command: 'command' is a Compose key; in berth.yaml write run: [program, args…] (or name the file compose.yaml to load it as Compose)",
            "4:5: services.web.ports: 'ports' is a Compose key; in berth.yaml write endpoints: {http: 8080} (or name the file compose.yaml to load it as Compose)",
        ], Errors("""
            services:
              web:
                command: [app]
                ports: ["8080:80"]
                image: web:1
            """));
    }

    [Fact]
    public void Load_EnumTypo_SuggestsTheValue()
    {
        Assert.Equal(["4:14: services.web.restart: 'allways' is not one of always, on-failure, never; did you mean 'always'?"], Errors("""
            services:
              web:
                run: [app]
                restart: allways
            """));
    }

    [Fact]
    public void Load_SplitWeightsNotHundred_ReportsTheSum()
    {
        Assert.Equal(["6:9: services.web.mesh.split: weights add up to 110; make the weights of the routes without a header add up to 100"], Errors("""
            services:
              web:
                run: [app]
                mesh:
                  split:
                    - {version: "1", weight: 90}
                    - {version: "2", weight: 20}
            """));
    }

    [Fact]
    public void Load_AutoscaleMaxBelowMin_ReportsBoth()
    {
        Assert.Equal(["4:46: services.web.autoscale.max: max 2 is below min 3; make max at least min"], Errors("""
            services:
              web:
                run: [app]
                autoscale: {min: 3, target_rps: 50, max: 2}
            """));
    }

    [Fact]
    public void Load_InvalidServiceName_SaysWhatIsAllowed()
    {
        Assert.Equal(["2:3: services.my service: 'my service' is not a valid service name; use letters, digits, '-' and '_', starting with a letter or digit"], Errors("""
            services:
              my service:
                run: [app]
            """));
    }

    [Fact]
    public void Load_ManyProblems_ReportsEveryOneInFileOrder()
    {
        var errors = Errors("""
            services:
              web:
                run: [app]
                replicas: -2
                restart: sometimes
              api:
                imag: api:1
                depends_on: [nope]
            """);
        Assert.Equal(
        [
            "4:15: services.web.replicas: must be 0 or more, got -2",
            "5:14: services.web.restart: 'sometimes' is not one of always, on-failure, never",
            "6:3: services.api: has neither image: nor run:; add run: [program, args…] to run it as a process, or image: to run it in a container",
            "7:5: services.api.imag: unknown key 'imag' in a service; did you mean 'image'?",
            "8:18: services.api.depends_on[0]: depends on 'nope', which is not a service in this spec",
        ], errors);
    }

    [Fact]
    public void Diagnostic_ToString_IsFileLineColumnSeverityPathMessage()
    {
        var result = SpecLoader.LoadText("services:\n  web:\n    run: [app]\n    replicas: -1\n", "specs/berth.yaml", new LoadOptions { Environment = new Dictionary<string, string>() });

        Assert.Equal("specs/berth.yaml:4:15: error: services.web.replicas: must be 0 or more, got -1", Assert.Single(result.Diagnostics).ToString());
    }
}
