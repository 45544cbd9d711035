using System.Collections.Immutable;
using System.Globalization;
using Berth.Core.Model;
using Berth.Core.Routing;
using Berth.Orchestration.State;
using Berth.Runtime;

namespace Berth.Orchestration.Controllers;

/// <summary>What a driver is asked to run for one replica: argv, the DESIGN.md environment (service discovery, own
/// ports, identity, the control plane's OTLP settings), labels for adoption, limits and the node's cgroup. Pure: the same inputs give the same spec.</summary>
internal static class ReplicaSpecBuilder
{
    /// <param name="app">The app.</param>
    /// <param name="service">The replica's service.</param>
    /// <param name="r">The replica, placed.</param>
    /// <param name="stablePorts">Every endpoint's stable port.</param>
    /// <param name="options">The control plane's options.</param>
    /// <param name="addresses">Every service's virtual address (for a replica in a pod: its discovery variables and /etc/hosts).</param>
    public static ReplicaSpec Build(Application app, Service service, ReplicaRecord r, IReadOnlyDictionary<(string Service, string Endpoint), int> stablePorts,
        OrchestratorOptions options, IReadOnlyDictionary<string, string>? addresses = null)
    {
        var host = options.Host;
        var env = ImmutableSortedDictionary.CreateBuilder<string, string>(StringComparer.Ordinal);
        foreach (var ((svc, ep), port) in stablePorts)
        {
            var endpoint = app.FindService(svc)?.Endpoints.FirstOrDefault(e => e.Name == ep);
            var scheme = endpoint?.Protocol == EndpointProtocol.Tcp ? "tcp" : "http";

            // In a pod, callers use the callee's virtual address on the port the callee's own replicas listen on (Compose's
            // container port): the mesh listens there inside the pod, so http://api:8080 and this variable agree.
            env[$"services__{svc}__{ep}__0"] = r.Pod && addresses?.GetValueOrDefault(svc) is { } vip
                ? $"{scheme}://{vip}:{OutboundPort(endpoint, port)}"
                : $"{scheme}://{host}:{port}";
        }

        if (!service.Endpoints.IsDefaultOrEmpty)
        {
            env["PORT"] = r.Ports[service.Endpoints[0].Name].ToString(CultureInfo.InvariantCulture);
            var urls = service.Endpoints.Where(e => e.Protocol.IsHttp()).Select(e => $"http://{host}:{r.Ports[e.Name]}").ToList();
            if (urls.Count > 0)
            {
                env["ASPNETCORE_URLS"] = string.Join(';', urls);
            }

            if (service.Endpoints.Any(e => e.Protocol.IsHttp2()) && service.Endpoints.Where(e => e.Protocol.IsHttp()).All(e => e.Protocol.IsHttp2()))
            {
                // h2c/gRPC without TLS: Kestrel speaks HTTP/2 on a cleartext endpoint only when told to (no ALPN).
                env["Kestrel__EndpointDefaults__Protocols"] = "Http2";
            }

            foreach (var e in service.Endpoints)
            {
                env[$"BERTH_PORT_{e.Name.ToUpperInvariant().Replace('-', '_')}"] = r.Ports[e.Name].ToString(CultureInfo.InvariantCulture);
            }
        }

        env["BERTH_SERVICE"] = service.Name;
        env["BERTH_REPLICA"] = r.Id;
        env["BERTH_REVISION"] = r.Revision.ToString(CultureInfo.InvariantCulture);
        foreach (var kv in options.ReplicaEnvironment)
        {
            env[kv.Key] = kv.Value;
        }

        if (r.Pod && TelemetryForward(options.ReplicaEnvironment) is { } telemetry)
        {
            // In a pod 127.0.0.1 is the pod's own loopback: the app's telemetry goes to the host-gateway address instead, where
            // the data plane forwards it to the control plane's receiver on the host (RoutePublisher gives every pod that listener).
            env[OtlpEndpointVariable] = telemetry.PodEndpoint;
        }

        if (options.ReplicaEnvironment.ContainsKey("OTEL_EXPORTER_OTLP_ENDPOINT"))
        {
            env["OTEL_SERVICE_NAME"] = service.Name;
            env["OTEL_RESOURCE_ATTRIBUTES"] = string.Create(CultureInfo.InvariantCulture, $"service.instance.id={r.Id},berth.app={app.Name},berth.service={service.Name},berth.replica={r.Id},berth.revision={r.Revision}");
        }

        var hotReload = service.HotReload && service.EffectiveRuntime == RuntimeKind.Process;
        if (hotReload)
        {
            foreach (var kv in Berth.Core.Build.HotReload.Environment)
            {
                env[kv.Key] = kv.Value;
            }
        }

        foreach (var kv in service.Env)
        {
            env[kv.Key] = kv.Value;
        }

        var labels = service.Labels.SetItems(new Dictionary<string, string>
        {
            ["berth.app"] = app.Name,
            ["berth.service"] = service.Name,
            ["berth.replica"] = r.Id,
            ["berth.revision"] = r.Revision.ToString(CultureInfo.InvariantCulture),
        });

        return new ReplicaSpec
        {
            App = app.Name,
            Service = service.Name,
            ReplicaId = r.Id,
            Revision = r.Revision,
            Image = service.Image,
            Entrypoint = service.Entrypoint is { } entrypoint && !hotReload ? ArgvExpansion.Expand(entrypoint, env) : null,
            Command = ArgvExpansion.Expand(hotReload ? Berth.Core.Build.HotReload.Command(app, service) : service.Command, env),
            Shell = service.Shell,
            InheritEnv = service.InheritEnv,
            Logging = service.Logging,
            WorkingDir = service.WorkingDir ?? (service.EffectiveRuntime == RuntimeKind.Process ? app.BaseDirectory : null),
            User = service.User,
            Env = env.ToImmutable(),
            Ports = r.Ports,
            Volumes = service.Volumes,
            CpuLimit = service.Resources.CpuLimit,
            MemoryLimit = service.Resources.MemoryLimit,
            Node = app.Nodes.IsDefaultOrEmpty || r.Node is null ? null : NodeCgroupSpec.PathFor(app.Name, r.Node),
            StateDirectory = Path.Combine(options.StateDirectory, "replicas", r.Id),
            Labels = labels,
            SecretEnv = [.. service.SecretEnv.Where(service.Env.ContainsKey).Select(k => service.Env[k]).Where(v => v.Length > 0),
                .. service.Files.Where(f => f.Kind == MountedFileKind.Secret && f.Content is { Length: > 0 }).Select(f => f.Content!)],
            Files = service.Files,
            Container = service.Container,
            PullPolicy = service.PullPolicy,
            Pod = r.Pod ? PodFor(app, service, addresses ?? ImmutableSortedDictionary<string, string>.Empty) with { Egress = service.Egress } : null,
            // A new container gets what the sync rules copied into the old ones; a process replica reads the files in place.
            Syncs = service.EffectiveRuntime == RuntimeKind.Docker
                ? [.. service.Watch.Where(w => w.Action is WatchAction.Sync or WatchAction.SyncRestart).Select(w => new SyncedFolder(w, service.Build?.Context))]
                : [],
        };
    }

    private const string OtlpEndpointVariable = "OTEL_EXPORTER_OTLP_ENDPOINT";

    /// <summary>The telemetry receiver as a pod reaches it, when replicas are told to export to one on the host's loopback
    /// (<c>OTEL_EXPORTER_OTLP_ENDPOINT</c>): the endpoint a pod's replica is given (same scheme and port, at
    /// <see cref="PodDefaults.HostGatewayAddress"/>) and the pod's listener there, forwarded to the receiver. Pure.</summary>
    public static (string PodEndpoint, OutboundListener Listener)? TelemetryForward(IReadOnlyDictionary<string, string> replicaEnvironment)
    {
        if (!replicaEnvironment.TryGetValue(OtlpEndpointVariable, out var value) || !Uri.TryCreate(value, UriKind.Absolute, out var endpoint)
            || !System.Net.IPAddress.TryParse(endpoint.Host, out var ip) || !System.Net.IPAddress.IsLoopback(ip) || endpoint.Port <= 0)
        {
            return null;
        }

        var pod = new UriBuilder(endpoint) { Host = PodDefaults.HostGatewayAddress }.Uri.ToString();
        var listener = new OutboundListener(PodDefaults.HostGateway, "otlp", PodDefaults.HostGatewayAddress, endpoint.Port)
        {
            ForwardTo = string.Create(CultureInfo.InvariantCulture, $"{endpoint.Host}:{endpoint.Port}"),
        };
        return (value.EndsWith('/') ? pod : pod.TrimEnd('/'), listener);
    }

    /// <summary>The port a pod's outbound listener for <paramref name="endpoint"/> uses: its target port (the callee's own
    /// replicas listen there, so the URL is the one a Compose user writes), else its stable port.</summary>
    public static int OutboundPort(Endpoint? endpoint, int stablePort) => endpoint?.TargetPort ?? stablePort;

    /// <summary>Whether a service asks to reach the host (<c>extra_hosts: NAME:host-gateway</c>, Compose's
    /// <c>host.docker.internal</c>).</summary>
    public static bool ReachesHost(Service service) =>
        !service.Container.ExtraHosts.IsDefault && service.Container.ExtraHosts.Any(h => h.EndsWith(":" + PodDefaults.HostGateway, StringComparison.Ordinal));

    /// <summary>A replica's pod: every service's name and aliases at its virtual address, then the spec's extra hosts
    /// (<c>host-gateway</c> is the pod's host-gateway address, where the data plane mirrors the host's loopback listeners).</summary>
    public static PodSpec PodFor(Application app, Service service, IReadOnlyDictionary<string, string> addresses)
    {
        var hosts = ImmutableArray.CreateBuilder<KeyValuePair<string, string>>();
        foreach (var s in app.Services)
        {
            if (addresses.GetValueOrDefault(s.Name) is not { } vip)
            {
                continue;
            }

            hosts.Add(new(s.Name, vip));
            foreach (var alias in s.Aliases.IsDefault ? [] : s.Aliases)
            {
                hosts.Add(new(alias, vip));
            }

            if (s.Container.Hostname is { Length: > 0 } hostname)
            {
                hosts.Add(new(hostname, vip));
            }
        }

        foreach (var entry in service.Container.ExtraHosts.IsDefault ? [] : service.Container.ExtraHosts)
        {
            var colon = entry.IndexOf(':', StringComparison.Ordinal);
            if (colon > 0)
            {
                var address = entry[(colon + 1)..];
                hosts.Add(new(entry[..colon], address == PodDefaults.HostGateway ? PodDefaults.HostGatewayAddress : address));
            }
        }

        return new PodSpec(hosts.ToImmutable());
    }
}
