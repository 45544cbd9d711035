using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Berth.Cli.ControlPlane;
using Berth.Cli.Shell;
using Berth.Core.Contracts;
using static Berth.Cli.Commands.ControlPlaneCommands;

namespace Berth.Cli.Commands;

/// <summary>apply, rollout status|history|undo|pause|resume (rollouts).</summary>
internal static class RolloutCommands
{
    /// <summary>How often <c>rollout status</c> asks: 500 ms, as the pipelines' deploy step.</summary>
    private static readonly TimeSpan StatusPoll = TimeSpan.FromMilliseconds(500);

    public static IEnumerable<Command> Create() => [Apply(), Rollout()];

    // ---- apply --------------------------------------------------------------------------------------------------

    private static Command Apply()
    {
        var file = SpecFile.CreateFilesOption();
        var envFile = SpecFile.CreateEnvFileOption();
        var profiles = SpecFile.CreateProfileOption();
        var build = new Option<bool>("--build") { Description = "Run the services' builds first and roll out each service whose build changed something (as docker compose up --build)." };
        var command = new Command("apply", "Apply the spec to the running control plane: changed services roll, count-only changes scale.") { file, envFile, profiles, build };
        command.SetAction(async (parse, ct) =>
        {
            var outcome = SpecFile.Load(parse.GetValue(file), parse.GetValue(envFile), parse.GetValue(profiles), Console.Error);
            if (!outcome.Succeeded)
            {
                return outcome.ExitCode;
            }

            var state = ControlPlaneHost.StateDirectoryFor(outcome.Path!);
            using var client = ApiClient.TryOpen(state);
            if (client is null || !await client.AliveAsync(ct))
            {
                Error($"no control plane is running for this app (state folder {state}); start one with 'berth up -d' (it applies the spec too)");
                return ExitCodes.Unavailable;
            }

            return await ApplyAndReportAsync(client, outcome.Application!, outcome.Path!, parse.GetValue(build), prune: false, ct);
        });
        return command;
    }

    /// <summary>Applies <paramref name="app"/> to a running control plane and says per service what happens: rolling out,
    /// scaled, unchanged, created. With <paramref name="build"/> the builds run first and each built service carries its new
    /// build digest (<see cref="BuildStamp"/>); without, the running digest is kept, so the stamp alone never rolls.</summary>
    internal static async Task<int> ApplyAndReportAsync(ApiClient client, Core.Model.Application app, string specPath, bool build, bool prune, CancellationToken ct, Core.Model.Application? buildOnly = null, IReadOnlySet<string>? stamp = null)
    {
        try
        {
            var before = await client.GetAsync("/v1/services", ApiJson.Default.IReadOnlyListServiceInfo, ct);
            if (build && (await ControlPlaneHost.BuildAsync(buildOnly ?? app, Console.Error, ct) ?? await ImageBuilds.BuildAsync(buildOnly ?? app, Console.Error, ct)) is { } buildError)
            {
                // buildOnly: the services whose builds run (berth watch: those whose folder changed); every built one is stamped.
                Error(buildError);
                Status("nothing was applied; the running version keeps serving");
                return ExitCodes.Failed;
            }

            app = await CarryOverAsync(client, app, before, ct);
            if (build || stamp is not null)
            {
                // stamp: berth watch built these itself and stamps only them (another service's folder may be mid-build).
                app = BuildStamp.Stamp(app, stamp);
            }

            var old = before.ToDictionary(s => s.Name, s => (Template: s.Revision, s.Desired));
            var applied = await client.ApplyAsync(app, ct, prune);
            var after = await client.GetAsync("/v1/services", ApiJson.Default.IReadOnlyListServiceInfo, ct);
            Status($"applied {specPath} as revision {applied.Revision}");
            foreach (var s in after)
            {
                var (name, template, desired) = (s.Name, s.Revision, s.Desired);
                Status(old.TryGetValue(name, out var was)
                    ? was.Template != template ? $"{name}: rolling out revision {template} (from {was.Template}); 'berth rollout status {name}' follows it"
                    : was.Desired != desired ? $"{name}: scaled {was.Desired} → {desired} (no rollout)"
                    : $"{name}: unchanged"
                    : $"{name}: created ({desired} replicas)");
            }

            return ExitCodes.Ok;
        }
        catch (ApiException e)
        {
            Error(e.Message);
            return e.Status == 404 ? ExitCodes.NotFound : ExitCodes.Failed;
        }
    }

    /// <summary>The app with each running service's stamps (<see cref="BuildStamp"/>) kept, so an apply alone does not roll it.</summary>
    internal static async Task<Core.Model.Application> CarryOverAsync(ApiClient client, Core.Model.Application app, IReadOnlyList<ServiceInfo> running, CancellationToken ct)
    {
        var specs = new Dictionary<string, System.Text.Json.Nodes.JsonNode?>(StringComparer.Ordinal);
        foreach (var s in running.Where(s => app.FindService(s.Name) is not null))
        {
            specs[s.Name] = (await client.GetAsync($"/v1/services/{Uri.EscapeDataString(s.Name)}", ApiJson.Default.ServiceInfo, ct)).Spec;
        }

        return BuildStamp.CarryOver(app, specs);
    }

    // ---- rollout ------------------------------------------------------------------------------------------------

    private static Command Rollout()
    {
        var command = new Command("rollout", "Follow, list, undo, pause and resume a service's rolling updates.");
        command.Subcommands.Add(StatusCommand());
        command.Subcommands.Add(History());
        command.Subcommands.Add(Undo());
        command.Subcommands.Add(PauseResume("pause", "Hold a service's rollout where it is (no new replicas of the new revision, no old ones removed)."));
        command.Subcommands.Add(PauseResume("resume", "Continue a paused rollout (also one paused by failure_action: pause)."));
        return command;
    }

    private static Argument<string> ServiceArgument() => new("SERVICE") { Description = "The service." };

    private static Command StatusCommand()
    {
        var file = SpecFile.CreateFileOption();
        var service = ServiceArgument();
        var noWait = new Option<bool>("--no-wait") { Description = "Print the state once instead of waiting for the rollout to finish." };
        var timeout = new Option<string?>("--timeout") { Description = "Give up waiting after this long (e.g. 5m). Default: wait until it finishes.", HelpName = "DURATION" };
        var command = new Command("status", "Wait for a service's rollout and show its progress; exit 0 when complete, 3 when rolled back, failed or paused.") { file, service, noWait, timeout };
        command.SetAction((parse, ct) => WithClientAsync(parse.GetValue(file), async client =>
        {
            TimeSpan? limit = null;
            if (parse.GetValue(timeout) is { } text)
            {
                if (!Core.Model.Durations.TryParse(text, out var d, out var error))
                {
                    Error($"--timeout: {error}");
                    return ExitCodes.Usage;
                }

                limit = d;
            }

            var name = parse.GetValue(service)!;
            var path = $"/v1/services/{Uri.EscapeDataString(name)}/rollout";
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
            if (limit is { } l)
            {
                deadline.CancelAfter(l);
            }

            string? last = null;
            try
            {
                while (true)
                {
                    var status = await client.GetAsync(path, ApiJson.Default.RolloutStatus, deadline.Token);
                    var line = $"{name} revision {status.Revision}: {status.State.Name()}: {status.Message}";
                    if (line != last)
                    {
                        Console.Out.WriteLine(line);
                        last = line;
                    }

                    switch (status.State)
                    {
                        case RolloutState.Complete:
                            return ExitCodes.Ok;
                        case RolloutState.RolledBack or RolloutState.Failed or RolloutState.Paused:
                            return ExitCodes.Failed;
                        case RolloutState.Progressing or RolloutState.RollingBack:
                            break;
                    }

                    if (parse.GetValue(noWait))
                    {
                        return ExitCodes.Ok;
                    }

                    await Task.Delay(StatusPoll, deadline.Token);
                }
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                Error($"the rollout of {name} did not finish within {parse.GetValue(timeout)}; last: {last}");
                return ExitCodes.Failed;
            }
        }, ct));
        return command;
    }

    private static Command History()
    {
        var file = SpecFile.CreateFileOption();
        var service = ServiceArgument();
        var output = Output.CreateOption("table", "json", "yaml");
        var format = Output.CreateTemplateOption();
        var command = new Command("history", "List a service's revisions (its templates) in the kept history, oldest first.") { file, service, output, format };
        command.SetAction((parse, ct) => WithClientAsync(parse.GetValue(file), async client =>
        {
            var path = $"/v1/services/{Uri.EscapeDataString(parse.GetValue(service)!)}/rollout/history";
            var history = await client.GetAsync(path, ApiJson.Default.IReadOnlyListRolloutHistoryEntry, ct);
            if (Output.TryWrite(JsonSerializer.SerializeToNode(history, Output.Json.IReadOnlyListRolloutHistoryEntry), parse.GetValue(output)!, parse.GetValue(format), Console.Out))
            {
                return ExitCodes.Ok;
            }

            Console.Out.WriteLine("REVISION  CURRENT  CREATED              CAUSE / WHAT");
            foreach (var h in history)
            {
                var what = h.Image ?? string.Join(' ', h.Command);
                Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{h.Revision,-8}  {(h.Current ? "*" : ""),-7}  {h.CreatedAt:yyyy-MM-dd HH:mm:ss}  {h.Cause} — {Shorten(what, 60)}"));
            }

            return ExitCodes.Ok;
        }, ct));
        return command;
    }

    private static Command Undo()
    {
        var file = SpecFile.CreateFileOption();
        var service = ServiceArgument();
        var to = new Option<long?>("--to-revision") { Description = "The revision to return to (see 'berth rollout history'). Default: the one before the current.", HelpName = "N" };
        var command = new Command("undo", "Roll a service back to an earlier revision (a new rollout; replicas still on that revision are kept).") { file, service, to };
        command.SetAction((parse, ct) => WithClientAsync(parse.GetValue(file), async client =>
        {
            var name = parse.GetValue(service)!;
            var body = JsonSerializer.Serialize(new UndoRequest(parse.GetValue(to)), ApiJson.Default.UndoRequest);
            var result = await client.PostAsync($"/v1/services/{Uri.EscapeDataString(name)}/rollout/undo", body, ApiJson.Default.UndoResponse, ct);
            Status($"{name}: rolling back to revision {result.Template} (revision {result.Revision}); 'berth rollout status {name}' follows it");
            return ExitCodes.Ok;
        }, ct));
        return command;
    }

    private static Command PauseResume(string verb, string description)
    {
        var file = SpecFile.CreateFileOption();
        var service = ServiceArgument();
        var command = new Command(verb, description) { file, service };
        command.SetAction((parse, ct) => WithClientAsync(parse.GetValue(file), async client =>
        {
            var name = parse.GetValue(service)!;
            await client.PostAsync($"/v1/services/{Uri.EscapeDataString(name)}/rollout/{verb}", null, ct);
            Status($"{name}: rollout {(verb == "pause" ? "paused" : "resumed")}");
            return ExitCodes.Ok;
        }, ct));
        return command;
    }

    private static string Shorten(string text, int max) => text.Length <= max ? text : text[..(max - 1)] + "…";
}
