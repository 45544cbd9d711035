
namespace Berth.Orchestration.Tests.Acceptance;

/// <summary>A real process, started by the real process driver, prints the argv it was given: $(VAR) is its own port,
/// replica id and spec env, without a shell.</summary>
[Collection("real processes")]
public sealed class ArgvExpansionAcceptanceTests : IAsyncLifetime
{
    private ProcessPlane _p = null!;

    public async Task InitializeAsync() => _p = await ProcessPlane.StartAsync("berth-argv-");

    public async Task DisposeAsync() => await _p.DisposeAsync();

    [Fact]
    public async Task Start_CommandWithReplicaVariables_ProcessReceivesItsOwnPortAndIds()
    {
        await _p.Plane.ApplyAsync(new Application
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
            replica = _p.Plane.Replicas.FirstOrDefault(r => r.Handle is not null && r.Phase is ReplicaPhase.Running or ReplicaPhase.Ready);
            if (replica is null)
            {
                return false;
            }

            await foreach (var entry in _p.Plane.GetLogsAsync(replica.Id, new LogOptions { Stderr = false }, CancellationToken.None))
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
            throw new TimeoutException($"{e.Message}; events: {string.Join("; ", _p.Store.ListEvents().TakeLast(10).Select(x => $"{x.Type} {x.Replica}: {x.Message}"))}", e);
        }

        Assert.Equal($"--port={replica!.Ports["http"]}|{replica.Id}|hello world|$(PORT)|$(NOPE)", line);
    }
}
