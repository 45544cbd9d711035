using System.Globalization;
using System.Text.Json;
using System.Threading.Channels;
using Berth.Cli.Commands;
using Berth.Cli.ControlPlane;
using Berth.Core.Contracts;
using Berth.Core.Model;
using static Berth.Cli.Commands.ControlPlaneCommands;

namespace Berth.Cli.Watch;

/// <summary>What the watchers of one app share: the app, the API, the file sync, and one lock so that two services' applies
/// never interleave (each apply sends the whole app with the other services' stamps as they run).</summary>
internal sealed class WatchSession(Application app, string specPath, ApiClient client, TimeProvider time) : IDisposable
{
    private readonly SemaphoreSlim _apply = new(1, 1);

    public Application App { get; } = app;

    public string SpecPath { get; } = specPath;

    public ApiClient Client { get; } = client;

    public FileSync Sync { get; } = new(client);

    public TimeProvider Time { get; } = time;

    /// <summary>Runs <paramref name="apply"/> while no other service applies.</summary>
    public async Task<T> ApplyingAsync<T>(Func<Task<T>> apply, CancellationToken ct)
    {
        await _apply.WaitAsync(ct);
        try
        {
            return await apply();
        }
        finally
        {
            _apply.Release();
        }
    }

    public void Dispose()
    {
        Sync.Dispose();
        _apply.Dispose();
    }
}

/// <summary>The watch loop of one service, or of the services that share one build (<see cref="WatchPlan.Groups"/>): gathers
/// changes until the files have been quiet for <see cref="WatchCommand.Debounce"/> (an editor's save is several writes), then
/// acts once for all of them — rebuild when a rebuild rule matched (one build, every service of the group rolled from it),
/// else sync and/or restart. Only one build runs at a time; a change that arrives while it builds stops that build (its
/// whole process group) and the next round builds everything saved so far.</summary>
internal sealed class ServiceWatcher
{
    private readonly Channel<(WatchTarget Target, string Path)> _changes = Channel.CreateUnbounded<(WatchTarget, string)>();
    private readonly IReadOnlyList<Service> _services;
    private readonly WatchSession _session;

    /// <summary>The time of the last Hot Reload verdict line taken: the next change's verdict is looked for only after it, so
    /// a save made right after a verdict is not answered with that verdict again.</summary>
    private DateTimeOffset _verdictTaken = DateTimeOffset.MinValue;

    public ServiceWatcher(IReadOnlyList<Service> services, WatchSession session)
    {
        _services = services;
        _session = session;
        Name = string.Join(", ", services.Select(s => s.Name));
    }

    /// <summary>The services this loop acts for.</summary>
    public IReadOnlyList<string> Services => [.. _services.Select(s => s.Name)];

    /// <summary>The services, as messages name them ("api, worker, db").</summary>
    private string Name { get; }

    public void Post(WatchTarget target, string path) => _changes.Writer.TryWrite((target, path));

    /// <summary>Compose's <c>initial_sync</c>: the whole of each such rule's path into the replicas, before the first change.</summary>
    public async Task InitialSyncAsync(IEnumerable<WatchTarget> targets, CancellationToken ct)
    {
        foreach (var service in _services)
        {
            var initial = targets.Where(t => t.Service == service.Name && t.Rule.InitialSync && t.Rule.Action is WatchAction.Sync or WatchAction.SyncRestart)
                .Select(t => (t, (IReadOnlyCollection<string>)[.. t.Filter.Files()])).ToList();
            if (initial.Count > 0)
            {
                Status($"{service.Name}: initial sync: {await _session.Sync.SyncAsync(service, initial, ct)}");
            }
        }
    }

    public async Task RunAsync(CancellationToken ct)
    {
        var pending = new Dictionary<WatchTarget, HashSet<string>>();
        var firstChange = _session.Time.GetUtcNow();
        while (true)
        {
            if (pending.Count == 0)
            {
                Add(pending, await _changes.Reader.ReadAsync(ct));
                firstChange = _session.Time.GetUtcNow();
            }

            await QuietAsync(pending, ct);
            var batch = pending;
            pending = [];
            try
            {
                if (_services is [{ HotReload: true } service] && batch.Keys.Any(t => t.Rule.Action == WatchAction.Rebuild))
                {
                    await HotReloadAsync(service, batch, firstChange, ct);
                }
                else if (batch.Keys.Any(t => t.Rule.Action == WatchAction.Rebuild))
                {
                    if (!await RebuildAsync(batch, ct))
                    {
                        pending = batch; // stopped by a newer change: build again with everything
                        continue;
                    }
                }
                else
                {
                    await SyncAndRestartAsync(batch, ct);
                }
            }
            catch (ApiException e)
            {
                Error($"{Name}: {e.Message}");
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or Runtime.ReplicaStartException)
            {
                Error($"{Name}: the sync failed: {e.Message}");
            }

            if (_changes.Reader.Count == 0)
            {
                Status("watching for changes (Ctrl-C stops)");
            }
        }
    }

    /// <summary>Builds once, then applies with the new build stamp on every service of the group; false when a newer change
    /// stopped the build.</summary>
    private async Task<bool> RebuildAsync(Dictionary<WatchTarget, HashSet<string>> batch, CancellationToken ct)
    {
        Status($"changed: {Describe(batch)}; rebuilding {Name}");
        var only = _session.App with { Services = [.. _services] };
        using var build = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var building = BuildAsync(only, build.Token);
        var newer = _changes.Reader.WaitToReadAsync(build.Token).AsTask();
        if (await Task.WhenAny(building, newer) == newer && !building.IsCompleted && newer is { IsCompletedSuccessfully: true, Result: true })
        {
            Status($"{Name}: a newer change arrived; stopping this build to start again");
            await build.CancelAsync();
            try
            {
                await building;
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
            }

            return false;
        }

        await build.CancelAsync(); // the wait for a newer change; the build has finished
        if (await building is { } error)
        {
            Error(error);
            Status("that change was not rolled out; the running version keeps serving; watching for the next change");
            return true;
        }

        var code = await _session.ApplyingAsync(() => RolloutCommands.ApplyAndReportAsync(_session.Client, _session.App, _session.SpecPath, build: false, prune: false, ct,
            stamp: _services.Select(s => s.Name).ToHashSet(StringComparer.Ordinal)), ct);
        if (code != ExitCodes.Ok)
        {
            Status("that change was not rolled out; the running version keeps serving; watching for the next change");
        }

        return true;
    }

    /// <summary>A hot-reload service: <c>dotnet watch</c> in each replica has seen the change too. Waits for its verdict in the
    /// replicas' logs: applied in place (nothing else to do), a compile error (the running code keeps serving), or an edit Hot
    /// Reload cannot apply — then the replicas are rolled (new ones start under <c>dotnet watch</c> with the new code and take
    /// over once Ready), so no request fails, where <c>dotnet watch</c> alone would restart the app in place.</summary>
    private async Task HotReloadAsync(Service service, Dictionary<WatchTarget, HashSet<string>> batch, DateTimeOffset changedAt, CancellationToken ct)
    {
        Status($"changed: {Describe(batch)}; {service.Name}: waiting for Hot Reload in its replicas");
        var started = _session.Time.GetTimestamp();
        var since = changedAt - HotReloadVerdict.ClockSlack > _verdictTaken ? changedAt - HotReloadVerdict.ClockSlack : _verdictTaken.AddTicks(1);
        while (_session.Time.GetElapsedTime(started) < HotReloadVerdict.Timeout)
        {
            // Every line since the change, followed as it is written: an app that logs each request can write hundreds of lines
            // a second, and a verdict read from the last N lines was gone by the next poll (a CI run waited out the timeout).
            var (verdict, text) = (HotReloadOutcome.None, "");
            var left = HotReloadVerdict.Timeout - _session.Time.GetElapsedTime(started);
            using (var timeout = new CancellationTokenSource(left > TimeSpan.Zero ? left : TimeSpan.Zero, _session.Time))
            using (var wait = CancellationTokenSource.CreateLinkedTokenSource(ct, timeout.Token))
            {
                var path = $"/v1/services/{Uri.EscapeDataString(service.Name)}/logs?follow=true&since={Uri.EscapeDataString(since.ToString("O", CultureInfo.InvariantCulture))}";
                try
                {
                    await foreach (var json in _session.Client.StreamLinesAsync(path, null, wait.Token))
                    {
                        var line = JsonSerializer.Deserialize(json, ApiJson.Default.LogLine)!;
                        since = line.Time > since ? line.Time : since;
                        (verdict, text) = HotReloadVerdict.Of(line.Text);
                        if (verdict != HotReloadOutcome.None)
                        {
                            _verdictTaken = line.Time;
                            break;
                        }
                    }
                }
                catch (OperationCanceledException) when (!ct.IsCancellationRequested)
                {
                    break; // the timeout
                }
            }

            switch (verdict)
            {
                case HotReloadOutcome.Applied:
                    Status($"{service.Name}: {text} (hot reload, in place; {(_session.Time.GetUtcNow() - changedAt).TotalSeconds:0.0}s since the change)");
                    return;
                case HotReloadOutcome.CompileError:
                    Error($"{service.Name}: {text}");
                    Status("the running version keeps serving; watching for the next change");
                    return;
                case HotReloadOutcome.RestartNeeded:
                    Status($"{service.Name}: {text}; Hot Reload cannot apply this edit, so its replicas are rolled");
                    await RestartAsync(service, ct);
                    return;
            }

            await Task.Delay(HotReloadVerdict.PollInterval, _session.Time, ct);
        }

        Status($"{service.Name}: no Hot Reload verdict in its replicas' logs after {HotReloadVerdict.Timeout.TotalSeconds:0}s; rolling its replicas to be sure the new code runs");
        await RestartAsync(service, ct);
    }

    private static async Task<string?> BuildAsync(Application only, CancellationToken ct) =>
        await ControlPlaneHost.BuildAsync(only, Console.Error, ct) ?? await ImageBuilds.BuildAsync(only, Console.Error, ct);

    private async Task SyncAndRestartAsync(Dictionary<WatchTarget, HashSet<string>> batch, CancellationToken ct)
    {
        foreach (var service in _services.Where(s => batch.Keys.Any(t => t.Service == s.Name)))
        {
            var mine = batch.Where(b => b.Key.Service == service.Name).ToDictionary();
            var syncs = mine.Where(b => b.Key.Rule.Action is WatchAction.Sync or WatchAction.SyncRestart)
                .Select(b => (b.Key, (IReadOnlyCollection<string>)b.Value)).ToList();
            var restart = mine.Keys.Any(t => t.Rule.Action is WatchAction.SyncRestart or WatchAction.Restart);
            var started = _session.Time.GetTimestamp();
            var done = syncs.Count > 0 ? await _session.Sync.SyncAsync(service, syncs, ct) : null;
            Status($"changed: {Describe(mine)}; {service.Name}: {done ?? "nothing to sync"}{(restart ? "; restarting" : "")} ({_session.Time.GetElapsedTime(started).TotalSeconds:0.0}s)");
            if (restart)
            {
                await RestartAsync(service, ct);
            }
        }
    }

    /// <summary>A new value of the restart stamp is a new template: the control plane rolls the replicas as the service's
    /// update policy says, readiness-gated, as 'kubectl rollout restart' does.</summary>
    private async Task RestartAsync(Service service, CancellationToken ct)
    {
        var stamp = _session.Time.GetUtcNow().ToUnixTimeMilliseconds().ToString(System.Globalization.CultureInfo.InvariantCulture);
        var body = JsonSerializer.Serialize(new ServicePatchRequest { Env = new Dictionary<string, string> { [BuildStamp.RestartEnvName] = stamp } }, ApiJson.Default.ServicePatchRequest);
        var revision = await _session.ApplyingAsync(async () => JsonSerializer.Deserialize(
            await _session.Client.SendAsync(HttpMethod.Patch, $"/v1/services/{Uri.EscapeDataString(service.Name)}", body, ct), ApiJson.Default.RevisionResponse)!, ct);
        Status($"{service.Name}: restarting its replicas as its update policy rolls them (revision {revision.Revision}); 'berth rollout status {service.Name}' follows it");
    }

    private async Task QuietAsync(Dictionary<WatchTarget, HashSet<string>> pending, CancellationToken ct)
    {
        while (true)
        {
            using var quiet = CancellationTokenSource.CreateLinkedTokenSource(ct);
            quiet.CancelAfter(WatchCommand.Debounce);
            try
            {
                Add(pending, await _changes.Reader.ReadAsync(quiet.Token));
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                return;
            }
        }
    }

    private static void Add(Dictionary<WatchTarget, HashSet<string>> pending, (WatchTarget Target, string Path) change) =>
        (pending.TryGetValue(change.Target, out var set) ? set : pending[change.Target] = new HashSet<string>(StringComparer.Ordinal)).Add(change.Path);

    private string Describe(Dictionary<WatchTarget, HashSet<string>> batch)
    {
        var files = batch.Values.SelectMany(f => f).Distinct().Order(StringComparer.Ordinal).ToList();
        return string.Join(", ", files.Take(3).Select(c => Path.GetRelativePath(_session.App.BaseDirectory, c)))
            + (files.Count > 3 ? $" and {files.Count - 3} more" : "");
    }
}
