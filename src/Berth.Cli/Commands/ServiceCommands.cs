using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Berth.Cli.ControlPlane;
using Berth.Cli.Shell;
using Berth.Core.Contracts;
using Berth.Core.Loading;
using static Berth.Cli.Commands.ControlPlaneCommands;
using static Berth.Cli.Commands.AppStatus;

namespace Berth.Cli.Commands;

/// <summary>ps, events, port, scale, restart, stop, start: what runs and where, and changing it by service or replica.
/// Commands with several arguments check every one before changing anything.</summary>
internal static class ServiceCommands
{
    public static IEnumerable<Command> Create() => [Ps(), Ls(), Events(), Port(), Scale(), Restart(), StopStart("stop"), StopStart("start")];

    // ---- ps -----------------------------------------------------------------------------------------------------

    private static Command Ps()
    {
        var file = SpecFile.CreateFileOption();
        var output = Output.CreateOption("table", "wide", "json", "yaml");
        var format = Output.CreateTemplateOption();
        var command = new Command("ps", "List replicas: phase, node, stable and replica ports, restarts and why they are not Ready.") { file, output, format };
        command.SetAction(async (parse, ct) => await TryPsUnmanagedAsync(parse.GetValue(file), parse.GetValue(output)!, parse.GetValue(format), ct) ?? await WithClientAsync(parse.GetValue(file), async client =>
        {
            var replicas = await client.GetAsync("/v1/replicas", ApiJson.Default.IReadOnlyListReplicaInfo, ct);
            await WarnLimitsAsync(client, TimeSpan.Zero, everyCapability: false, ct);
            if (Output.TryWrite(JsonSerializer.SerializeToNode(replicas, Output.Json.IReadOnlyListReplicaInfo), parse.GetValue(output)!, parse.GetValue(format), Console.Out))
            {
                return ExitCodes.Ok;
            }

            var services = await client.GetAsync("/v1/services", ApiJson.Default.IReadOnlyListServiceInfo, ct);
            var wide = parse.GetValue(output) == "wide";
            var rows = replicas.Select(r => (string[])[
                r.Id,
                r.Service,
                r.Phase,
                r.Node ?? "",
                Ports(r, services.FirstOrDefault(s => s.Name == r.Service), wide),
                r.Restarts.ToString(CultureInfo.InvariantCulture),
                r.Revision.ToString(CultureInfo.InvariantCulture),
                .. wide ? (string[])[r.Pid?.ToString(CultureInfo.InvariantCulture) ?? r.ContainerId?[..Math.Min(12, r.ContainerId.Length)] ?? "", r.LastExitCode?.ToString(CultureInfo.InvariantCulture) ?? ""] : [],
                r.Reason ?? "",
            ]).ToList();
            Output.Table(["REPLICA", "SERVICE", "PHASE", "NODE", "PORTS", "RESTARTS", "REV", .. wide ? (string[])["PID/CONTAINER", "LAST EXIT"] : [], "REASON"], rows, Console.Out);
            // Stopped services have no replica to show their addresses on.
            foreach (var s in services.Where(s => s.Stopped))
            {
                Console.Out.WriteLine($"{s.Name}: stopped ('berth start {s.Name}')");
            }

            await PrintDashboardLinkAsync(client, ct);
            return ExitCodes.Ok;
        }, ct));
        return command;
    }

    /// <summary>Each endpoint as <c>STABLE->REPLICA</c> (compose ps' <c>0.0.0.0:8080->80/tcp</c>): callers use the stable
    /// address, the replica port is this replica's own. Wide adds the endpoint's name and protocol.</summary>
    private static string Ports(ReplicaInfo replica, ServiceInfo? service, bool wide) => string.Join(", ", replica.Ports.Select(p =>
    {
        var endpoint = service?.Endpoints.FirstOrDefault(e => e.Name == p.Key);
        var stable = endpoint?.Port is { } port ? $"127.0.0.1:{port.ToString(CultureInfo.InvariantCulture)}->" : "";
        return $"{(wide ? p.Key + "=" : "")}{stable}{p.Value.ToString(CultureInfo.InvariantCulture)}{(wide ? "/" + (endpoint?.Protocol ?? "http") : "")}";
    }));

    // ---- ls -----------------------------------------------------------------------------------------------------

    /// <summary>One app in <c>berth ls</c>.</summary>
    internal sealed record AppListing(string Name, string Status, int Ready, int Desired, string Spec, string State);

    private static Command Ls()
    {
        var output = Output.CreateOption("table", "json", "yaml");
        var format = Output.CreateTemplateOption();
        var all = new Option<bool>("--all", "-a") { Description = "Also the apps that are not running (as docker compose ls --all)." };
        var command = new Command("ls", "List the Berth apps on this machine: name, whether each is up, its spec and state folder (as docker compose ls).") { output, format, all };
        command.SetAction(async (parse, ct) =>
        {
            var listings = new List<AppListing>();
            foreach (var app in AppRegistry.List())
            {
                using var client = ApiClient.TryOpen(app.State);
                var listing = new AppListing(app.Name, "stopped", 0, 0, app.Spec, app.State);
                if (client is not null && await client.AliveAsync(ct))
                {
                    try
                    {
                        var services = await client.GetAsync("/v1/services", ApiJson.Default.IReadOnlyListServiceInfo, ct);
                        var (ready, desired) = (services.Sum(x => x.Ready), services.Sum(x => x.Desired));
                        listing = listing with { Status = ready >= desired ? "running" : "starting", Ready = ready, Desired = desired };
                    }
                    catch (ApiException)
                    {
                        listing = listing with { Status = "starting" };
                    }
                }

                if (listing.Status != "stopped" || parse.GetValue(all))
                {
                    listings.Add(listing);
                }
            }

            if (!Output.TryWrite(JsonSerializer.SerializeToNode(listings, RegistryJson.Default.ListAppListing), parse.GetValue(output)!, parse.GetValue(format), Console.Out))
            {
                Output.Table(["NAME", "STATUS", "READY", "SPEC"], [.. listings.Select(l => (string[])[
                    l.Name, l.Status, l.Status == "stopped" ? "" : $"{l.Ready.ToString(CultureInfo.InvariantCulture)}/{l.Desired.ToString(CultureInfo.InvariantCulture)}", l.Spec])], Console.Out);
            }

            return ExitCodes.Ok;
        });
        return command;
    }

    // ---- port ---------------------------------------------------------------------------------------------------

    private static Command Port()
    {
        var file = SpecFile.CreateFileOption();
        var service = new Argument<string>("SERVICE") { Description = "The service." };
        var endpoint = new Argument<string?>("ENDPOINT") { Description = "One of its endpoints (default: all of them).", Arity = ArgumentArity.ZeroOrOne };
        var command = new Command("port", "Print a service's stable addresses (the mesh's, what callers use), one endpoint a line, as docker compose port.") { file, service, endpoint };
        command.SetAction((parse, ct) => WithClientAsync(parse.GetValue(file), async client =>
        {
            var name = parse.GetValue(service)!;
            var services = await client.GetAsync("/v1/services", ApiJson.Default.IReadOnlyListServiceInfo, ct);
            if (services.FirstOrDefault(s => s.Name == name) is not { } found)
            {
                Error(NoService(name, services));
                return ExitCodes.NotFound;
            }

            var endpoints = parse.GetValue(endpoint) is { } e ? found.Endpoints.Where(x => x.Name == e).ToList() : [.. found.Endpoints];
            if (endpoints.Count == 0)
            {
                Error(parse.GetValue(endpoint) is { } wanted
                    ? $"{name} has no endpoint '{wanted}'; it has {(found.Endpoints.Count == 0 ? "none" : string.Join(", ", found.Endpoints.Select(x => x.Name)))}"
                    : $"{name} has no endpoints");
                return ExitCodes.NotFound;
            }

            foreach (var x in endpoints)
            {
                Console.Out.WriteLine(endpoints.Count == 1 ? x.Url : $"{x.Name} {x.Url}");
            }

            return ExitCodes.Ok;
        }, ct));
        return command;
    }

    // ---- events -------------------------------------------------------------------------------------------------

    private static Command Events()
    {
        var file = FileOptionWithoutShortAlias();
        var follow = new Option<bool>("--follow", "-f") { Description = "Keep printing new events (server-sent events)." };
        var service = new Option<string?>("--service") { Description = "Only this service's events.", HelpName = "SERVICE" };
        var output = Output.CreateOption("table", "json", "yaml", "text");
        output.Description = "Output format: table (text is the same), json (one event a line, as docker events), yaml.";
        var format = Output.CreateTemplateOption();
        var since = new Option<string?>("--since") { Description = "Only events since this time: RFC 3339 (2026-01-02T15:04:05Z) or a duration back from now (10m), as docker events --since.", HelpName = "TIME" };
        var limit = new Option<int?>("--limit") { Description = $"At most this many events, the newest (default {Server.ApiServerDefaults.EventPage}).", HelpName = "N" };
        var before = new Option<long?>("--before") { Description = "Only events older than this event id (the cursor for the next older page).", HelpName = "ID" };
        var after = new Option<long?>("--after") { Description = "Only events newer than this event id, oldest first.", HelpName = "ID" };
        var command = new Command("events", "Show the control plane's events, the newest: scheduled, started, ready, unhealthy, back-off, OOM-killed, …") { file, follow, service, output, format, since, limit, before, after };
        command.SetAction((parse, ct) => WithClientAsync(parse.GetValue(file), async client =>
        {
            var query = parse.GetValue(service) is { } s ? $"&service={Uri.EscapeDataString(s)}" : "";
            var (how, template) = (parse.GetValue(output)!, parse.GetValue(format));
            if (!parse.GetValue(follow))
            {
                var page = query
                    + (parse.GetValue(since) is { } t ? $"&since={Uri.EscapeDataString(t)}" : "")
                    + (parse.GetValue(limit) is { } n ? $"&limit={n}" : "")
                    + (parse.GetValue(before) is { } b ? $"&before={b}" : "")
                    + (parse.GetValue(after) is { } a ? $"&after={a}" : "");
                var events = await client.GetAsync($"/v1/events?{page.TrimStart('&')}", ApiJson.Default.IReadOnlyListEventInfo, ct);
                if (how == "yaml" || template is not null)
                {
                    Output.TryWrite(JsonSerializer.SerializeToNode(events, Output.Json.IReadOnlyListEventInfo), how, template, Console.Out);
                }
                else
                {
                    foreach (var e in events)
                    {
                        PrintEvent(e, how, template);
                    }
                }

                if (parse.GetValue(after) is null && events.Count > 0 && events.Count == (parse.GetValue(limit) ?? Server.ApiServerDefaults.EventPage))
                {
                    Status($"older events: berth events --before {events[0].Id}");
                }

                return ExitCodes.Ok;
            }

            try
            {
                await foreach (var line in client.StreamLinesAsync($"/v1/events?follow=true{query}", "text/event-stream", ct))
                {
                    if (line.StartsWith("data: ", StringComparison.Ordinal))
                    {
                        PrintEvent(JsonSerializer.Deserialize(line["data: ".Length..], ApiJson.Default.EventInfo)!, how, template);
                    }
                }
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
            }

            return ExitCodes.Ok;
        }, ct));
        return command;
    }

    private static void PrintEvent(EventInfo e, string how, string? template)
    {
        if (template is not null || how == "yaml")
        {
            // One item at a time (a stream): yaml as documents, the template per event.
            Console.Out.Write((how == "yaml" && template is null ? "---\n" : "") + (template is not null
                ? Output.Render(template, JsonSerializer.SerializeToNode(e, Output.Json.EventInfo))
                : Output.Yaml(JsonSerializer.SerializeToNode(e, Output.Json.EventInfo))));
            return;
        }

        Console.Out.WriteLine(how == "json" ? JsonSerializer.Serialize(e, Output.JsonLines.EventInfo) : FormatEvent(e));
    }

    // ---- scale --------------------------------------------------------------------------------------------------

    private static Command Scale()
    {
        var file = SpecFile.CreateFileOption();
        var pairs = new Argument<string[]>("SERVICE=N") { Description = "Replica counts, e.g. api=5 worker=2.", Arity = ArgumentArity.OneOrMore };
        var command = new Command("scale", "Set replica counts at runtime (a new revision; takes effect at once). Every SERVICE=N is checked before any is applied.") { file, pairs };
        command.SetAction((parse, ct) => WithClientAsync(parse.GetValue(file), async client =>
        {
            var services = await client.GetAsync("/v1/services", ApiJson.Default.IReadOnlyListServiceInfo, ct);
            var requests = new List<(string Service, int Replicas)>();
            var problems = new List<string>();
            foreach (var pair in parse.GetValue(pairs)!)
            {
                var eq = pair.IndexOf('=', StringComparison.Ordinal);
                if (eq <= 0 || !int.TryParse(pair[(eq + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var n))
                {
                    problems.Add($"'{pair}' is not SERVICE=N with N a whole number 0 or more; write e.g. api=5");
                }
                else if (services.All(s => s.Name != pair[..eq]))
                {
                    problems.Add(NoService(pair[..eq], services));
                }
                else
                {
                    requests.Add((pair[..eq], n));
                }
            }

            if (problems.Count > 0)
            {
                problems.ForEach(Error);
                Status("nothing was scaled");
                return problems.All(p => p.StartsWith("no service", StringComparison.Ordinal)) ? ExitCodes.NotFound : ExitCodes.Usage;
            }

            foreach (var (service, n) in requests)
            {
                var result = await client.PostAsync($"/v1/services/{Uri.EscapeDataString(service)}/scale",
                    JsonSerializer.Serialize(new ScaleRequest(n), ApiJson.Default.ScaleRequest), ApiJson.Default.ScaleResponse, ct);
                Status($"{service} scaled to {n} (revision {result.Revision})");
            }

            return ExitCodes.Ok;
        }, ct));
        return command;
    }

    // ---- restart, stop, start -----------------------------------------------------------------------------------

    private static Command Restart()
    {
        var file = SpecFile.CreateFileOption();
        var targets = new Argument<string[]>("SERVICE|REPLICA") { Description = "Services or replicas; none: every service.", Arity = ArgumentArity.ZeroOrMore };
        var wait = new Option<bool>("--wait") { Description = "Wait until every restarted service has as many Ready replicas as it wants (as docker compose up --wait)." };
        var timeout = WaitTimeoutOption();
        var command = new Command("restart", "Restart services (each replica stopped and started again) or single replicas. Every name is checked before any is restarted.") { file, targets, wait, timeout };
        command.SetAction((parse, ct) => WithClientAsync(parse.GetValue(file), async client =>
        {
            var services = await client.GetAsync("/v1/services", ApiJson.Default.IReadOnlyListServiceInfo, ct);
            var replicas = await client.GetAsync("/v1/replicas", ApiJson.Default.IReadOnlyListReplicaInfo, ct);
            var names = parse.GetValue(targets) is { Length: > 0 } t ? t : [.. services.Select(s => s.Name)];
            var unknown = names.Where(n => services.All(s => s.Name != n) && replicas.All(r => r.Id != n)).ToList();
            if (unknown.Count > 0)
            {
                foreach (var n in unknown)
                {
                    Error($"no service or replica '{n}'" + (Suggestions.Closest(n, services.Select(s => s.Name).Concat(replicas.Select(r => r.Id))) is { } close ? $"; did you mean '{close}'?" : $"; see 'berth ps'"));
                }

                Status("nothing was restarted");
                return ExitCodes.NotFound;
            }

            var since = DateTimeOffset.UtcNow;
            foreach (var name in names)
            {
                if (services.Any(s => s.Name == name))
                {
                    var r = await client.PostAsync($"/v1/services/{Uri.EscapeDataString(name)}/restart", null, ApiJson.Default.RestartServiceResponse, ct);
                    Status($"{name}: restarting {r.Restarting} replica(s)");
                }
                else
                {
                    await client.PostAsync($"/v1/replicas/{Uri.EscapeDataString(name)}/restart", null, ct);
                    Status($"{name}: restarting");
                }
            }

            var waitFor = names.Select(n => services.FirstOrDefault(s => s.Name == n)?.Name ?? replicas.First(r => r.Id == n).Service).Distinct().ToList();
            return parse.GetValue(wait) ? await WaitReadyAsync(client, waitFor, parse.GetValue(timeout), since, ct) : ExitCodes.Ok;
        }, ct));
        return command;
    }

    private static Command StopStart(string verb)
    {
        var file = SpecFile.CreateFileOption();
        var targets = new Argument<string[]>("SERVICE") { Description = "Services; none: every service.", Arity = ArgumentArity.ZeroOrMore };
        var command = new Command(verb, verb == "stop"
            ? "Stop services: their replicas go (out of routing first) and stay gone until 'berth start'; the app and the rest keep running (as docker compose stop)."
            : "Start stopped services again at their replica counts (as docker compose start).") { file, targets };
        command.SetAction((parse, ct) => WithClientAsync(parse.GetValue(file), async client =>
        {
            var services = await client.GetAsync("/v1/services", ApiJson.Default.IReadOnlyListServiceInfo, ct);
            var names = parse.GetValue(targets) is { Length: > 0 } t ? t : [.. services.Select(s => s.Name)];
            var unknown = names.Where(n => services.All(s => s.Name != n)).ToList();
            if (unknown.Count > 0)
            {
                unknown.ForEach(n => Error(NoService(n, services)));
                Status($"nothing was {(verb == "stop" ? "stopped" : "started")}");
                return ExitCodes.NotFound;
            }

            foreach (var name in names)
            {
                await client.PostAsync($"/v1/services/{Uri.EscapeDataString(name)}/{verb}", null, ct);
                Status($"{name}: {(verb == "stop" ? "stopped" : "started")}");
            }

            return ExitCodes.Ok;
        }, ct));
        return command;
    }

    internal static string NoService(string name, IReadOnlyList<ServiceInfo> services) =>
        $"no service '{name}'" + (Suggestions.Closest(name, services.Select(s => s.Name)) is { } close
            ? $"; did you mean '{close}'?"
            : $"; the services are {string.Join(", ", services.Select(s => s.Name))}");
}
