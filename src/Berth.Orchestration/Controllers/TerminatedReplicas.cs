using System.Globalization;
using Berth.Core.Model;
using Berth.Orchestration.State;
using Berth.Runtime;
using Berth.Runtime.Logs;

namespace Berth.Orchestration.Controllers;

/// <summary>What is left of a replica once it is removed (issue #14 §9): its state folder <c>replicas/{id}/</c> keeps its
/// logs, with a <c>terminated</c> marker (service, time, why), for the newest <see cref="OrchestratorOptions.TerminatedReplicasKept"/>
/// removed replicas of each service — what <c>berth logs --previous</c> reads, as kubectl reads a pod's previous container.
/// Every other folder without a live record is deleted. A container's logs live in the engine and go with the container,
/// so they are copied into the folder first.</summary>
internal sealed class TerminatedReplicas(PlaneState state)
{
    public const string MarkerFile = "terminated";

    /// <summary>Replicas between losing their record and having their marker written: not leftovers. Touched under the lock.</summary>
    private readonly HashSet<string> _retiring = new(StringComparer.Ordinal);

    /// <summary>One kept replica: its id, service, when it was removed and its folder.</summary>
    public sealed record Kept(string Id, string Service, DateTimeOffset RemovedAt, string Directory);

    private string Root => Path.Combine(state.Options.StateDirectory, "replicas");

    public string DirectoryOf(string replicaId) => Path.Combine(Root, replicaId);

    /// <summary>Keeps the removed replica's logs (copying a container's out of the engine), removes it from its driver,
    /// then prunes; in the background, outside the lock. Called under the lock, as the record goes.</summary>
    public void Retire(ReplicaRecord r, ReplicaHandle handle, IWorkloadDriver driver)
    {
        _retiring.Add(r.Id);
        var removedAt = state.Now;
        var life = state.Loop.Life;
        var dir = DirectoryOf(r.Id);
        state.Loop.Track(async () =>
        {
            if (handle.Kind == RuntimeKind.Docker)
            {
                await state.Loop.IgnoreErrors(() => LogArchive.WriteAsync(dir, driver.GetLogsAsync(handle, new LogOptions(), life), life), "keep logs of", r.Id);
            }

            await state.Loop.IgnoreErrors(async () =>
            {
                Directory.CreateDirectory(dir);
                await File.WriteAllTextAsync(Path.Combine(dir, MarkerFile),
                    $"service={r.Service}\nremoved={removedAt.ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture)}\n", life);
            }, "mark terminated", r.Id);
            await state.Loop.UnderLockAsync(() => _retiring.Remove(r.Id));
            await state.Loop.IgnoreErrors(() => driver.RemoveAsync(handle, life), "remove", r.Id);
            await PruneAsync();
        });
    }

    /// <summary>The kept removed replicas, newest first; of one service when <paramref name="service"/> is given.</summary>
    public List<Kept> List(string? service = null)
    {
        List<Kept> kept = [];
        if (!Directory.Exists(Root))
        {
            return kept;
        }

        foreach (var dir in Directory.EnumerateDirectories(Root))
        {
            if (Read(dir) is { } k && (service is null || k.Service == service))
            {
                kept.Add(k);
            }
        }

        return [.. kept.OrderByDescending(k => k.RemovedAt).ThenByDescending(k => k.Id, StringComparer.Ordinal)];
    }

    /// <summary>Deletes every replica folder that has no record and is not among the newest kept of its service. The order
    /// matters: folders are listed first, then the live and retiring ids read under the lock (a record is written before
    /// its replica's folder exists, so a new replica listed first has its record by then), then the markers (a replica
    /// that stopped retiring before that read has its marker written).</summary>
    public async Task PruneAsync()
    {
        if (!Directory.Exists(Root))
        {
            return;
        }

        var folders = Directory.EnumerateDirectories(Root).ToList();
        HashSet<string> live = [];
        var read = false;
        await state.Loop.UnderLockAsync(() =>
        {
            live.UnionWith(state.Replicas.Keys);
            live.UnionWith(_retiring);
            read = true;
        });
        if (!read)
        {
            // The control plane is stopping and the locked read did not run: with no live ids every folder would look like
            // a leftover, live replicas' pid files and logs among them (the next control plane could not adopt them).
            return;
        }

        var kept = List();
        var keep = kept.GroupBy(k => k.Service).SelectMany(g => g.Take(state.Options.TerminatedReplicasKept)).Select(k => k.Directory).ToHashSet(StringComparer.Ordinal);
        foreach (var dir in folders.Where(d => !live.Contains(Path.GetFileName(d)) && !keep.Contains(d)))
        {
            await state.Loop.IgnoreErrors(() =>
            {
                Directory.Delete(dir, recursive: true);
                return Task.CompletedTask;
            }, "delete the folder of", Path.GetFileName(dir));
        }
    }

    private static Kept? Read(string dir)
    {
        string text;
        try
        {
            text = File.ReadAllText(Path.Combine(dir, MarkerFile));
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }

        var values = text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split('=', 2)).Where(p => p.Length == 2).ToDictionary(p => p[0], p => p[1]);
        return values.TryGetValue("service", out var service) && values.TryGetValue("removed", out var ms) && long.TryParse(ms, CultureInfo.InvariantCulture, out var removed)
            ? new Kept(Path.GetFileName(dir), service, DateTimeOffset.FromUnixTimeMilliseconds(removed), dir)
            : null;
    }
}
