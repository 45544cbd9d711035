using System.Diagnostics;
using Berth.Pipelines.Storage;

namespace Berth.Pipelines.Execution;

/// <summary>
/// <c>concurrency:</c> as GitHub: at most one run (or job) of a group runs at a time; a newer pending one replaces an
/// older pending one, which ends cancelled; with cancel-in-progress, the newer one cancels the one running. Groups
/// live in the run store, so runs of separate <c>berth pipeline run</c> processes on one state folder share them.
/// </summary>
internal sealed class ConcurrencyGate(RunStore store, TimeProvider time, TimeSpan poll)
{
    /// <summary>Waits for the group; the entry to release, or null when a newer pending run or job superseded this one.</summary>
    public async Task<long?> AcquireAsync(string group, long runId, string jobKey, bool cancelInProgress, Action<string> log, CancellationToken cancellationToken)
    {
        var entry = store.JoinGroup(group, runId, jobKey);
        var announced = false;
        var cancelled = new HashSet<long>();
        try
        {
            while (true)
            {
                var entries = store.GroupEntries(group);
                foreach (var stale in entries.Where(e => e.Id != entry && !IsAlive(e.RunId)))
                {
                    store.LeaveGroup(stale.Id);
                }

                entries = store.GroupEntries(group);
                var me = entries.FirstOrDefault(e => e.Id == entry);
                if (me is null || me.State == "superseded")
                {
                    store.LeaveGroup(entry);
                    return null;
                }

                foreach (var older in entries.Where(e => e.Id < entry && e.State == "pending"))
                {
                    store.SetGroupState(older.Id, "superseded");
                }

                if (store.TryTakeGroup(group, entry))
                {
                    return entry;
                }

                var holder = entries.FirstOrDefault(e => e.State == "running" && e.Id != entry);
                if (cancelInProgress && holder is not null && cancelled.Add(holder.Id))
                {
                    store.RequestGroupCancel(holder.Id);
                    log($"concurrency group '{group}': cancelling {Describe(holder)} (cancel-in-progress)");
                }
                else if (!announced && holder is not null)
                {
                    announced = true;
                    log($"concurrency group '{group}': waiting for {Describe(holder)} to finish");
                }

                await Task.Delay(poll, time, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException)
        {
            store.LeaveGroup(entry);
            throw;
        }
    }

    /// <summary>Cancels <paramref name="target"/> when a newer run of the group asks (cancel-in-progress).</summary>
    public async Task WatchAsync(long entry, CancellationTokenSource target, Action onCancel, CancellationToken stop)
    {
        using var timer = new PeriodicTimer(poll, time);
        try
        {
            while (await timer.WaitForNextTickAsync(stop).ConfigureAwait(false))
            {
                if (store.GetGroupEntry(entry) is { CancelRequested: true })
                {
                    onCancel();
                    await target.CancelAsync().ConfigureAwait(false);
                    return;
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    public void Release(long entry) => store.LeaveGroup(entry);

    private static string Describe(GroupEntry entry) => entry.JobKey == "*" ? $"run {entry.RunId}" : $"run {entry.RunId} job {entry.JobKey}";

    /// <summary>A run whose owner process is gone (killed) holds nothing.</summary>
    private bool IsAlive(long runId)
    {
        if (store.GetRun(runId) is not { } run || RunStatus.IsFinal(run.Status))
        {
            return false;
        }

        try
        {
            using var process = Process.GetProcessById(run.OwnerPid);
            return !process.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }
}
