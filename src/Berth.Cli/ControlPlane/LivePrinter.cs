using System.Collections.Concurrent;
using System.Globalization;
using Berth.Cli.Commands;
using Berth.Core.Model;
using Berth.Orchestration.State;
using Berth.Runtime;

namespace Berth.Cli.ControlPlane;

/// <summary>Foreground <c>berth up</c>'s output: status changes (events) on stderr and every replica's log lines on
/// stdout, interleaved, prefixed by replica and colored per service on a terminal.</summary>
internal sealed class LivePrinter(ControlPlaneHost host, Application app, bool? colors = null, bool logs = true)
{
    private readonly ConcurrentDictionary<string, CancellationTokenSource> _following = new();
    private readonly Lock _write = new();
    private readonly bool _colors = colors ?? ControlPlaneCommands.ColorsOn(Console.Out);

    public async Task RunAsync(long afterEventId, CancellationToken ct)
    {
        try
        {
            await foreach (var e in host.Plane.Events.StreamAsync(afterEventId, null, ct))
            {
                var who = e.Replica ?? e.Service ?? app.Name;
                var line = $"{e.Time.ToLocalTime().ToString("HH:mm:ss", CultureInfo.InvariantCulture)} {e.Type,-12} {who,-16} {e.Message}";
                lock (_write)
                {
                    Console.Error.WriteLine(_colors ? $"\u001b[2m{line}\u001b[0m" : line);
                }

                if (logs && e.Type == EventTypes.Started && e.Replica is { } id)
                {
                    Follow(id, e.Time, ct);
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
        finally
        {
            foreach (var cts in _following.Values)
            {
                await cts.CancelAsync();
            }
        }
    }

    private void Follow(string replica, DateTimeOffset since, CancellationToken ct)
    {
        var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        if (_following.TryRemove(replica, out var old))
        {
            old.Cancel();
        }

        _following[replica] = cts;
        var prefix = ControlPlaneCommands.Paint(replica.PadRight(14), ControlPlaneCommands.ColorFor(replica), _colors);
        _ = Task.Run(async () =>
        {
            try
            {
                // The event can arrive before the replica list shows the new handle; give it a moment.
                for (var i = 0; i < 200 && host.Plane.Replicas.FirstOrDefault(r => r.Id == replica)?.Handle is null; i++)
                {
                    await Task.Delay(25, cts.Token);
                }

                await foreach (var entry in host.Plane.GetLogsAsync(replica, new LogOptions { Follow = true, Since = since.AddSeconds(-1) }, cts.Token))
                {
                    lock (_write)
                    {
                        Console.Out.WriteLine($"{prefix} | {entry.Text}");
                    }
                }
            }
#pragma warning disable CA1031 // a replica's log stream ending (stopped, removed) is not an error of the CLI
            catch (Exception)
#pragma warning restore CA1031
            {
            }
        }, CancellationToken.None);
    }
}
