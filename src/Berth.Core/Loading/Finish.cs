using System.Collections.Immutable;
using Berth.Core.Model;
using YamlDotNet.RepresentationModel;

namespace Berth.Core.Loading;

internal sealed partial class SpecReader
{
    /// <summary>Checks that need the whole service: what runs it, its limits, env secrets, endpoint names, probe targets.</summary>
    private void FinishService(ServiceDraft d, YamlScalarNode keyNode)
    {
        if (d.Healthcheck is not null && d.S.Readiness is null)
        {
            d.S = d.S with { Readiness = d.Healthcheck };
        }

        if (d.S.Shell && d.RunText is { } script)
        {
            d.S = d.S with { Command = [script] };
        }

        if (!d.HasImage && !d.HasRun && d.S.Build?.Context is null)
        {
            Error(keyNode, d.Path, Format == SpecFormat.Berth
                ? "has neither image: nor run:; add run: [program, args…] to run it as a process, or image: to run it in a container"
                : "has neither image: nor build:; add image: (e.g. postgres:16) or build: (a folder with a Dockerfile)");
        }

        if (d.S.Runtime == RuntimeKind.Process && d.S.Command.IsEmpty)
        {
            Error(keyNode, Join(d.Path, "runtime"), "is process but the service has no run:; add run: [program, args…]");
        }

        if (d.S.Runtime == RuntimeKind.Docker && !d.HasImage && d.S.Build?.Context is null)
        {
            Error(keyNode, Join(d.Path, "runtime"), "is docker but the service has no image: or build: context");
        }

        // Process services run, and build commands build, in the spec's folder unless told otherwise: made explicit here
        // so drivers and the normalized output need not know where the spec was.
        if (d.S.EffectiveRuntime == RuntimeKind.Process)
        {
            d.S = d.S with { WorkingDir = d.S.WorkingDir is { } wd ? ResolvePath(wd) : BaseDirectory };
        }

        if (d.S.Build is { Command.IsDefaultOrEmpty: false, WorkingDir: null } build)
        {
            d.S = d.S with { Build = build with { WorkingDir = BaseDirectory } };
        }

        FinishWatch(d);
        BuildEnv(d);
        ResolveFiles(d);
        if (Format == SpecFormat.Compose)
        {
            CheckAliases(d);

            // As Compose: a service with build: and no image: is built and tagged PROJECT-SERVICE.
            if (!d.HasImage && d.S.Build?.Context is not null && d.S.Image is null)
            {
                d.S = d.S with { Image = $"{_projectName}-{d.Name}" };
            }
        }

        if (d.S.EffectiveRuntime == RuntimeKind.Process && !d.S.Container.IsEmpty)
        {
            Warning(keyNode, d.Path, "has container options (init, read_only, cap_add, ulimits, …), which apply to Docker containers only; this service runs as a process, so they are ignored");
        }

        if (d.S.EffectiveRuntime == RuntimeKind.Docker && d.S.InheritEnv)
        {
            Warning(keyNode, Join(d.Path, "inherit_env"), "applies to process replicas only; a container inherits nothing from the environment Berth runs in (as Compose), so it is ignored; list what the container needs under environment:");
        }

        var names = new Dictionary<string, Located<Endpoint>>(StringComparer.Ordinal);
        foreach (var endpoint in d.Endpoints)
        {
            if (!names.TryAdd(endpoint.Value.Name, endpoint))
            {
                Error(endpoint.Node, endpoint.Path, $"endpoint name '{endpoint.Value.Name}' is used twice in this service; give each endpoint its own name");
            }
        }

        CheckProbeTarget(d, d.S.Liveness, "liveness", names);
        CheckProbeTarget(d, d.S.Readiness, "readiness", names);
        CheckProbeTarget(d, d.S.Startup, "startup", names);

        if (d.S.Autoscale is { TargetCpuPercent: not null } && d.S.Resources.CpuRequest is null && d.S.Resources.CpuLimit is null)
        {
            Error(keyNode, Join(d.Path, "autoscale.target_cpu"),
                "is a percentage of the CPU request, but the service has none; add resources.requests.cpu (e.g. 250m)");
        }
    }

    /// <summary>Env in the order Compose applies it: env files, then environment:, then secrets. A bare KEY takes its value
    /// from the environment Berth runs in, and is left out when that has none (as Compose does).</summary>
    private void BuildEnv(ServiceDraft d)
    {
        var env = ImmutableSortedDictionary.CreateBuilder<string, string>(StringComparer.Ordinal);
        foreach (var entry in d.EnvFileEntries.Concat(d.Env).Concat(d.Secrets))
        {
            var value = entry.Value ?? (Interpolator.Variables.TryGetValue(entry.Key, out var fromEnv) ? fromEnv : null);
            if (value is null)
            {
                env.Remove(entry.Key);
                continue;
            }

            env[entry.Key] = value;
        }

        var secrets = ImmutableSortedSet.CreateBuilder<string>(StringComparer.Ordinal);
        foreach (var entry in d.Secrets)
        {
            secrets.Add(entry.Key);
        }

        foreach (var (name, node, path) in d.SecretNames)
        {
            if (!env.ContainsKey(name))
            {
                var suggestion = Suggestions.Closest(name, env.Keys);
                Error(node, path, $"'{name}' is not in this service's environment{(suggestion is null ? "; add it under environment: or env_file:" : $"; did you mean '{suggestion}'?")}");
                continue;
            }

            secrets.Add(name);
        }

        d.S = d.S with { Env = env.ToImmutable(), SecretEnv = secrets.ToImmutable() };
    }

    private void CheckProbeTarget(ServiceDraft d, Probe? probe, string kind, Dictionary<string, Located<Endpoint>> endpoints)
    {
        if (probe is null || probe.Kind == ProbeKind.Exec || probe.Port is not null)
        {
            return;
        }

        var path = Join(d.Path, Format == SpecFormat.Berth ? $"probes.{kind}" : $"x-berth.probes.{kind}");
        if (probe.Endpoint is { } name && !endpoints.ContainsKey(name))
        {
            var suggestion = Suggestions.Closest(name, endpoints.Keys);
            Error(d.At, Join(path, "endpoint"), $"'{name}' is not an endpoint of {d.Name}{(suggestion is null ? $"; its endpoints are: {(endpoints.Count == 0 ? "(none)" : string.Join(", ", endpoints.Keys))}" : $"; did you mean '{suggestion}'?")}");
        }
        else if (probe.Endpoint is null && endpoints.Count == 0)
        {
            Error(d.At, path, $"is an {probe.Kind.ToString().ToLowerInvariant()} probe but {d.Name} has no endpoints; add endpoints: (or ports:), or give the probe a port:");
        }
    }

    /// <summary>Checks that span services: published ports, dependencies (targets, cycles, health), volumes, nodes.</summary>
    private void CheckAcrossServices()
    {
        var active = _services.Where(IsActive).ToList();
        var byName = _services.ToDictionary(s => s.Name, StringComparer.Ordinal);

        var published = new Dictionary<(string HostIp, int Port), (ServiceDraft Service, Located<Endpoint> Endpoint)>();
        foreach (var service in active)
        {
            foreach (var endpoint in service.Endpoints)
            {
                if (endpoint.Value.Port is not { } port)
                {
                    continue;
                }

                // 0.0.0.0 and :: overlap every address.
                var key = (endpoint.Value.HostIp is "0.0.0.0" or "::" ? "*" : endpoint.Value.HostIp, port);
                var clash = published.FirstOrDefault(kv => kv.Key.Port == port && (kv.Key.HostIp == key.Item1 || kv.Key.HostIp == "*" || key.Item1 == "*"));
                if (clash.Value.Service is not null)
                {
                    var (other, otherEndpoint) = clash.Value;
                    var where = other == service ? "this service" : $"service {other.Name}";
                    Error(endpoint.Node, endpoint.Path,
                        $"port {port} is already used by {where} ({otherEndpoint.Path} at {FileOf(otherEndpoint.Node)}:{otherEndpoint.Node.Start.Line}:{otherEndpoint.Node.Start.Column}); give one of them another port");
                    continue;
                }

                published[key] = (service, endpoint);
            }
        }

        foreach (var service in _services)
        {
            foreach (var dep in service.DependsOn)
            {
                var target = dep.Value.Service;
                if (target == service.Name)
                {
                    Error(dep.Node, dep.Path, $"{service.Name} depends on itself; remove this entry");
                    continue;
                }

                if (!byName.TryGetValue(target, out var other))
                {
                    var suggestion = Suggestions.Closest(target, byName.Keys);
                    Error(dep.Node, dep.Path, $"depends on '{target}', which is not a service in this spec{(suggestion is null ? "" : $"; did you mean '{suggestion}'?")}");
                    continue;
                }

                if (IsActive(service) && !IsActive(other) && dep.Value.Required)
                {
                    Error(dep.Node, dep.Path, $"depends on '{target}', which is only in profile(s) {string.Join(", ", other.S.Profiles)}; activate one of them or mark the dependency required: false");
                }

                var readiness = other.S.Readiness ?? other.Healthcheck;
                if (dep.Value.Condition == DependencyCondition.Healthy && readiness is null)
                {
                    Error(dep.Node, dep.Path, Format == SpecFormat.Berth
                        ? $"waits for '{target}' to be healthy, but {target} has no readiness probe; add probes.readiness to {target}, or use condition started"
                        : $"waits for '{target}' to be healthy, but {target} has no healthcheck; add a healthcheck: to {target}, or use condition service_started");
                }
            }
        }

        ReportCycles(byName);

        foreach (var service in active)
        {
            foreach (var volume in service.Volumes)
            {
                if (volume.Value.Type != VolumeType.Volume || volume.Value.Source is not { } name || _declaredVolumes.ContainsKey(name))
                {
                    continue;
                }

                if (Format == SpecFormat.Berth)
                {
                    _declaredVolumes[name] = volume.Node; // berth.yaml declares named volumes by using them
                }
                else
                {
                    var suggestion = Suggestions.Closest(name, _declaredVolumes.Keys);
                    Error(volume.Node, volume.Path, $"uses volume '{name}', which is not declared; add it under the top-level volumes:{(suggestion is null ? "" : $" (or did you mean '{suggestion}'?)")}");
                }
            }
        }

        var nodeNames = new HashSet<string>(StringComparer.Ordinal);
        foreach (var node in _nodes)
        {
            if (!nodeNames.Add(node.Value.Name))
            {
                Error(node.Node, Join(node.Path, "name"), $"node name '{node.Value.Name}' is used twice; give each node its own name");
            }
        }
    }

    /// <summary>Each depends_on cycle once, at the dependency that closes it, with the whole loop spelled out.</summary>
    private void ReportCycles(Dictionary<string, ServiceDraft> byName)
    {
        var state = new Dictionary<string, int>(StringComparer.Ordinal); // 1 visiting, 2 done
        var stack = new List<string>();

        void Visit(ServiceDraft service)
        {
            state[service.Name] = 1;
            stack.Add(service.Name);
            foreach (var dep in service.DependsOn)
            {
                if (!byName.TryGetValue(dep.Value.Service, out var next) || next == service)
                {
                    continue;
                }

                var s = state.GetValueOrDefault(next.Name);
                if (s == 1)
                {
                    var loop = stack.Skip(stack.IndexOf(next.Name)).Append(next.Name);
                    Error(dep.Node, dep.Path, $"depends_on forms a cycle: {string.Join(" → ", loop)}; services in a cycle can never start, so remove one of these dependencies");
                }
                else if (s == 0)
                {
                    Visit(next);
                }
            }

            stack.RemoveAt(stack.Count - 1);
            state[service.Name] = 2;
        }

        foreach (var service in _services)
        {
            if (state.GetValueOrDefault(service.Name) == 0)
            {
                Visit(service);
            }
        }
    }

    private static Service Build(ServiceDraft d) => d.S with
    {
        Endpoints = [.. d.Endpoints.Select(e => e.Value)],
        DependsOn = [.. LastWins(d.DependsOn.Select(e => e.Value), dep => dep.Service)],
        Volumes = [.. LastWins(d.Volumes.Select(e => e.Value), v => v.Target)],
    };

    /// <summary>One entry per key, the last one given (an override file's), in the order keys first appeared.</summary>
    private static IEnumerable<T> LastWins<T>(IEnumerable<T> items, Func<T, string> key)
    {
        var list = items.ToList();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        return list.Where(i => seen.Add(key(i))).Select(first => list.Last(i => key(i) == key(first)));
    }
}
