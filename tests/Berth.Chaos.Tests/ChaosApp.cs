using System.Globalization;

namespace Berth.Chaos.Tests;

/// <summary>One app for one chaos scenario: a folder with a spec (an HTTP service of perl replicas on a stable port of its
/// own), the real <c>berth</c> to run it, its API, and what the scenario measures: failed requests under load, recovery
/// time, and what was lost (events, revisions, replicas, orphans). Disposing it takes everything down.</summary>
internal sealed class ChaosApp : IAsyncDisposable
{
    private readonly List<IDisposable> _mounts = [];
    private readonly AppFolder _folder;

    public ChaosApp(string name, int replicas = 2, string? env = null)
    {
        _folder = new AppFolder($"berth-chaos-{name}-");
        Name = name;
        Port = Ports.Free();
        WriteSpec(replicas, env);
    }

    public string Directory => _folder.Path;

    public string Name { get; }

    /// <summary>The web service's stable port: the load goes here, through the mesh.</summary>
    public int Port { get; }

    public BerthCli Cli => _folder.Cli;

    public string State => Cli.State;

    /// <summary>(Re)writes the spec: <paramref name="replicas"/> replicas, and <paramref name="env"/> as VERSION (a new pod template).</summary>
    /// <remarks>A GET in flight on a replica killed with SIGKILL sees a reset after it was sent. Envoy and Istio retry that only
    /// when retry_on names it, and so does Berth (docs/spec.md); the load here is idempotent GETs, so it is named.</remarks>
    public void WriteSpec(int replicas, string? env = null) => _folder.WriteSpec(TestHttpServer.App(Name, replicas, Port,
        environment: $"VERSION: \"{env ?? "1"}\"", extra: "mesh:\n  retries: {on: [connect-failure, reset, 502, 503, 504]}"));

    /// <summary>Writes <paramref name="yaml"/> as the spec instead (a scenario with a service of its own; the load still goes to <see cref="Port"/>).</summary>
    public void WriteSpec(string yaml) => _folder.WriteSpec(yaml);

    /// <summary>Mounts a small tmpfs as the state folder before the first <c>up</c> (disk-full and read-only scenarios).</summary>
    public Mount StateOnTmpfs(int kibibytes)
    {
        var mount = Mount.SmallTmpfs(State, kibibytes);
        _mounts.Add(mount);
        return mount;
    }

    public Task UpAsync(int ready) => Cli.UpDetachedAsync(ready);

    public ControlPlaneApi Api() => new(State);

    /// <summary>Brings the app up with <paramref name="ready"/> Ready replicas and starts <see cref="Load"/> on it, returning
    /// once the load's first 200 requests are answered: the state each scenario injects its fault into.</summary>
    public async Task<LoopbackLoad> UpUnderLoadAsync(int ready)
    {
        await UpAsync(ready);
        var load = Load();
        try
        {
            await load.MoreAsync(200);
            return load;
        }
        catch
        {
            await load.DisposeAsync();
            throw;
        }
    }

    /// <summary>Paced, bounded load on the stable port: 200 requests a second per client, at most <paramref name="minutes"/>
    /// minutes (2 by default) and 30,000 requests a minute.</summary>
    public LoopbackLoad Load(int minutes = 2) => LoopbackLoad.Start(Port, new LoopbackLoadOptions
    {
        Clients = 2, Pace = TimeSpan.FromMilliseconds(5), MaxRequests = 30_000 * minutes, MaxTime = TimeSpan.FromMinutes(minutes), RequestTimeout = TimeSpan.FromSeconds(5),
    });

    /// <summary>Replica id → pid, from <c>berth ps</c>.</summary>
    public async Task<Dictionary<string, int>> PidsAsync() =>
        (await Cli.PsAsync()).Where(r => r.TryGetProperty("pid", out var p) && p.ValueKind == JsonValueKind.Number)
            .ToDictionary(r => r.GetProperty("id").GetString()!, r => r.GetProperty("pid").GetInt32());

    public async Task<int> ReadyAsync() => await Cli.CountAsync("ready");

    /// <summary>Event ids, oldest first (the newest page, up to 1,000).</summary>
    public async Task<List<long>> EventIdsAsync() => [.. (await Cli.EventsAsync()).Select(e => e.GetProperty("id").GetInt64())];

    /// <summary>Every live process that is one of this app's replicas (its environment names this app's stable port),
    /// whether or not the control plane knows of it.</summary>
    public IReadOnlyList<int> LiveReplicaProcesses()
    {
        var mark = $"services__web__http__0=http://127.0.0.1:{Port.ToString(CultureInfo.InvariantCulture)}";
        var found = new List<int>();
        foreach (var proc in System.IO.Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(proc), NumberStyles.None, CultureInfo.InvariantCulture, out var pid))
            {
                continue;
            }

            try
            {
                var environ = File.ReadAllText(Path.Combine(proc, "environ"));
                var cmdline = File.ReadAllText(Path.Combine(proc, "cmdline"));
                if (environ.Split('\0').Contains(mark) && !cmdline.Contains("supervisor", StringComparison.Ordinal))
                {
                    found.Add(pid);
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
            }
        }

        return found;
    }

    /// <summary>Replica processes alive that <c>berth ps</c> does not list: orphans.</summary>
    public async Task<IReadOnlyList<int>> OrphansAsync()
    {
        var known = (await PidsAsync()).Values.ToHashSet();
        return [.. LiveReplicaProcesses().Where(p => !known.Contains(p))];
    }

    public Task KillControlPlaneAsync() => Cli.KillControlPlaneAsync();

    public async ValueTask DisposeAsync()
    {
        await Cli.DownAsync();
        foreach (var pid in LiveReplicaProcesses())
        {
            // Whatever a failed scenario left (its own replicas only: they carry this app's stable port).
            try
            {
                Process.GetProcessById(pid).Kill();
            }
            catch (Exception e) when (e is ArgumentException or InvalidOperationException)
            {
            }
        }

        foreach (var m in _mounts)
        {
            m.Dispose();
        }

        System.IO.Directory.Delete(Directory, recursive: true);
    }
}

/// <summary>One scenario's numbers, printed to the test output and appended to <c>chaos-results.md</c> beside the test
/// assembly, one table row each (docs/reliability.md's table is filled from it).</summary>
internal sealed record ChaosResult(string Scenario, LoopbackLoadResult Load, TimeSpan Recovery, string Lost)
{
    public void Report(ITestOutputHelper output)
    {
        var row = $"| {Scenario} | {Load.Failed} of {Load.Total} | {Load.FailingFor?.TotalMilliseconds.ToString("0", CultureInfo.InvariantCulture) ?? "0"} ms | {Recovery.TotalMilliseconds.ToString("0", CultureInfo.InvariantCulture)} ms | {Lost} |";
        output.WriteLine(row);
        output.WriteLine(Load.ToString());
        File.AppendAllText(Path.Combine(AppContext.BaseDirectory, "chaos-results.md"), row + "\n");
    }
}
