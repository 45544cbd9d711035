
namespace Berth.Kubernetes.Tests.Generation;

public sealed class GenerationDiagnosticTests
{
    private static ManifestSet Generate(params Service[] services) =>
        ManifestGenerator.Generate(new Application { Name = "demo", BaseDirectory = "/src/demo", Services = [.. services] });

    [Fact]
    public void Generate_ProcessServiceWithoutImage_ErrorSaysToAddImageOrBuild()
    {
        var set = Generate(new Service { Name = "worker", Command = ["python", "worker.py"] });

        Assert.False(set.Succeeded);
        Assert.Equal(
            "error: services.worker: has no image: or build:, so there is nothing to run in a pod; give service 'worker' an image: or build: to run it on Kubernetes",
            Assert.Single(set.Errors).ToString());
        Assert.Null(set.Find("Deployment", "worker"));
    }

    [Fact]
    public void Generate_HostBindMount_WarnsAndLeavesItOut()
    {
        var set = Generate(new Service
        {
            Name = "web",
            Image = "nginx:1.27",
            Volumes = [new VolumeMount { Type = VolumeType.Bind, Source = "/src/demo/site", Target = "/usr/share/nginx/html" }],
        });

        Assert.True(set.Succeeded);
        Assert.Equal(
            "warning: services.web.volumes[0]: host bind mount './site' → '/usr/share/nginx/html' was left out: a pod cannot see this machine's files; bake them into the image, put them in a ConfigMap, or use a named volume",
            Assert.Single(set.Warnings).ToString());
        Assert.Null(Yaml.Get(set.Find("Deployment", "web")!.ToYaml(), "spec.template.spec.volumes"));
    }

    [Fact]
    public void Generate_BuildWithoutImage_WarnsToPushAndNamesTheImage()
    {
        var set = Generate(new Service { Name = "api", Build = new BuildSpec { Context = "/src/demo/api" } });

        Assert.True(set.Succeeded);
        Assert.Equal(
            "warning: services.api: is built locally from 'api'; the cluster pulls images, so build and push it (docker build -t REGISTRY/demo-api:latest api && docker push REGISTRY/demo-api:latest) and set image: to that name (the manifest says 'demo-api:latest')",
            Assert.Single(set.Warnings).ToString());
        Assert.Equal("demo-api:latest", Yaml.Get(set.Find("Deployment", "api")!.ToYaml(), "spec.template.spec.containers[0].image"));
    }

    [Fact]
    public void Generate_ManyProblems_ReportsEveryOne()
    {
        var set = Generate(
            new Service { Name = "a", Command = ["a"] },
            new Service { Name = "b", Command = ["b"] },
            new Service { Name = "c", Image = "c", Readiness = new Probe { Kind = ProbeKind.Http, Endpoint = "admin" }, Endpoints = [new Endpoint { Name = "http", Port = 80 }] });

        Assert.Equal(
            [
                "error: services.a: has no image: or build:, so there is nothing to run in a pod; give service 'a' an image: or build: to run it on Kubernetes",
                "error: services.b: has no image: or build:, so there is nothing to run in a pod; give service 'b' an image: or build: to run it on Kubernetes",
                "error: services.c.readiness: names endpoint 'admin', which the service does not have; use one of: http",
            ],
            set.Errors.Select(e => e.ToString()));
    }

    [Fact]
    public void Generate_NamesThatCollideAfterSanitizing_ErrorNamesBoth()
    {
        var set = Generate(new Service { Name = "my_api", Image = "x" }, new Service { Name = "My-Api", Image = "y" });

        Assert.Contains("error: services.My-Api: becomes the Kubernetes name 'my-api', as service 'my_api' does; rename one of them", set.Errors.Select(e => e.ToString()));
    }

    [Fact]
    public void Generate_SubSecondProbePeriod_RoundsUpAndWarns()
    {
        var set = Generate(new Service { Name = "api", Image = "x", Endpoints = [new Endpoint { Port = 80 }], Liveness = new Probe { Kind = ProbeKind.Http, Period = TimeSpan.FromMilliseconds(500) } });

        Assert.Contains("warning: services.api.liveness.period: 500ms was rounded up to 1s; Kubernetes counts this in whole seconds", set.Warnings.Select(w => w.ToString()));
        Assert.Equal("1", Yaml.Get(set.Find("Deployment", "api")!.ToYaml(), "spec.template.spec.containers[0].livenessProbe.periodSeconds"));
    }

    [Fact]
    public void Generate_EnvPointingAtAnotherServicesStablePort_RewritesToClusterDns()
    {
        var set = Generate(
            new Service { Name = "db", Image = "postgres:16", Endpoints = [new Endpoint { Name = "pg", Port = 5432, Protocol = EndpointProtocol.Tcp }] },
            new Service
            {
                Name = "api",
                Image = "api",
                Env = ImmutableSortedDictionary<string, string>.Empty.Add("DB", "postgres://u@127.0.0.1:5432/app").Add("OTHER", "http://localhost:9999"),
            });

        var configMap = set.Find("ConfigMap", "api-env")!.ToYaml();
        Assert.Equal("postgres://u@db:5432/app", Yaml.Get(configMap, "data.DB"));
        Assert.Equal("tcp://db:5432", Yaml.Get(configMap, "data.services__db__pg__0"));
        Assert.Equal("http://localhost:9999", Yaml.Get(configMap, "data.OTHER"));
        Assert.Contains(set.Warnings, w => w.Path == "services.api.environment.OTHER");
    }

    [Fact]
    public void Generate_SecretEnv_NeverInConfigMapAndWarnsAboutTheFile()
    {
        var set = Generate(new Service
        {
            Name = "api",
            Image = "api",
            Env = ImmutableSortedDictionary<string, string>.Empty.Add("TOKEN", "hunter2").Add("MODE", "x"),
            SecretEnv = ["TOKEN"],
        });

        Assert.DoesNotContain("hunter2", set.Find("ConfigMap", "api-env")!.ToYaml(), StringComparison.Ordinal);
        Assert.DoesNotContain("hunter2", set.Find("Secret", "api-env")!.ToYaml(), StringComparison.Ordinal); // base64 only
        Assert.DoesNotContain(set.Diagnostics, d => d.Message.Contains("hunter2", StringComparison.Ordinal));
        Assert.Contains(set.Warnings, w => w.Message.StartsWith("secret values (TOKEN) are written to api-env-secret.yaml", StringComparison.Ordinal));
    }

    [Fact]
    public void Generate_ServiceWithoutPortsThatOthersAddressWithAPort_GetsAServiceOnThatPort()
    {
        var set = Generate(
            new Service { Name = "redis", Image = "redis:7" },
            new Service { Name = "web", Image = "web", Env = ImmutableSortedDictionary<string, string>.Empty.Add("BROKER", "redis://redis:6379/0") });

        Assert.Equal("6379", Yaml.Get(set.Find("Service", "redis")!.ToYaml(), "spec.ports[0].port"));
        Assert.Equal(
            "warning: services.redis: has no ports:, but 'web' connects to redis:6379, so its Service listens on 6379; declare it with expose: [6379] to make that explicit",
            Assert.Single(set.Warnings).ToString());
    }

    [Fact]
    public void Generate_DependencyWithoutPorts_WarnsThatItCannotBeReached()
    {
        var set = Generate(
            new Service { Name = "db", Image = "postgres:16" },
            new Service { Name = "web", Image = "web", DependsOn = [new Dependency("db")] });

        Assert.Null(set.Find("Service", "db"));
        Assert.Equal(
            "warning: services.db: has no ports:, so it gets no Kubernetes Service and 'web' cannot reach it by name; add expose: [PORT] with the port it listens on",
            Assert.Single(set.Warnings).ToString());
    }

    [Fact]
    public void Generate_BadVolumeSizeAndDomain_ErrorsSayHowToWriteThem()
    {
        var app = new Application { Name = "demo", Services = [new Service { Name = "api", Image = "x" }] };

        Assert.Equal(
            "error: volume-size: 'lots' is not a Kubernetes storage quantity; write it as 500Mi, 10Gi or 1Ti",
            Assert.Single(ManifestGenerator.Generate(app, new GenerateOptions { VolumeSize = "lots" }).Errors).ToString());
        Assert.Equal(
            "error: ingress-domain: 'Example_Com' is not a DNS name; write it as example.com (lowercase letters, digits, '-' and '.')",
            Assert.Single(ManifestGenerator.Generate(app, new GenerateOptions { IngressDomain = "Example_Com" }).Errors).ToString());
    }

    [Fact]
    public void Generate_ServiceOthersWaitToComplete_IsAJobNotADeployment()
    {
        var set = Generate(
            new Service { Name = "migrate", Image = "app", Command = ["./migrate"], Restart = RestartPolicy.Default with { Mode = RestartMode.OnFailure, MaxAttempts = 3 } },
            new Service { Name = "app", Image = "app", Replicas = 2, DependsOn = [new Dependency("migrate", DependencyCondition.Completed)] });

        Assert.Null(set.Find("Deployment", "migrate"));
        var job = set.Find("Job", "migrate")!.ToYaml();
        Assert.Equal("OnFailure", Yaml.Get(job, "spec.template.spec.restartPolicy"));
        Assert.Equal("3", Yaml.Get(job, "spec.backoffLimit"));
        Assert.Equal("./migrate", Yaml.Get(job, "spec.template.spec.containers[0].args[0]"));
        Assert.NotNull(set.Find("Deployment", "app"));
        Assert.Equal(
            "warning: services.migrate: runs to completion ('app' waits for it to finish), so it is a Job; Kubernetes starts 'app' without waiting, so make it retry until this job's work is there",
            Assert.Single(set.Warnings).ToString());
    }

    [Fact]
    public void Generate_RangesKubernetesRejects_ErrorsSayWhatToChange()
    {
        var set = Generate(new Service
        {
            Name = "api",
            Image = "x",
            Update = new UpdateStrategy { MinReady = TimeSpan.FromMinutes(10) },
            Autoscale = new AutoscalePolicy { Min = 5, Max = 2 },
        });

        Assert.Equal(
            [
                "error: services.api.update.min_ready: 10m is not shorter than progress_deadline (10m), which Kubernetes rejects; shorten min_ready or lengthen progress_deadline",
                "error: services.api.autoscale: min 5 and max 2 do not make a range Kubernetes takes (1 ≤ min ≤ max); set them so",
            ],
            set.Errors.Select(e => e.ToString()));
    }

    [Fact]
    public void Generate_LabelThatIsNoAnnotationKey_IsLeftOutWithAWarning()
    {
        var set = Generate(new Service
        {
            Name = "web",
            Image = "x",
            Labels = ImmutableSortedDictionary<string, string>.Empty.Add("traefik.http.routers.web.rule", "Host(`a`)").Add("bad key!", "v"),
        });

        var deployment = set.Find("Deployment", "web")!.ToYaml();
        Assert.Equal("Host(`a`)", Yaml.Get(deployment, "metadata.annotations.traefik~http~routers~web~rule"));
        Assert.Equal(
            "warning: services.web.labels.bad key!: was left out: Kubernetes annotation keys are an optional DNS prefix and '/', then at most 63 letters, digits, '-', '_' or '.'",
            Assert.Single(set.Warnings).ToString());
    }

    [Fact]
    public void Generate_BadNamespace_ErrorSuggestsAValidName()
    {
        var set = ManifestGenerator.Generate(new Application { Name = "demo", Services = [new Service { Name = "a", Image = "x" }] }, new GenerateOptions { Namespace = "Prod_NS" });

        Assert.Equal(
            "error: namespace: 'Prod_NS' is not a valid namespace name; use lowercase letters, digits and '-', starting with a letter (e.g. prod-ns)",
            Assert.Single(set.Errors).ToString());
    }

    [Fact]
    public void Generate_ProcessServiceWithImage_LeavesTheHostWorkingFolderOut()
    {
        var set = Generate(new Service { Name = "api", Image = "x", Runtime = RuntimeKind.Process, Command = ["./api"], WorkingDir = "/home/me/shop" });

        Assert.Null(Yaml.Get(set.Find("Deployment", "api")!.ToYaml(), "spec.template.spec.containers[0].workingDir"));
    }

    [Fact]
    public void Generate_ServiceNameOver63Characters_SaysItIsTooLongAndByHowMuch()
    {
        var name = "orders-" + new string('x', 63);

        var set = Generate(new Service { Name = name, Image = "example/orders:1", Endpoints = [new Endpoint { Port = 8080 }] });

        Assert.False(set.Succeeded);
        Assert.Equal(
            $"error: services.{name}: the name is too long for Kubernetes: '{name}' is 70 characters, 7 more than the 63 a Service name (a DNS-1035 label) allows; shorten it by at least 7",
            Assert.Single(set.Errors).ToString());
    }

    [Fact]
    public void Generate_ServiceNameOf63Characters_IsAccepted()
    {
        var name = "a" + new string('b', 62);

        var set = Generate(new Service { Name = name, Image = "example/b:1", Endpoints = [new Endpoint { Port = 8080 }] });

        Assert.True(set.Succeeded, string.Join("\n", set.Errors));
        Assert.NotNull(set.Find("Service", name));
    }

    [Fact]
    public void Generate_StatefulSetWhoseHeadlessServiceNameIsTooLong_SaysByHowMuch()
    {
        var name = "c" + new string('a', 59); // 60 characters: fine for the service, not for '{name}-headless'

        var set = Generate(new Service
        {
            Name = name, Image = "redis:7", Replicas = 3, Endpoints = [new Endpoint { Port = 6379 }],
            Volumes = [new VolumeMount { Type = VolumeType.Volume, Source = "data", Target = "/data" }],
        });

        Assert.Equal(
            $"error: services.{name}: the name is too long for Kubernetes: its StatefulSet needs the headless Service '{name}-headless', 69 characters, 6 more than the 63 a Service name allows; shorten the service name by at least 6",
            Assert.Single(set.Errors).ToString());
    }
}
