using System.Collections.Immutable;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using Berth.Core.Loading;
using Berth.Core.Model;
using k8s;
using k8s.Models;

namespace Berth.Kubernetes;

/// <summary>Maps an <see cref="Application"/> to Kubernetes (and Istio) objects. Pure: same input, byte-identical output.</summary>
public static partial class ManifestGenerator
{
    public const string NameLabel = "app.kubernetes.io/name";
    public const string PartOfLabel = "app.kubernetes.io/part-of";
    public const string ManagedByLabel = "app.kubernetes.io/managed-by";
    public const string ComponentLabel = "app.kubernetes.io/component";

    /// <summary>Hash of the env ConfigMap and Secret on the pod template, so a config change rolls the pods (Helm's checksum pattern).</summary>
    public const string ConfigHashAnnotation = "berth.dev/config-hash";

    // Apply order: what others reference first, as kubectl apply -k sorts.
    private static readonly string[] KindOrder =
    [
        "Namespace", "ConfigMap", "Secret", "PersistentVolumeClaim", "Service", "Deployment", "StatefulSet", "Job",
        "HorizontalPodAutoscaler", "PodDisruptionBudget", "Ingress", "DestinationRule", "VirtualService",
    ];

    public static ManifestSet Generate(Application app, GenerateOptions? options = null)
    {
        options ??= new GenerateOptions();
        var context = new Context(app, options);
        context.Run();
        var objects = context.Objects
            .OrderBy(o => Array.IndexOf(KindOrder, o.Kind))
            .ThenBy(o => o.Name, StringComparer.Ordinal)
            .ToImmutableArray();
        return new ManifestSet(objects, [.. context.Diagnostics]);
    }

    [GeneratedRegex(@"\b(?:127\.0\.0\.1|localhost|0\.0\.0\.0|\[::1\])(?::(\d{1,5}))\b")]
    private static partial Regex LoopbackAddress();

    // An address with a port or in a URL: a bare "localhost" (Django's ALLOWED_HOSTS) names no service.
    [GeneratedRegex(@"(?:://|@|\b)(?:127\.0\.0\.1|localhost)(?::\d+)(?!\d)|://(?:127\.0\.0\.1|localhost)\b")]
    private static partial Regex StillLoopback();

    [GeneratedRegex(@"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")]
    private static partial Regex IngressHost();

    [GeneratedRegex(@"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")]
    private static partial Regex StorageQuantity();

    // What the API server defaults a claim's volumeMode to; written out so a repeated apply matches the stored claim.
    private const string FilesystemVolumeMode = "Filesystem";

    private static bool IsQuantity(string text) => StorageQuantity().IsMatch(text);

    private sealed class Context(Application app, GenerateOptions options)
    {
        public List<ManifestObject> Objects { get; } = [];

        public List<GenerationDiagnostic> Diagnostics { get; } = [];

        private readonly string _appLabel = KubeNames.LabelValue(app.Name);
        private readonly Dictionary<string, string> _serviceNames = [];

        // Stable port → the cluster DNS name and port that replaces 127.0.0.1:port in env values.
        private readonly Dictionary<int, string> _portOwners = [];

        public void Run()
        {
            if (!IsQuantity(options.VolumeSize))
            {
                Error("volume-size", $"'{options.VolumeSize}' is not a Kubernetes storage quantity; write it as 500Mi, 10Gi or 1Ti");
                return;
            }

            if (options.IngressDomain is { } domain && !IngressHost().IsMatch($"x.{domain}"))
            {
                Error("ingress-domain", $"'{domain}' is not a DNS name; write it as example.com (lowercase letters, digits, '-' and '.')");
                return;
            }

            if (options.Namespace is { } ns && KubeNames.Label(ns) != ns)
            {
                Error("namespace", $"'{ns}' is not a valid namespace name; use lowercase letters, digits and '-', starting with a letter (e.g. {KubeNames.Label(ns)})");
                return;
            }

            InferEndpoints();

            foreach (var service in app.Services)
            {
                var name = KubeNames.Label(service.Name);
                var full = KubeNames.Label(service.Name, int.MaxValue);
                if (full.Length > KubeNames.MaxLabelLength)
                {
                    var over = full.Length - KubeNames.MaxLabelLength;
                    Error($"services.{service.Name}", $"the name is too long for Kubernetes: '{full}' is {full.Length} characters, {over} more than the {KubeNames.MaxLabelLength} a Service name (a DNS-1035 label) allows; shorten it by at least {over}");
                    continue;
                }

                var clash = _serviceNames.FirstOrDefault(kv => kv.Value == name);
                if (clash.Key is not null)
                {
                    Error($"services.{service.Name}", $"becomes the Kubernetes name '{name}', as service '{clash.Key}' does; rename one of them");
                    continue;
                }

                if (name != service.Name)
                {
                    Warning($"services.{service.Name}", $"is named '{name}' on Kubernetes (names there are lowercase letters, digits and '-')");
                }

                _serviceNames[service.Name] = name;
                foreach (var endpoint in service.Endpoints)
                {
                    var port = ServicePort(endpoint);
                    if (endpoint.Port is not null)
                    {
                        _portOwners.TryAdd(port, $"{name}:{port}");
                    }
                }
            }

            if (options.Mesh == MeshTarget.None)
            {
                foreach (var service in app.Services.Where(s => s.Mesh.Split.Length > 0))
                {
                    Warning($"services.{service.Name}.mesh.split", "a traffic split needs a service mesh on Kubernetes; pass --mesh istio to carry it over (without it all traffic goes to the one Deployment)");
                }
            }

            if (options.Namespace is not null)
            {
                Objects.Add(Wrap(new V1Namespace
                {
                    ApiVersion = "v1",
                    Kind = "Namespace",
                    Metadata = new V1ObjectMeta { Name = options.Namespace, Labels = Sorted((ManagedByLabel, "berth"), (PartOfLabel, _appLabel)) },
                }));
            }

            var volumeUsers = app.Services
                .SelectMany(s => s.Volumes.Where(v => v.Type == VolumeType.Volume && v.Source is not null).Select(v => (Volume: v.Source!, Service: s.Name)))
                .Distinct()
                .GroupBy(x => x.Volume)
                .ToDictionary(g => g.Key, g => g.Select(x => x.Service).ToList());
            var sharedClaims = new SortedSet<string>(StringComparer.Ordinal);

            foreach (var service in app.Services.Where(s => _serviceNames.ContainsKey(s.Name)))
            {
                GenerateService(service, volumeUsers, sharedClaims);
            }

            foreach (var volume in sharedClaims)
            {
                var users = volumeUsers[volume];
                var many = users.Count > 1 || users.Any(u => ScalesOut(app.FindService(u)!));
                if (many)
                {
                    Warning($"volumes.{volume}", $"is mounted by {Describe(users)} at once; its claim asks for ReadWriteMany, which needs a storage class that offers it (NFS, CephFS, Azure Files, EFS)");
                }

                Objects.Add(Wrap(new V1PersistentVolumeClaim
                {
                    ApiVersion = "v1",
                    Kind = "PersistentVolumeClaim",
                    Metadata = Meta(KubeNames.Label(volume), (PartOfLabel, _appLabel), (ManagedByLabel, "berth")),
                    Spec = new V1PersistentVolumeClaimSpec
                    {
                        AccessModes = [many ? "ReadWriteMany" : "ReadWriteOnce"],
                        VolumeMode = FilesystemVolumeMode,
                        Resources = new V1VolumeResourceRequirements { Requests = new Dictionary<string, ResourceQuantity> { ["storage"] = new(options.VolumeSize) } },
                    },
                }));
            }
        }

        /// <summary>Compose services reach each other by name on any port; Kubernetes only through a Service, which needs a port.
        /// A service without ports gets the ports other services' env values name it with (<c>redis://redis:6379</c>),
        /// and a warning when others depend on it but name no port.</summary>
        private void InferEndpoints()
        {
            var services = app.Services.ToList();
            for (var i = 0; i < services.Count; i++)
            {
                var service = services[i];
                if (service.Endpoints.Length > 0)
                {
                    continue;
                }

                var pattern = new Regex($@"(?:(?<scheme>[a-z][a-z0-9+.-]*)://(?:[^@/\s]*@)?|(?<![\w.-])){Regex.Escape(service.Name)}:(?<port>\d{{1,5}})(?!\d)", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant);
                var found = new SortedDictionary<int, (bool Http, SortedSet<string> By)>();
                foreach (var other in app.Services.Where(o => o.Name != service.Name))
                {
                    foreach (var value in other.Env.Values.Concat(other.Command))
                    {
                        foreach (Match m in pattern.Matches(value))
                        {
                            var port = int.Parse(m.Groups["port"].Value, CultureInfo.InvariantCulture);
                            if (port is < 1 or > 65535)
                            {
                                continue;
                            }

                            var http = m.Groups["scheme"].Value.ToLowerInvariant() is "http" or "https";
                            if (!found.TryGetValue(port, out var entry))
                            {
                                entry = (http, new SortedSet<string>(StringComparer.Ordinal));
                                found[port] = entry;
                            }

                            entry.By.Add(other.Name);
                        }
                    }
                }

                var path = $"services.{service.Name}";
                if (found.Count > 0)
                {
                    services[i] = service with
                    {
                        Endpoints = [.. found.Select(f => new Endpoint
                        {
                            Name = found.Count == 1 ? (f.Value.Http ? "http" : "tcp") : $"{(f.Value.Http ? "http" : "tcp")}-{f.Key}",
                            Port = f.Key,
                            TargetPort = f.Key,
                            Protocol = f.Value.Http ? EndpointProtocol.Http : EndpointProtocol.Tcp,
                        })],
                    };
                    foreach (var (port, (_, by)) in found)
                    {
                        Warning(path, $"has no ports:, but {string.Join(", ", by.Select(b => $"'{b}'"))} connect{(by.Count == 1 ? "s" : "")} to {service.Name}:{port}, so its Service listens on {port}; declare it with expose: [{port}] to make that explicit");
                    }
                }
                else
                {
                    // Waiting for a one-shot task to complete needs no connection to it.
                    var dependents = app.Services.Where(o => o.DependsOn.Any(d => d.Service == service.Name && d.Condition != DependencyCondition.Completed)).Select(o => $"'{o.Name}'").ToList();
                    if (dependents.Count > 0)
                    {
                        Warning(path, $"has no ports:, so it gets no Kubernetes Service and {string.Join(", ", dependents)} cannot reach it by name; add expose: [PORT] with the port it listens on");
                    }
                }
            }

            app = app with { Services = [.. services] };
        }

        // Paths under the spec's folder are shown as written (./data), others as they are.
        private string? Relative(string? path)
        {
            if (path is null || !Path.IsPathRooted(path))
            {
                return path;
            }

            var relative = Path.GetRelativePath(app.BaseDirectory, path);
            return relative.StartsWith("..", StringComparison.Ordinal) || Path.IsPathRooted(relative) ? path
                : relative == "." ? "."
                : "./" + relative;
        }

        private static string Describe(List<string> users) =>
            users.Count == 1 ? $"the replicas of '{users[0]}'" : string.Join(", ", users.Select(u => $"'{u}'"));

        private static bool ScalesOut(Service s) => s.Replicas > 1 || s.Autoscale is { Max: > 1 };

        private void GenerateService(Service service, Dictionary<string, List<string>> volumeUsers, SortedSet<string> sharedClaims)
        {
            var path = $"services.{service.Name}";
            var name = _serviceNames[service.Name];
            var image = service.Image;
            if (image is null && service.Build?.Context is null)
            {
                Error(path, $"has no image: or build:, so there is nothing to run in a pod; give service '{service.Name}' an image: or build: to run it on Kubernetes");
                return;
            }

            if (image is null)
            {
                image = $"{KubeNames.Label(app.Name)}-{name}:latest";
                var buildContext = Path.GetRelativePath(app.BaseDirectory, service.Build!.Context!);
                Warning(path, $"is built locally from '{buildContext}'; the cluster pulls images, so build and push it (docker build -t REGISTRY/{image} {buildContext} && docker push REGISTRY/{image}) and set image: to that name (the manifest says '{image}')");
            }

            // Compose's service_completed_successfully marks a one-shot task (create buckets, migrate): a Job, not a Deployment
            // that would restart it forever.
            var waitingForIt = app.Services.Where(o => o.DependsOn.Any(d => d.Service == service.Name && d.Condition == DependencyCondition.Completed)).Select(o => $"'{o.Name}'").ToList();
            var runsToCompletion = waitingForIt.Count > 0;
            var selector = Sorted((NameLabel, name), (PartOfLabel, _appLabel));
            var labels = Sorted((NameLabel, name), (PartOfLabel, _appLabel), (ManagedByLabel, "berth"));

            var container = new V1Container
            {
                Name = name,
                Image = image,
                // A process service's working folder is a path on this machine (the loader resolves it); in a pod the image's WORKDIR applies.
                WorkingDir = service.EffectiveRuntime == RuntimeKind.Process ? null : service.WorkingDir,
            };
            MapCommand(service, container);
            MapUser(service, path, container);

            var ports = MapPorts(service, path, container);
            var configHash = MapEnv(service, path, name, labels, container);
            MapResources(service, container);
            container.LivenessProbe = MapProbe(service, service.Liveness, $"{path}.liveness", mustSucceedOnce: true);
            container.ReadinessProbe = MapProbe(service, service.Readiness, $"{path}.readiness", mustSucceedOnce: false);
            container.StartupProbe = MapProbe(service, service.Startup, $"{path}.startup", mustSucceedOnce: true);

            var podVolumes = new List<V1Volume>();
            var claimTemplates = new List<V1PersistentVolumeClaim>();
            var usesClaim = false;
            var mounts = new List<V1VolumeMount>();
            for (var i = 0; i < service.Volumes.Length; i++)
            {
                var mount = service.Volumes[i];
                var vpath = $"{path}.volumes[{i}]";
                switch (mount.Type)
                {
                    case VolumeType.Bind:
                        Warning(vpath, $"host bind mount '{Relative(mount.Source)}' → '{mount.Target}' was left out: a pod cannot see this machine's files; bake them into the image, put them in a ConfigMap, or use a named volume");
                        continue;
                    case VolumeType.Tmpfs:
                        {
                            var vname = $"tmpfs-{i}";
                            podVolumes.Add(new V1Volume { Name = vname, EmptyDir = new V1EmptyDirVolumeSource { Medium = "Memory" } });
                            mounts.Add(new V1VolumeMount { Name = vname, MountPath = mount.Target, ReadOnlyProperty = mount.ReadOnly ? true : null });
                            continue;
                        }

                    case VolumeType.Volume when mount.Source is null:
                        {
                            var vname = $"scratch-{i}";
                            podVolumes.Add(new V1Volume { Name = vname, EmptyDir = new V1EmptyDirVolumeSource() });
                            mounts.Add(new V1VolumeMount { Name = vname, MountPath = mount.Target, ReadOnlyProperty = mount.ReadOnly ? true : null });
                            continue;
                        }

                    default:
                        {
                            var claim = KubeNames.Label(mount.Source!);
                            var perReplica = volumeUsers[mount.Source!].Count == 1 && ScalesOut(service) && !runsToCompletion;
                            if (perReplica)
                            {
                                if (!claimTemplates.Any(t => t.Metadata.Name == claim))
                                {
                                    claimTemplates.Add(new V1PersistentVolumeClaim
                                    {
                                        ApiVersion = "v1",
                                        Kind = "PersistentVolumeClaim",
                                        Metadata = new V1ObjectMeta { Name = claim },
                                        Spec = new V1PersistentVolumeClaimSpec
                                        {
                                            AccessModes = ["ReadWriteOnce"],
                                            VolumeMode = FilesystemVolumeMode,
                                            Resources = new V1VolumeResourceRequirements { Requests = new Dictionary<string, ResourceQuantity> { ["storage"] = new(options.VolumeSize) } },
                                        },
                                    });
                                }
                            }
                            else
                            {
                                sharedClaims.Add(mount.Source!);
                                usesClaim = true;
                                if (!podVolumes.Any(v => v.Name == claim))
                                {
                                    podVolumes.Add(new V1Volume { Name = claim, PersistentVolumeClaim = new V1PersistentVolumeClaimVolumeSource { ClaimName = claim } });
                                }
                            }

                            mounts.Add(new V1VolumeMount { Name = claim, MountPath = mount.Target, ReadOnlyProperty = mount.ReadOnly ? true : null });
                            continue;
                        }
                }
            }

            container.VolumeMounts = mounts.Count > 0 ? mounts : null;

            var template = new V1PodTemplateSpec
            {
                Metadata = new V1ObjectMeta
                {
                    Labels = labels,
                    Annotations = configHash is null ? null : Sorted((ConfigHashAnnotation, configHash)),
                },
                Spec = new V1PodSpec
                {
                    Containers = [container],
                    Volumes = podVolumes.Count > 0 ? podVolumes : null,
                    TerminationGracePeriodSeconds = WholeSeconds(service.StopGracePeriod, $"{path}.stop_grace_period", min: 0),
                },
            };

            var kept = new List<(string, string)>();
            foreach (var (key, value) in service.Labels)
            {
                if (KubeNames.IsAnnotationKey(key))
                {
                    kept.Add((key, value));
                }
                else
                {
                    Warning($"{path}.labels.{key}", "was left out: Kubernetes annotation keys are an optional DNS prefix and '/', then at most 63 letters, digits, '-', '_' or '.'");
                }
            }

            var annotations = kept.Count > 0 ? Sorted([.. kept]) : null;
            int? replicas = service.Autoscale is null ? service.Replicas : null;
            var update = service.Update;
            var workloadKind = runsToCompletion ? "Job" : claimTemplates.Count > 0 ? "StatefulSet" : "Deployment";
            if (runsToCompletion)
            {
                Warning(path, $"runs to completion ({string.Join(", ", waitingForIt)} wait{(waitingForIt.Count == 1 ? "s" : "")} for it to finish), so it is a Job; Kubernetes starts {string.Join(", ", waitingForIt)} without waiting, so make {(waitingForIt.Count == 1 ? "it" : "them")} retry until this job's work is there");
                template.Spec.RestartPolicy = service.Restart.Mode == RestartMode.Never ? "Never" : "OnFailure";

                // A Job's pod template is immutable and it has already run: a config hash would only make re-applying fail.
                template.Metadata.Annotations = null;
                Objects.Add(Wrap(new V1Job
                {
                    ApiVersion = "batch/v1",
                    Kind = "Job",
                    Metadata = new V1ObjectMeta { Name = name, NamespaceProperty = options.Namespace, Labels = labels, Annotations = annotations },
                    Spec = new V1JobSpec
                    {
                        BackoffLimit = service.Restart.MaxAttempts ?? GenerateDefaults.JobBackoffLimit,
                        Template = template,
                    },
                }));
            }
            else if (claimTemplates.Count > 0)
            {
                var headless = $"{name}-headless";
                if (headless.Length > KubeNames.MaxLabelLength)
                {
                    var over = headless.Length - KubeNames.MaxLabelLength;
                    Error(path, $"the name is too long for Kubernetes: its StatefulSet needs the headless Service '{headless}', {headless.Length} characters, {over} more than the {KubeNames.MaxLabelLength} a Service name allows; shorten the service name by at least {over}");
                }

                var set = new V1StatefulSet
                {
                    ApiVersion = "apps/v1",
                    Kind = "StatefulSet",
                    Metadata = new V1ObjectMeta { Name = name, NamespaceProperty = options.Namespace, Labels = labels, Annotations = annotations },
                    Spec = new V1StatefulSetSpec
                    {
                        Replicas = replicas,
                        ServiceName = $"{name}-headless",
                        Selector = new V1LabelSelector { MatchLabels = selector },
                        Template = template,
                        VolumeClaimTemplates = claimTemplates,
                        MinReadySeconds = OmitZero(WholeSeconds(update.MinReady, $"{path}.update.min_ready", min: 0)),
                        RevisionHistoryLimit = update.RevisionHistoryLimit,
                        UpdateStrategy = new V1StatefulSetUpdateStrategy { Type = "RollingUpdate" },
                    },
                };
                Objects.Add(Wrap(set));
                Objects.Add(Wrap(new V1Service
                {
                    ApiVersion = "v1",
                    Kind = "Service",
                    Metadata = new V1ObjectMeta { Name = $"{name}-headless", NamespaceProperty = options.Namespace, Labels = labels },
                    Spec = new V1ServiceSpec
                    {
                        ClusterIP = "None",
                        Selector = selector,
                        Ports = ports.Count > 0 ? ports : null,
                        PublishNotReadyAddresses = true,
                    },
                }));
            }
            else
            {
                if (update.MinReady >= update.ProgressDeadline)
                {
                    Error($"{path}.update.min_ready", $"{Durations.Format(update.MinReady)} is not shorter than progress_deadline ({Durations.Format(update.ProgressDeadline)}), which Kubernetes rejects; shorten min_ready or lengthen progress_deadline");
                }

                var strategy = MapStrategy(service, path, usesClaim);
                var deployment = new V1Deployment
                {
                    ApiVersion = "apps/v1",
                    Kind = "Deployment",
                    Metadata = new V1ObjectMeta { Name = name, NamespaceProperty = options.Namespace, Labels = labels, Annotations = annotations },
                    Spec = new V1DeploymentSpec
                    {
                        Replicas = replicas,
                        Selector = new V1LabelSelector { MatchLabels = selector },
                        Template = template,
                        Strategy = strategy,
                        MinReadySeconds = OmitZero(WholeSeconds(update.MinReady, $"{path}.update.min_ready", min: 0)),
                        ProgressDeadlineSeconds = WholeSeconds(update.ProgressDeadline, $"{path}.update.progress_deadline", min: 1),
                        RevisionHistoryLimit = update.RevisionHistoryLimit,
                    },
                };
                Objects.Add(Wrap(deployment));
            }

            if (ports.Count > 0)
            {
                Objects.Add(Wrap(new V1Service
                {
                    ApiVersion = "v1",
                    Kind = "Service",
                    Metadata = new V1ObjectMeta { Name = name, NamespaceProperty = options.Namespace, Labels = labels },
                    Spec = new V1ServiceSpec { Type = "ClusterIP", Selector = selector, Ports = ports },
                }));
            }

            if (PublishedPorts.ExternalService(service, name, options, labels, selector, ports) is { } external)
            {
                Objects.Add(Wrap(external));
            }

            if (runsToCompletion)
            {
                MapIngress(service, path, name, labels, ports);
                return;
            }

            MapAutoscale(service, path, name, labels, workloadKind);
            var minReplicas = service.Autoscale?.Min ?? service.Replicas;
            if (minReplicas >= 2)
            {
                Objects.Add(Wrap(new V1PodDisruptionBudget
                {
                    ApiVersion = "policy/v1",
                    Kind = "PodDisruptionBudget",
                    Metadata = new V1ObjectMeta { Name = name, NamespaceProperty = options.Namespace, Labels = labels },
                    Spec = new V1PodDisruptionBudgetSpec
                    {
                        MaxUnavailable = GenerateDefaults.DisruptionMaxUnavailable,
                        Selector = new V1LabelSelector { MatchLabels = selector },
                    },
                }));
            }

            MapIngress(service, path, name, labels, ports);
            if (options.Mesh == MeshTarget.Istio && ports.Count > 0)
            {
                MapIstio(service, path, name, labels);
            }
        }

        private static void MapCommand(Service service, V1Container container)
        {
            if (service.Shell && service.Command.Length > 0)
            {
                container.Command = ["/bin/sh", "-c"];
                container.Args = [string.Join(' ', service.Command)];
                return;
            }

            if (service.Entrypoint is { } entrypoint)
            {
                container.Command = [.. entrypoint];
            }

            if (service.Command.Length > 0)
            {
                container.Args = [.. service.Command];
            }
        }

        private void MapUser(Service service, string path, V1Container container)
        {
            if (string.IsNullOrEmpty(service.User))
            {
                return;
            }

            var parts = service.User.Split(':', 2);
            if (!long.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var uid))
            {
                Warning($"{path}.user", $"'{service.User}' was left out: Kubernetes runs containers as a numeric user id (runAsUser); write the id, e.g. user: \"1000\" or \"1000:1000\"");
                return;
            }

            long? gid = parts.Length == 2 && long.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var g) ? g : null;
            container.SecurityContext = new V1SecurityContext { RunAsUser = uid, RunAsGroup = gid };
        }

        private static int ContainerPort(Endpoint endpoint) => endpoint.TargetPort ?? endpoint.Port ?? GenerateDefaults.ContainerPort;

        private static int ServicePort(Endpoint endpoint) => endpoint.Port ?? ContainerPort(endpoint);

        private List<V1ServicePort> MapPorts(Service service, string path, V1Container container)
        {
            var containerPorts = new List<V1ContainerPort>();
            var servicePorts = new List<V1ServicePort>();
            foreach (var endpoint in service.Endpoints)
            {
                var portName = KubeNames.Port(endpoint.Name);
                if (containerPorts.Any(p => p.Name == portName))
                {
                    Error($"{path}.endpoints.{endpoint.Name}", $"becomes the port name '{portName}', as another endpoint does; give the endpoints names that differ in their first 15 letters");
                    continue;
                }

                containerPorts.Add(new V1ContainerPort { Name = portName, ContainerPort = ContainerPort(endpoint), Protocol = "TCP" });
                servicePorts.Add(new V1ServicePort
                {
                    Name = portName,
                    Port = ServicePort(endpoint),
                    TargetPort = portName,
                    Protocol = "TCP",
                    // Kubernetes' appProtocol names (kubernetes.io/h2c), which Istio reads as the port's protocol.
                    AppProtocol = endpoint.Protocol == EndpointProtocol.Tcp ? "tcp"
                        : endpoint.Protocol == EndpointProtocol.H2c ? "kubernetes.io/h2c"
                        : endpoint.Protocol == EndpointProtocol.Grpc ? "grpc"
                        : "http",
                });
            }

            container.Ports = containerPorts.Count > 0 ? containerPorts : null;
            return servicePorts;
        }

        /// <summary>Plain env → a ConfigMap, secret env → a Secret, both referenced with envFrom; returns the config hash.</summary>
        private string? MapEnv(Service service, string path, string name, IDictionary<string, string> labels, V1Container container)
        {
            var env = new SortedDictionary<string, string>(StringComparer.Ordinal);
            foreach (var (key, value) in service.Env)
            {
                env[key] = RewriteLoopback(value);
            }

            // Service discovery: the Microsoft.Extensions.ServiceDiscovery keys Berth sets locally, now naming cluster DNS.
            foreach (var other in app.Services.Where(s => s.Name != service.Name && _serviceNames.ContainsKey(s.Name)))
            {
                foreach (var endpoint in other.Endpoints)
                {
                    var scheme = endpoint.Protocol == EndpointProtocol.Http ? "http" : "tcp";
                    env.TryAdd($"services__{other.Name}__{endpoint.Name}__0", $"{scheme}://{_serviceNames[other.Name]}:{ServicePort(endpoint)}");
                }
            }

            env.TryAdd("BERTH_SERVICE", service.Name);
            var first = service.Endpoints.FirstOrDefault();
            if (first is not null && first.TargetPort is null)
            {
                // The program takes its port from the environment, as Berth tells it locally.
                var port = ContainerPort(first).ToString(CultureInfo.InvariantCulture);
                env.TryAdd("PORT", port);
                if (first.Protocol == EndpointProtocol.Http)
                {
                    env.TryAdd("ASPNETCORE_URLS", $"http://+:{port}");
                }
            }

            var plain = new SortedDictionary<string, string>(StringComparer.Ordinal);
            var secret = new SortedDictionary<string, string>(StringComparer.Ordinal);
            foreach (var (key, value) in env)
            {
                if (!KubeNames.IsDataKey(key))
                {
                    Error($"{path}.environment.{key}", "is not a name Kubernetes takes into a ConfigMap or Secret (letters, digits, '-', '_' and '.'); rename the variable");
                    continue;
                }

                var isSecret = service.SecretEnv.Contains(key);
                (isSecret ? secret : plain)[key] = value;
                if (!isSecret && StillLoopback().IsMatch(value))
                {
                    Warning($"{path}.environment.{key}", "points at this machine (127.0.0.1/localhost), which inside a pod is the pod itself; name the service instead (e.g. db:5432), as the cluster's DNS resolves service names");
                }
            }

            var sources = new List<V1EnvFromSource>();
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            if (plain.Count > 0)
            {
                Objects.Add(Wrap(new V1ConfigMap
                {
                    ApiVersion = "v1",
                    Kind = "ConfigMap",
                    Metadata = new V1ObjectMeta { Name = $"{name}-env", NamespaceProperty = options.Namespace, Labels = labels },
                    Data = plain,
                }));
                sources.Add(new V1EnvFromSource { ConfigMapRef = new V1ConfigMapEnvSource { Name = $"{name}-env" } });
                foreach (var (k, v) in plain)
                {
                    hash.AppendData(Encoding.UTF8.GetBytes($"{k}={v}\n"));
                }
            }

            if (secret.Count > 0)
            {
                Objects.Add(Wrap(new V1Secret
                {
                    ApiVersion = "v1",
                    Kind = "Secret",
                    Metadata = new V1ObjectMeta { Name = $"{name}-env", NamespaceProperty = options.Namespace, Labels = labels },
                    Type = "Opaque",
                    Data = secret.ToDictionary(kv => kv.Key, kv => Encoding.UTF8.GetBytes(kv.Value)),
                }));
                sources.Add(new V1EnvFromSource { SecretRef = new V1SecretEnvSource { Name = $"{name}-env" } });
                Warning($"{path}.environment", $"secret values ({string.Join(", ", secret.Keys)}) are written to {name}-env-secret.yaml, base64-encoded but not encrypted; keep that file out of version control, or replace it with a sealed or external secret");
                foreach (var (k, v) in secret)
                {
                    hash.AppendData(Encoding.UTF8.GetBytes($"secret:{k}={v}\n"));
                }
            }

            if (sources.Count == 0)
            {
                return null;
            }

            container.EnvFrom = sources;
            return Convert.ToHexStringLower(hash.GetHashAndReset())[..16];
        }

        private string RewriteLoopback(string value) =>
            LoopbackAddress().Replace(value, m =>
                int.TryParse(m.Groups[1].Value, NumberStyles.None, CultureInfo.InvariantCulture, out var port) && _portOwners.TryGetValue(port, out var owner)
                    ? owner
                    : m.Value);

        private static void MapResources(Service service, V1Container container)
        {
            var r = service.Resources;
            var requests = new Dictionary<string, ResourceQuantity>();
            var limits = new Dictionary<string, ResourceQuantity>();
            if (r.CpuRequest is { } cpuRequest)
            {
                requests["cpu"] = new ResourceQuantity(cpuRequest.ToString());
            }

            if (r.MemoryRequest is { } memoryRequest)
            {
                requests["memory"] = new ResourceQuantity(memoryRequest.ToString());
            }

            if (r.CpuLimit is { } cpuLimit)
            {
                limits["cpu"] = new ResourceQuantity(cpuLimit.ToString());
            }

            if (r.MemoryLimit is { } memoryLimit)
            {
                limits["memory"] = new ResourceQuantity(memoryLimit.ToString());
            }

            if (requests.Count > 0 || limits.Count > 0)
            {
                container.Resources = new V1ResourceRequirements
                {
                    Requests = requests.Count > 0 ? requests : null,
                    Limits = limits.Count > 0 ? limits : null,
                };
            }
        }

        private V1Probe? MapProbe(Service service, Probe? probe, string path, bool mustSucceedOnce)
        {
            if (probe is null)
            {
                return null;
            }

            var result = new V1Probe
            {
                InitialDelaySeconds = OmitZero(WholeSeconds(probe.InitialDelay, $"{path}.initial_delay", min: 0)),
                PeriodSeconds = WholeSeconds(probe.Period, $"{path}.period", min: 1),
                TimeoutSeconds = WholeSeconds(probe.Timeout, $"{path}.timeout", min: 1),
                SuccessThreshold = probe.SuccessThreshold,
                FailureThreshold = probe.FailureThreshold,
            };
            if (mustSucceedOnce && probe.SuccessThreshold != 1)
            {
                Warning($"{path}.success_threshold", $"is {probe.SuccessThreshold}; Kubernetes requires 1 for liveness and startup probes, so 1 was written");
                result.SuccessThreshold = 1;
            }

            switch (probe.Kind)
            {
                case ProbeKind.Exec:
                    result.Exec = new V1ExecAction { Command = [.. probe.Command] };
                    return result;
                case ProbeKind.Http:
                case ProbeKind.Tcp:
                    {
                        var endpoint = probe.Endpoint is null ? service.Endpoints.FirstOrDefault() : service.Endpoints.FirstOrDefault(e => e.Name == probe.Endpoint);
                        IntOrString? port = null;
                        if (probe.Port is { } fixedPort)
                        {
                            port = fixedPort;
                        }
                        else if (endpoint is not null)
                        {
                            port = KubeNames.Port(endpoint.Name);
                        }

                        if (port is null)
                        {
                            Error(path, probe.Endpoint is null
                                ? "probes a port but the service has no endpoint; add an endpoint or give the probe a port:"
                                : $"names endpoint '{probe.Endpoint}', which the service does not have; use one of: {string.Join(", ", service.Endpoints.Select(e => e.Name))}");
                            return null;
                        }

                        if (probe.Kind == ProbeKind.Tcp)
                        {
                            result.TcpSocket = new V1TCPSocketAction { Port = port };
                        }
                        else
                        {
                            result.HttpGet = new V1HTTPGetAction
                            {
                                Path = probe.Path,
                                Port = port,
                                Scheme = "HTTP",
                                HttpHeaders = probe.Headers.Count > 0 ? [.. probe.Headers.Select(h => new V1HTTPHeader { Name = h.Key, Value = h.Value })] : null,
                            };
                        }

                        return result;
                    }

                default:
                    throw new ArgumentOutOfRangeException(nameof(probe), probe.Kind, "unknown probe kind");
            }
        }

        private V1DeploymentStrategy MapStrategy(Service service, string path, bool usesClaim)
        {
            var update = service.Update;
            if (usesClaim && !update.MaxSurge.IsZero && update.Order == UpdateOrder.StartFirst)
            {
                // A ReadWriteOnce claim attaches to one node: a surge pod elsewhere would hang in ContainerCreating.
                return new V1DeploymentStrategy { Type = "Recreate" };
            }

            IntOrString surge = Text(update.MaxSurge);
            IntOrString unavailable = Text(update.MaxUnavailable);
            if (update.Order == UpdateOrder.StopFirst)
            {
                surge = 0;
                unavailable = update.MaxUnavailable.IsZero ? 1 : Text(update.MaxUnavailable);
            }
            else if (update.MaxSurge.IsZero && update.MaxUnavailable.IsZero)
            {
                Error($"{path}.update", "max_surge and max_unavailable are both 0, so a rollout could never replace a pod; let one of them be at least 1");
            }

            return new V1DeploymentStrategy
            {
                Type = "RollingUpdate",
                RollingUpdate = new V1RollingUpdateDeployment { MaxSurge = surge, MaxUnavailable = unavailable },
            };
        }

        private static IntOrString Text(IntOrPercent value) => value.IsPercent ? value.ToString() : value.Value;

        private void MapAutoscale(Service service, string path, string name, IDictionary<string, string> labels, string workloadKind)
        {
            if (service.Autoscale is not { } scale)
            {
                return;
            }

            if (scale.Min < 1 || scale.Max < scale.Min)
            {
                Error($"{path}.autoscale", $"min {scale.Min} and max {scale.Max} do not make a range Kubernetes takes (1 ≤ min ≤ max); set them so");
                return;
            }

            var metrics = new List<V2MetricSpec>();
            var cpu = scale.TargetCpuPercent ?? (scale.TargetRequestsPerSecond is null ? GenerateDefaults.TargetCpuPercent : null);
            if (cpu is { } cpuPercent)
            {
                if (service.Resources.CpuRequest is null && service.Resources.CpuLimit is null)
                {
                    Warning($"{path}.autoscale", "targets CPU utilization, which Kubernetes measures against the CPU request; set resources.cpu (a request) or the autoscaler will not act");
                }

                metrics.Add(new V2MetricSpec
                {
                    Type = "Resource",
                    Resource = new V2ResourceMetricSource { Name = "cpu", Target = new V2MetricTarget { Type = "Utilization", AverageUtilization = cpuPercent } },
                });
            }

            if (scale.TargetRequestsPerSecond is { } rps)
            {
                Warning($"{path}.autoscale", $"targets requests per second, which the autoscaler reads as the pods metric '{GenerateDefaults.RequestsPerSecondMetric}'; install a custom-metrics adapter (e.g. prometheus-adapter) that serves it");
                metrics.Add(new V2MetricSpec
                {
                    Type = "Pods",
                    Pods = new V2PodsMetricSource
                    {
                        Metric = new V2MetricIdentifier { Name = GenerateDefaults.RequestsPerSecondMetric },
                        Target = new V2MetricTarget { Type = "AverageValue", AverageValue = new ResourceQuantity(MilliQuantity(rps)) },
                    },
                });
            }

            if (Math.Abs(scale.Tolerance - 0.1) > 1e-9)
            {
                Warning($"{path}.autoscale.tolerance", $"{scale.Tolerance.ToString(CultureInfo.InvariantCulture)} was left out: the HorizontalPodAutoscaler's tolerance is the cluster's (0.1) unless the HPAConfigurableTolerance feature is on");
            }

            Objects.Add(Wrap(new V2HorizontalPodAutoscaler
            {
                ApiVersion = "autoscaling/v2",
                Kind = "HorizontalPodAutoscaler",
                Metadata = new V1ObjectMeta { Name = name, NamespaceProperty = options.Namespace, Labels = labels },
                Spec = new V2HorizontalPodAutoscalerSpec
                {
                    ScaleTargetRef = new V2CrossVersionObjectReference { ApiVersion = "apps/v1", Kind = workloadKind, Name = name },
                    MinReplicas = scale.Min,
                    MaxReplicas = scale.Max,
                    Metrics = metrics,
                    Behavior = new V2HorizontalPodAutoscalerBehavior
                    {
                        ScaleDown = new V2HPAScalingRules { StabilizationWindowSeconds = WholeSeconds(scale.ScaleDownStabilization, $"{path}.autoscale.scale_down_stabilization", min: 0) },
                    },
                },
            }));
        }

        private static string MilliQuantity(double value)
        {
            var milli = (long)Math.Round(value * 1000);
            return milli % 1000 == 0
                ? (milli / 1000).ToString(CultureInfo.InvariantCulture)
                : milli.ToString(CultureInfo.InvariantCulture) + "m";
        }

        private void MapIngress(Service service, string path, string name, IDictionary<string, string> labels, List<V1ServicePort> ports)
        {
            var publicHttp = service.Endpoints.Where(e => e.Public && e.Protocol == EndpointProtocol.Http).ToList();
            // Public TCP endpoints get their own LoadBalancer/NodePort Service (PublishedPorts), not an Ingress.
            if (publicHttp.Count == 0)
            {
                return;
            }

            if (publicHttp.Count > 1)
            {
                Warning($"{path}.endpoints", $"has {publicHttp.Count} public HTTP endpoints; the Ingress routes '/' to the first ('{publicHttp[0].Name}') — route the others by host or path in the Ingress");
            }

            if (options.IngressDomain is null && app.Services.Count(s => s.Endpoints.Any(e => e.Public && e.Protocol == EndpointProtocol.Http)) > 1)
            {
                Warning($"{path}.endpoints.{publicHttp[0].Name}", "is one of several public services whose Ingress rules all claim '/' on any host; pass --ingress-domain DOMAIN to give each its own host");
            }

            var portName = KubeNames.Port(publicHttp[0].Name);
            if (!ports.Any(p => p.Name == portName))
            {
                return;
            }

            Objects.Add(Wrap(new V1Ingress
            {
                ApiVersion = "networking.k8s.io/v1",
                Kind = "Ingress",
                Metadata = new V1ObjectMeta { Name = name, NamespaceProperty = options.Namespace, Labels = labels },
                Spec = new V1IngressSpec
                {
                    Rules =
                    [
                        new V1IngressRule
                        {
                            Host = options.IngressDomain is null ? null : $"{name}.{options.IngressDomain}",
                            Http = new V1HTTPIngressRuleValue
                            {
                                Paths =
                                [
                                    new V1HTTPIngressPath
                                    {
                                        Path = "/",
                                        PathType = "Prefix",
                                        Backend = new V1IngressBackend { Service = new V1IngressServiceBackend { Name = name, Port = new V1ServiceBackendPort { Name = portName } } },
                                    },
                                ],
                            },
                        },
                    ],
                },
            }));
        }

        private void MapIstio(Service service, string path, string name, IDictionary<string, string> labels)
        {
            var mesh = service.Mesh;
            var mpath = $"{path}.mesh";
            var lb = new Istio.LoadBalancerSettings();
            switch (mesh.LoadBalancing)
            {
                case LoadBalancing.LeastRequest:
                    lb.Simple = "LEAST_REQUEST";
                    break;
                case LoadBalancing.RoundRobin:
                    lb.Simple = "ROUND_ROBIN";
                    break;
                case LoadBalancing.Random:
                    lb.Simple = "RANDOM";
                    break;
                case LoadBalancing.PeakEwma:
                    Warning($"{mpath}.load_balancing", "peak-ewma has no Istio equivalent; LEAST_REQUEST (power of two choices over active requests) was written");
                    lb.Simple = "LEAST_REQUEST";
                    break;
                case LoadBalancing.LeastConnections:
                    // For TCP traffic Envoy's least-request counts active connections.
                    lb.Simple = "LEAST_REQUEST";
                    break;
                case LoadBalancing.ConsistentHash:
                    lb.ConsistentHash = mesh.HashOn switch
                    {
                        { } h when h.StartsWith("header:", StringComparison.OrdinalIgnoreCase) => new Istio.ConsistentHash { HttpHeaderName = h["header:".Length..] },
                        { } c when c.StartsWith("cookie:", StringComparison.OrdinalIgnoreCase) => new Istio.ConsistentHash { HttpCookie = new Istio.HttpCookie { Name = c["cookie:".Length..], Ttl = "0s" } },
                        _ => new Istio.ConsistentHash { UseSourceIp = true },
                    };
                    break;
                default:
                    throw new ArgumentOutOfRangeException(nameof(service), mesh.LoadBalancing, "unknown load balancing");
            }

            var policy = new Istio.TrafficPolicy
            {
                LoadBalancer = lb,
                ConnectionPool = new Istio.ConnectionPoolSettings
                {
                    Tcp = new Istio.TcpSettings { MaxConnections = mesh.Limits.MaxConnections },
                    Http = new Istio.HttpSettings { Http1MaxPendingRequests = mesh.Limits.MaxPendingRequests, Http2MaxRequests = mesh.Limits.MaxRequests },
                },
                OutlierDetection = mesh.OutlierDetection.Enabled
                    ? new Istio.OutlierDetection
                    {
                        Consecutive5xxErrors = mesh.OutlierDetection.Consecutive5xx,
                        ConsecutiveGatewayErrors = mesh.OutlierDetection.ConsecutiveGatewayErrors,
                        Interval = Durations.Format(mesh.OutlierDetection.Interval),
                        BaseEjectionTime = Durations.Format(mesh.OutlierDetection.BaseEjectionTime),
                        MaxEjectionPercent = mesh.OutlierDetection.MaxEjectionPercent,
                    }
                    : null,
            };

            var subsets = new List<Istio.Subset>();
            foreach (var split in mesh.Split)
            {
                var (key, value) = split.Version.Split('=', 2) is [var k, var v] ? (k, v) : ("berth.dev/revision", split.Version);
                var subsetName = KubeNames.Label(split.Version.Contains('=') ? value : $"rev-{value}");
                if (subsets.All(s => s.Name != subsetName))
                {
                    subsets.Add(new Istio.Subset { Name = subsetName, Labels = new Dictionary<string, string> { [key] = value } });
                }
            }

            if (subsets.Count > 0)
            {
                Warning($"{mpath}.split", $"routes to versions by pod label ({string.Join(", ", subsets.Select(s => $"{s.Labels.Keys.Single()}={s.Labels.Values.Single()}"))}); Kubernetes runs one Deployment per service, so deploy each version's pods with its label for its subset to receive traffic");
            }

            Objects.Add(Wrap(new Istio.DestinationRule
            {
                Metadata = new V1ObjectMeta { Name = name, NamespaceProperty = options.Namespace, Labels = labels },
                Spec = new Istio.DestinationRuleSpec { Host = name, TrafficPolicy = policy, Subsets = subsets.Count > 0 ? subsets : null },
            }));

            if (!service.Endpoints.Any(e => e.Protocol == EndpointProtocol.Http))
            {
                return;
            }

            var timeout = mesh.Timeout is { } t ? Durations.Format(t) : null;
            var retries = new Istio.HttpRetry
            {
                Attempts = mesh.Retries.Attempts,
                PerTryTimeout = mesh.PerTryTimeout is { } pt ? Durations.Format(pt) : null,
                RetryOn = mesh.Retries.Attempts > 0 && mesh.Retries.On.Length > 0 ? string.Join(',', mesh.Retries.On) : null,
            };
            var routes = new List<Istio.HttpRoute>();
            foreach (var split in mesh.Split.Where(s => s.HeaderName is not null))
            {
                var subset = SubsetName(split);
                routes.Add(new Istio.HttpRoute
                {
                    Name = $"header-{subset}",
                    Match = [new Istio.HttpMatchRequest { Headers = new Dictionary<string, Istio.StringMatch> { [split.HeaderName!.ToLowerInvariant()] = new() { Exact = split.HeaderValue ?? "" } } }],
                    Route = [new Istio.HttpRouteDestination { Destination = new Istio.Destination { Host = name, Subset = subset } }],
                    Timeout = timeout,
                    Retries = retries,
                });
            }

            var weighted = mesh.Split.Where(s => s.Weight > 0).ToList();
            routes.Add(new Istio.HttpRoute
            {
                Name = "default",
                Route = weighted.Count > 0
                    ? [.. weighted.Select(s => new Istio.HttpRouteDestination { Destination = new Istio.Destination { Host = name, Subset = SubsetName(s) }, Weight = s.Weight })]
                    : [new Istio.HttpRouteDestination { Destination = new Istio.Destination { Host = name } }],
                Timeout = timeout,
                Retries = retries,
            });

            Objects.Add(Wrap(new Istio.VirtualService
            {
                Metadata = new V1ObjectMeta { Name = name, NamespaceProperty = options.Namespace, Labels = labels },
                Spec = new Istio.VirtualServiceSpec { Hosts = [name], Http = routes },
            }));
        }

        private static string SubsetName(TrafficSplit split) =>
            KubeNames.Label(split.Version.Split('=', 2) is [_, var v] ? v : $"rev-{split.Version}");

        private int WholeSeconds(TimeSpan value, string path, int min)
        {
            var seconds = (int)Math.Ceiling(value.TotalSeconds);
            if (seconds < min)
            {
                seconds = min;
            }

            if (seconds != value.TotalSeconds)
            {
                Warning(path, $"{Durations.Format(value)} was rounded up to {seconds}s; Kubernetes counts this in whole seconds");
            }

            return seconds;
        }

        // The API server drops a zero int32 marked omitempty (minReadySeconds, initialDelaySeconds) when it stores the object, so
        // sending one makes every apply differ from what is stored, and each repeated apply writes (a new resourceVersion).
        private static int? OmitZero(int value) => value == 0 ? null : value;

        private ManifestObject Wrap(IKubernetesObject<V1ObjectMeta> obj)
        {
            obj.Metadata.NamespaceProperty ??= obj.Kind == "Namespace" ? null : options.Namespace;
            return new ManifestObject($"{obj.Metadata.Name}-{obj.Kind.ToLowerInvariant()}.yaml", obj);
        }

        private V1ObjectMeta Meta(string name, params (string Key, string Value)[] labels) =>
            new() { Name = name, NamespaceProperty = options.Namespace, Labels = Sorted(labels) };

        private static Dictionary<string, string> Sorted(params (string Key, string Value)[] pairs)
        {
            var result = new Dictionary<string, string>();
            foreach (var (k, v) in pairs.OrderBy(p => p.Key, StringComparer.Ordinal))
            {
                result[k] = v;
            }

            return result;
        }

        private void Error(string path, string message) => Diagnostics.Add(new(DiagnosticSeverity.Error, path, message));

        private void Warning(string path, string message) => Diagnostics.Add(new(DiagnosticSeverity.Warning, path, message));
    }
}
