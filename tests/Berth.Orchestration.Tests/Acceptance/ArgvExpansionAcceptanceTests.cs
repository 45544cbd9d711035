
namespace Berth.Orchestration.Tests.Acceptance;

/// <summary>A real process, started by the real process driver, prints the argv it was given: $(VAR) is its own port,
/// replica id and spec env, without a shell.</summary>
[Collection("real processes")]
public sealed class ArgvExpansionAcceptanceTests : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("berth-argv-").FullName;
    private StateStore _store = null!;
    private ControlPlane _plane = null!;
    private ProbeExecutor _prober = null!;

    public async Task InitializeAsync()
    {
        _store = StateStore.Open(_dir);
        _prober = new ProbeExecutor();
        _plane = new ControlPlane(new OrchestratorOptions { StateDirectory = _dir }, _store,
            [new ProcessDriver(new ProcessDriverOptions { StateRoot = Path.Combine(_dir, "runtime"), UseCgroups = false })],
            new RoutingTable(), _prober);
        await _plane.StartAsync(CancellationToken.None);
    }

    public async Task DisposeAsync()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await _plane.DownAsync(cts.Token);
        await _plane.DisposeAsync();
        _prober.Dispose();
        _store.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public async Task Start_CommandWithReplicaVariables_ProcessReceivesItsOwnPortAndIds()
    {
        await _plane.ApplyAsync(new Application
        {
            Name = "argv",
            Services =
            [
                new Service
                {
                    Name = "echo",
                    Command = ["perl", "-e", "$| = 1; print join('|', @ARGV), qq(\\n); sleep 600", "--", "--port=$(PORT)", "$(BERTH_REPLICA)", "$(GREETING)", "$$(PORT)", "$(NOPE)"],
                    Env = ImmutableSortedDictionary<string, string>.Empty.Add("GREETING", "hello world"),
                    Endpoints = [new Endpoint { Name = "http" }],
                    StopGracePeriod = TimeSpan.FromSeconds(1),
                },
            ],
        }, "up", CancellationToken.None);

        var line = "";
        ReplicaRecord? replica = null;
        async Task<bool> Printed()
        {
            replica = _plane.Replicas.FirstOrDefault(r => r.Handle is not null && r.Phase is ReplicaPhase.Running or ReplicaPhase.Ready);
            if (replica is null)
            {
                return false;
            }

            await foreach (var entry in _plane.GetLogsAsync(replica.Id, new LogOptions { Stderr = false }, CancellationToken.None))
            {
                line = entry.Text;
            }

            return line.Length > 0;
        }

        try
        {
            await Poll.UntilAsync(Printed, TimeSpan.FromSeconds(60), "the echo replica's argv on its stdout");
        }
        catch (TimeoutException e)
        {
            throw new TimeoutException($"{e.Message}; events: {string.Join("; ", _store.ListEvents().TakeLast(10).Select(x => $"{x.Type} {x.Replica}: {x.Message}"))}", e);
        }

        Assert.Equal($"--port={replica!.Ports["http"]}|{replica.Id}|hello world|$(PORT)|$(NOPE)", line);
    }
}
