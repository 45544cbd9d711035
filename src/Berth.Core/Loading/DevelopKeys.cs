using System.Collections.Immutable;
using Berth.Core.Model;
using YamlDotNet.RepresentationModel;

namespace Berth.Core.Loading;

/// <summary><c>develop: {watch: [...]}</c>, the same key in berth.yaml and Compose (Compose's Develop Specification):
/// each rule's path is relative to the spec's folder, ignore/include patterns relative to the rule's path.</summary>
internal sealed partial class SpecReader
{
    internal static readonly IReadOnlyDictionary<string, WatchAction> WatchActionNames = new Dictionary<string, WatchAction>
    {
        ["rebuild"] = WatchAction.Rebuild,
        ["sync"] = WatchAction.Sync,
        ["sync+restart"] = WatchAction.SyncRestart,
        ["restart"] = WatchAction.Restart,
    };

    private static readonly KeyTable<ServiceDraft> DevelopKeys = new("develop")
    {
        ["watch"] = (r, v, p, d) => r.ReadWatch(v, p, d),
        // Berth's own key (Compose has none): replicas run under 'dotnet watch', which applies Hot Reload in place.
        ["hot_reload"] = (r, v, p, d) =>
        {
            d.S = d.S with { HotReload = r.Bool(v, p) ?? false };
            d.HotReloadAt = (v, p);
        },
    };

    private sealed class WatchDraft
    {
        public WatchAction? Action { get; set; }

        public YamlNode? ActionNode { get; set; }

        public string? Path { get; set; }

        public bool PathGiven { get; set; }

        public string? Target { get; set; }

        public YamlNode? TargetNode { get; set; }

        public ImmutableArray<string> Ignore { get; set; } = [];

        public ImmutableArray<string> Include { get; set; } = [];

        public bool InitialSync { get; set; }
    }

    private static readonly KeyTable<WatchDraft> WatchKeys = new("a watch rule")
    {
        ["action"] = (r, v, p, w) =>
        {
            w.ActionNode = v;
            if (v is YamlScalarNode { Value: "sync+exec" })
            {
                r.Error(v, p, "sync+exec is not supported yet; use sync+restart (copy, then restart the replicas)");
                return;
            }

            w.Action = r.Enum(v, p, WatchActionNames);
        },
        ["path"] = (r, v, p, w) => (w.PathGiven, w.Path) = (true, r.String(v, p) is { Length: > 0 } path ? r.ResolvePath(path) : null),
        ["target"] = (r, v, p, w) =>
        {
            w.Target = r.String(v, p);
            w.TargetNode = v;
        },
        ["ignore"] = (r, v, p, w) => w.Ignore = r.Strings(v, p),
        // include: takes one pattern or a list, as Compose.
        ["include"] = (r, v, p, w) => w.Include = v is YamlScalarNode ? r.String(v, p) is { } one ? [one] : [] : r.Strings(v, p),
        ["initial_sync"] = (r, v, p, w) => w.InitialSync = r.Bool(v, p) ?? false,
        ["exec"] = (r, v, p, _) => r.Warning(v, p, "is only for action sync+exec, which Berth does not support yet; ignored"),
    };

    private void ReadDevelop(YamlNode v, string p, ServiceDraft d)
    {
        if (Mapping(v, p, "a mapping with watch: (a list of rules)") is { } map)
        {
            ReadKeys(map, p, DevelopKeys, d, allowExtensions: true);
        }
    }

    private void ReadWatch(YamlNode v, string p, ServiceDraft d)
    {
        var seq = Sequence(v, p, "a list of rules, each {action, path, target?, ignore?, include?, initial_sync?}");
        for (var i = 0; seq is not null && i < seq.Children.Count; i++)
        {
            var rp = Index(p, i);
            var node = seq.Children[i];
            if (Mapping(node, rp, "a rule {action, path, target?, ignore?}") is not { } map)
            {
                continue;
            }

            var w = new WatchDraft();
            ReadKeys(map, rp, WatchKeys, w, allowExtensions: true);
            var missing = new List<string>();
            if (w.Action is null && w.ActionNode is null)
            {
                missing.Add("action: (rebuild, sync, sync+restart or restart)");
            }

            if (!w.PathGiven)
            {
                missing.Add("path: (the folder to watch, relative to the spec's folder)");
            }

            if (missing.Count > 0)
            {
                Error(node, rp, $"needs {string.Join(" and ", missing)}");
                continue;
            }

            if (w.Action is not { } action || w.Path is not { } path)
            {
                continue; // the bad value is reported where it is
            }

            var syncs = action is WatchAction.Sync or WatchAction.SyncRestart;
            if (syncs && string.IsNullOrEmpty(w.Target))
            {
                Error(node, rp, $"action {Name(action)} needs target: (where the changed files go: a path in the container, or for a process service a folder relative to its working_dir)");
                continue;
            }

            if (!syncs && w.TargetNode is not null)
            {
                Warning(w.TargetNode, Join(rp, "target"), $"is only used by the sync actions; action {Name(action)} ignores it");
            }

            d.Watch.Add(new Located<WatchRule>(new WatchRule
            {
                Action = action,
                Path = path,
                Target = syncs ? w.Target : null,
                Ignore = w.Ignore,
                Include = w.Include,
                InitialSync = w.InitialSync,
            }, w.TargetNode ?? node, rp));
        }
    }

    /// <summary>The memory limit under which a hot-reload replica is warned about: 1Gi. dotnet watch (SDK 10.0.401) with its
    /// MSBuild and Roslyn workspace runs in the replica's cgroup; the shop sample's frontend under 256Mi was OOM-killed at its first edit.</summary>
    public static readonly ByteSize HotReloadMemoryFloor = ByteSize.Parse("1Gi");

    /// <summary>The rules once the runtime is known: a process service's sync target is a folder on this machine, resolved
    /// against its working_dir, and must stay inside it (a Compose file's <c>/app</c> would otherwise write to the host's root).</summary>
    private void FinishWatch(ServiceDraft d)
    {
        if (d.S.HotReload && d.S.EffectiveRuntime != RuntimeKind.Process && d.HotReloadAt is var (hotNode, hotPath))
        {
            Error(hotNode, hotPath, "is for process services (a .NET project run on this machine under 'dotnet watch'); a Docker service is rebuilt and rolled out by a rebuild rule instead");
        }
        else if (d.S.HotReload && d.S.Liveness is not null && d.S.Startup is null && d.HotReloadAt is var (liveNode, livePath))
        {
            Warning(liveNode, livePath, "each replica builds the project under 'dotnet watch' before it listens (tens of seconds), and the liveness probe starts at once, so it may restart the replica before it is up; add a startup probe (e.g. startup: {http: /healthz, period: 2s, failure_threshold: 150})");
        }

        if (d.S.HotReload && d.S.EffectiveRuntime == RuntimeKind.Process && d.S.Resources.MemoryLimit is { } memory && memory.Bytes < HotReloadMemoryFloor.Bytes
            && d.HotReloadAt is var (memNode, memPath))
        {
            Warning(memNode, memPath, $"'dotnet watch' builds the project and compiles each edit inside the replica, under its memory limit ({memory}), which is below {HotReloadMemoryFloor}: it may be OOM-killed at an edit and restart from a full build; give the replica more for development (e.g. resources: {{limits: {{memory: 2Gi}}}} in an override file)");
        }

        var rules = ImmutableArray.CreateBuilder<WatchRule>();
        foreach (var (rule, node, path) in d.Watch)
        {
            if (rule.Target is { } target && d.S.EffectiveRuntime == RuntimeKind.Process)
            {
                var workingDir = d.S.WorkingDir ?? BaseDirectory;
                var full = System.IO.Path.GetFullPath(System.IO.Path.Combine(workingDir, target));
                var relative = System.IO.Path.GetRelativePath(workingDir, full);
                if (relative == ".." || relative.StartsWith(".." + System.IO.Path.DirectorySeparatorChar, StringComparison.Ordinal) || System.IO.Path.IsPathRooted(relative))
                {
                    Error(node, Join(path, "target"), $"'{target}' is outside the working_dir of this process service ({workingDir}); a process replica runs on this machine, so give a folder relative to its working_dir (e.g. wwwroot)");
                    continue;
                }

                rules.Add(rule with { Target = full });
                continue;
            }

            rules.Add(rule);
        }

        d.S = d.S with { Watch = rules.ToImmutable() };
    }

    private static string Name(WatchAction action) => WatchActionNames.First(n => n.Value == action).Key;
}
