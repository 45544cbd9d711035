using System.Collections.Immutable;
using System.Text.Json;
using Berth.Core.Model;
using Berth.Orchestration.Scheduling;
using Berth.Orchestration.State;

namespace Berth.Orchestration.Controllers;

/// <summary>The desired state: makes each change a revision (with each service's template revision), installs it
/// (scheduler shape, stable ports), warns once about limits a driver cannot enforce, and installs the rollbacks the
/// rollout controller decides on. Called under the lock.</summary>
internal sealed class RevisionManager(PlaneState state, StablePortRegistry stablePorts, RolloutController rollouts, Func<int, bool> portFreeOnMachine)
{
    private readonly Dictionary<string, string> _limitsWarned = new(StringComparer.Ordinal);
    private string? _schedulerShape;

    /// <summary>What makes replicas different: everything but the count, autoscaling and mesh policy.</summary>
    public static string TemplateKey(Service s) =>
        JsonSerializer.Serialize(s with { Replicas = 0, Autoscale = null, Mesh = MeshPolicy.Default }, StateJson.Options);

    /// <summary>The app with every service reduced to its template: equal keys mean no pod template changed.</summary>
    public static string AppTemplateKey(Application app) =>
        JsonSerializer.Serialize(app with { Services = [.. app.Services.Select(s => s with { Replicas = 0, Autoscale = null, Mesh = MeshPolicy.Default })] }, StateJson.Options);

    /// <summary>Makes a new revision when a pod template (or the app around the services) changes. A change of counts, autoscaling,
    /// mesh policy or stopped services updates the current revision in place, and an unchanged spec leaves it as it is: Kubernetes
    /// makes no ReplicaSet for a scale, so scaling never pushes the templates <c>rollout undo</c> needs out of the kept history.
    /// <paramref name="reuse"/> gives a service an earlier template number (a rollback: its replicas of that template are kept,
    /// as Kubernetes reuses the old ReplicaSet).</summary>
    public RevisionRecord Mutate(string cause, Func<Application, Application> change,
        Func<ImmutableSortedSet<string>, IEnumerable<string>>? stopped = null, (string Service, long Template)? reuse = null)
    {
        var previous = state.Current;
        var next = previous is null
            ? change(null!) ?? throw ControlPlaneMessages.NothingAppliedError()
            : change(previous.Application);

        if (previous is not null && reuse is null && AppTemplateKey(previous.Application) == AppTemplateKey(next))
        {
            var updated = previous with { Application = next, Stopped = [.. stopped is null ? previous.Stopped : stopped(previous.Stopped)] };
            if (JsonSerializer.Serialize(updated, StateJson.Options) != JsonSerializer.Serialize(previous, StateJson.Options))
            {
                state.Store.ReplaceRevision(updated);
                Install(updated);
                state.Loop.Kick();
            }

            return updated;
        }

        var now = state.Now;
        var revision = state.Store.AddRevision(n => new RevisionRecord
        {
            Number = n,
            CreatedAt = now,
            Cause = cause,
            Application = next,
            Templates = next.Services.ToImmutableSortedDictionary(
                s => s.Name,
                s => reuse is { } re && re.Service == s.Name ? re.Template
                    // A renamed app (only with prune) replaces every replica: the name is in each replica's labels and cgroup path.
                    : previous?.Application.FindService(s.Name) is { } old && previous.Application.Name == next.Name && TemplateKey(old) == TemplateKey(s)
                        ? previous.TemplateOf(s.Name) : n,
                StringComparer.Ordinal),
            Stopped = [.. stopped is null ? previous?.Stopped ?? [] : stopped(previous?.Stopped ?? [])],
        });
        Install(revision);

        // Event subscribers (the pipeline triggers) read Current when they see the revision event: publish first.
        state.Loop.Publish();
        state.Emit(EventTypes.Revision, null, null, $"revision {revision.Number}: {cause}");
        WarnUnenforcedLimits(revision.Application);
        state.Loop.Kick();
        return revision;
    }

    /// <summary>Makes <paramref name="revision"/> the one in force: a new scheduler when nodes or policy changed (restoring
    /// what is placed), and a stable port for every endpoint.</summary>
    public void Install(RevisionRecord revision)
    {
        state.Current = revision;
        var app = revision.Application;
        var shape = JsonSerializer.Serialize(new { app.Nodes, app.Scheduler }, StateJson.Options);
        if (state.Scheduler is null || shape != _schedulerShape)
        {
            var scheduler = new Scheduler(Scheduler.NodesFor(app), app.Scheduler, state.Random, portFreeOnMachine);
            state.Scheduler = scheduler;
            _schedulerShape = shape;
            foreach (var r in state.Replicas.Values.Where(r => r.HoldsResources && r.Node is not null))
            {
                if (app.FindService(r.Service) is { } s)
                {
                    scheduler.Restore(Scheduler.RequestFor(r.Id, s, r.Pod), r.Node!);
                }
            }
        }

        stablePorts.Assign(app);
    }

    /// <summary>Installs the rollbacks the rollout controller decided on in this pass, each as a new revision.</summary>
    public bool InstallRollbacks()
    {
        var any = false;
        foreach (var rb in rollouts.TakeRollbacks())
        {
            if (state.Current?.Application.FindService(rb.Service) is null)
            {
                continue;
            }

            Mutate($"rollback {rb.Service} to revision {rb.ToTemplate} (automatic)",
                app => WithService(app, rb.Service, s => Restore(rb.Spec, s)), reuse: (rb.Service, rb.ToTemplate));
            any = true;
        }

        return any;
    }

    public static Application WithService(Application app, string service, Func<Service, Service> change)
    {
        if (app is null)
        {
            throw ControlPlaneMessages.NothingAppliedError();
        }

        var s = app.FindService(service) ?? throw ControlPlaneMessages.NoServiceError(app, service);
        return app with { Services = app.Services.Replace(s, change(s)) };
    }

    /// <summary>An earlier template with today's count, autoscaling and mesh policy (those are not part of a template).</summary>
    public static Service Restore(Service template, Service now) => template with { Replicas = now.Replicas, Autoscale = now.Autoscale, Mesh = now.Mesh };

    /// <summary>An apply does not undo the autoscaler: a service autoscaled before and after keeps its current count,
    /// brought within the new min/max (the HPA owns the count; applying a manifest with <c>replicas</c> over it is a
    /// well-known Kubernetes pitfall).</summary>
    public static Application KeepAutoscaledCounts(Application? previous, Application next)
    {
        if (previous is null)
        {
            return next;
        }

        return next with
        {
            Services = [.. next.Services.Select(s => s.Autoscale is { } policy && previous.FindService(s.Name) is { Autoscale: not null } old
                ? s with { Replicas = Math.Clamp(old.Replicas, policy.Min, Math.Max(policy.Min, policy.Max)) }
                : s)],
        };
    }

    /// <summary>Rejects an app the control plane cannot run, with every problem at once and its JSON path (the loader reports
    /// these with file positions; this guards the API, which takes the app model as JSON).</summary>
    public static Application Validate(Application app)
    {
        var problems = new List<string>();
        if (string.IsNullOrEmpty(app.Name))
        {
            problems.Add("$.name: the app needs a name; use lowercase letters, digits, '-' and '_', starting with a letter or digit");
        }
        else if (!IsValidName(app.Name, lowercase: true))
        {
            problems.Add($"$.name: '{app.Name}' is not a valid app name; use lowercase letters, digits, '-' and '_', starting with a letter or digit");
        }

        if (app.Services.IsDefault)
        {
            problems.Add("$.services: the app needs a list of services, each with a name");
            throw Invalid(problems);
        }

        for (var i = 0; i < app.Services.Length; i++)
        {
            var s = app.Services[i];
            var at = $"$.services[{i}]";
            if (s is null)
            {
                problems.Add($"{at}: a service, not null");
                continue;
            }

            if (string.IsNullOrEmpty(s.Name))
            {
                problems.Add($"{at}.name: every service needs a name");
            }
            else if (!IsValidName(s.Name, lowercase: false) || s.Name.Contains('.', StringComparison.Ordinal))
            {
                problems.Add($"{at}.name: '{s.Name}' is not a valid service name; use letters, digits, '-' and '_', starting with a letter or digit");
            }

            if (s.Replicas is < 0 or > OrchestratorDefaults.MaxReplicasPerService)
            {
                problems.Add($"{at}.replicas: must be between 0 and {OrchestratorDefaults.MaxReplicasPerService}, got {s.Replicas}");
            }

            foreach (var (key, strategy) in new[] { ("update", s.Update), ("rollback", s.Rollback) })
            {
                if (strategy is not null && strategy.MaxSurge.IsZero && strategy.MaxUnavailable.IsZero)
                {
                    problems.Add($"{at}.{key}: maxSurge and maxUnavailable are both 0, so a rolling update could never make progress; set maxSurge to 1 (start a new replica first) or maxUnavailable to 1");
                }
            }
        }

        var dupes = app.Services.Where(s => s is not null && !string.IsNullOrEmpty(s.Name)).GroupBy(s => s.Name).Where(g => g.Count() > 1).Select(g => g.Key).ToList();
        if (dupes.Count > 0)
        {
            problems.Add($"$.services: service names must be unique; repeated: {string.Join(", ", dupes)}");
        }

        if (problems.Count == 0)
        {
            // What the checks above do not name: members left out or null that the control plane would trip on later.
            problems.AddRange(ModelCompleteness.Missing(app));
        }

        if (problems.Count > 0)
        {
            throw Invalid(problems);
        }

        return app.Nodes.IsDefault ? app with { Nodes = [] } : app;
    }

    /// <summary>Renaming the app or removing every service takes the whole app down: only with an explicit prune, as kubectl apply --prune.</summary>
    public static void RequirePrune(Application? previous, Application next, bool prune)
    {
        if (prune || previous is null)
        {
            return;
        }

        if (previous.Name != next.Name)
        {
            throw new ControlPlaneException(ControlPlaneError.Conflict,
                $"$.name: renaming the app '{previous.Name}' to '{next.Name}' removes every replica of '{previous.Name}'; apply with prune to do that ('berth up --prune', POST /v1/apply?prune=true)");
        }

        if (next.Services.IsEmpty && !previous.Services.IsEmpty)
        {
            throw new ControlPlaneException(ControlPlaneError.Conflict,
                $"$.services: an app with no services removes all {previous.Services.Length} running ({string.Join(", ", previous.Services.Select(s => s.Name))}); apply with prune to do that ('berth up --prune', POST /v1/apply?prune=true), or 'berth down'");
        }
    }

    /// <summary>The loader's name rule (SpecReader): what becomes a cgroup, a folder and a container name.</summary>
    private static bool IsValidName(string name, bool lowercase) =>
        name.Length is > 0 and <= 63 && char.IsAsciiLetterOrDigit(name[0])
        && name.All(c => (lowercase ? char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) : char.IsAsciiLetterOrDigit(c)) || c is '-' or '_' or '.');

    private static ControlPlaneException Invalid(List<string> problems) =>
        new(ControlPlaneError.Invalid, problems.Count == 1 ? problems[0] : $"{problems.Count} problems: {string.Join("; ", problems)}");

    /// <summary>One event per service whose limits are not enforced, the first time this control plane sees it (or its wording change).</summary>
    private void WarnUnenforcedLimits(Application app)
    {
        foreach (var w in LimitsCheck.Check(app, state.Drivers.Values))
        {
            if (_limitsWarned.GetValueOrDefault(w.Service) != w.Message)
            {
                _limitsWarned[w.Service] = w.Message;
                state.Emit(EventTypes.LimitsNotEnforced, w.Service, null, w.Message);
            }
        }
    }
}
