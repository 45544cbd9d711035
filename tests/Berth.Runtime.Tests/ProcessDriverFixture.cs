
namespace Berth.Runtime.Tests;

/// <summary>A process driver over a fresh state folder; stops and removes every replica it started when the test ends.</summary>
public sealed class ProcessDriverScope : IAsyncDisposable
{
    private readonly List<ReplicaHandle> _started = [];

    public ProcessDriverScope(bool useCgroups = true, long? cpuShares = null, IReadOnlyDictionary<string, string>? hostEnvironment = null)
    {
        Root = Path.Combine(Path.GetTempPath(), "berth-runtime-tests", Guid.NewGuid().ToString("N")[..12]);
        App = "t" + Guid.NewGuid().ToString("N")[..10];
        Driver = new ProcessDriver(new ProcessDriverOptions
        {
            StateRoot = Path.Combine(Root, "runtime"), UseCgroups = useCgroups, CpuShares = cpuShares, VolumesRoot = Path.Combine(Root, "volumes"),
            HostEnvironment = hostEnvironment is null ? InheritedEnvironment.Current : () => hostEnvironment,
        });
    }

    public string Root { get; }

    public string App { get; }

    public ProcessDriver Driver { get; }

    public ReplicaSpec Spec(string replicaId, params string[] command) => new()
    {
        App = App,
        Service = "svc",
        ReplicaId = replicaId,
        Command = [.. command],
        StateDirectory = Path.Combine(Root, "replicas", replicaId),
    };

    /// <summary>A replica running a perl one-liner (perl is what the supervisor needs anyway).</summary>
    public ReplicaSpec Perl(string replicaId, string script) => Spec(replicaId, "perl", "-e", script);

    /// <summary>A replica of <paramref name="app"/>/<paramref name="service"/> running a perl one-liner with its state below
    /// <paramref name="stateRoot"/>, for a test that builds its own driver (e.g. over a fake cgroup hierarchy).</summary>
    public static ReplicaSpec PerlIn(string stateRoot, string app, string service, string replicaId, string script) => new()
    {
        App = app,
        Service = service,
        ReplicaId = replicaId,
        Command = ["perl", "-e", script],
        StateDirectory = Path.Combine(stateRoot, replicaId),
    };

    public async Task<ReplicaHandle> StartAsync(ReplicaSpec spec)
    {
        var handle = await Driver.StartAsync(spec, CancellationToken.None);
        _started.Add(handle);
        return handle;
    }

    public void Track(ReplicaHandle handle) => _started.Add(handle);

    public async ValueTask DisposeAsync()
    {
        foreach (var handle in _started)
        {
            try
            {
                await Driver.StopAsync(handle, TimeSpan.Zero, CancellationToken.None);
                await Driver.RemoveAsync(handle, CancellationToken.None);
            }
            catch (InvalidOperationException)
            {
                // already removed by the test
            }
        }

        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

internal static class LogExtensions
{
    public static async Task<List<LogEntry>> ToListAsync(this IAsyncEnumerable<LogEntry> entries)
    {
        List<LogEntry> list = [];
        await foreach (var entry in entries)
        {
            list.Add(entry);
        }

        return list;
    }

    public static string[] Texts(this IEnumerable<LogEntry> entries, LogStream stream) =>
        [.. entries.Where(e => e.Stream == stream).Select(e => e.Text)];
}
