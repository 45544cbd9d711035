
namespace Berth.Orchestration.Tests.Controllers;

/// <summary>Services whose limits the driver cannot enforce still run, and the control plane says so once per service.</summary>
public sealed class LimitsWarningTests : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("berth-limits-").FullName;
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
    private StateStore _store = null!;
    private ControlPlane _plane = null!;

    public async Task InitializeAsync()
    {
        _store = StateStore.Open(_dir);
        _plane = new ControlPlane(new OrchestratorOptions { StateDirectory = _dir }, _store, [new FakeDriver(_time)], new RecordingRouteSink(), new ScriptedProber(), _time);
        await _plane.StartAsync(CancellationToken.None);
    }

    public async Task DisposeAsync()
    {
        await _plane.DisposeAsync();
        _store.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    private static Service Limited(string name, string? cpu, string? memory) => new()
    {
        Name = name, Command = [name],
        Resources = new Resources { CpuLimit = cpu is null ? null : CpuQuantity.Parse(cpu), MemoryLimit = memory is null ? null : ByteSize.Parse(memory) },
    };

    private List<EventRecord> LimitEvents() => [.. _store.ListEvents(0, int.MaxValue).Where(e => e.Type == EventTypes.LimitsNotEnforced)];

    [Fact]
    public async Task Apply_LimitsOnDriverWithoutCgroups_OneEventPerServiceNotRepeatedOnScale()
    {
        var app = new Application { Name = "shop", Services = [Limited("api", "500m", "256Mi"), Limited("web", null, "64Mi"), Limited("free", null, null)] };

        await _plane.ApplyAsync(app, "up", CancellationToken.None);
        await _plane.ScaleAsync("api", 3, CancellationToken.None);
        await _plane.ApplyAsync(app, "up", CancellationToken.None);

        var events = LimitEvents();
        Assert.Equal(["api", "web"], events.Select(e => e.Service));
        Assert.Equal("limits not enforced for api (cpu 500m, memory 256Mi): none; " + LimitsCheck.ProcessFix, events[0].Message);
        Assert.Equal("limits not enforced for web (memory 64Mi): none; " + LimitsCheck.ProcessFix, events[1].Message);
        Assert.Equal(events.Select(e => e.Message), _plane.LimitWarnings.Select(w => w.Message));
    }

    [Fact]
    public void Check_DriverEnforcesCpuOnly_NamesOnlyMemory()
    {
        var driver = new StubDriver(new DriverCapabilities { CpuLimitsEnforced = true, LimitsMechanism = "docker 27.0: cgroup v2 (systemd driver)" }, RuntimeKind.Docker);
        var app = new Application { Name = "shop", Services = [Limited("db", "1", "1Gi") with { Image = "postgres:16" }] };

        var warning = Assert.Single(LimitsCheck.Check(app, [driver]));

        Assert.Equal(new LimitsWarning("db", "docker", "limits not enforced for db (memory 1Gi): the Docker engine does not enforce them (docker 27.0: cgroup v2 (systemd driver)); see the warnings of 'docker info'"), warning);
    }

    [Fact]
    public void Check_DriverUnavailable_NoWarningBecauseNothingRuns()
    {
        var driver = new StubDriver(new DriverCapabilities { Available = false, UnavailableReason = "Docker engine not reachable" }, RuntimeKind.Docker);
        var app = new Application { Name = "shop", Services = [Limited("db", "1", "1Gi") with { Image = "postgres:16" }] };

        Assert.Empty(LimitsCheck.Check(app, [driver]));
    }

    private sealed class StubDriver(DriverCapabilities capabilities, RuntimeKind kind) : IWorkloadDriver
    {
        public RuntimeKind Kind => kind;

        public DriverCapabilities Capabilities => capabilities;

        public Task<ReplicaHandle> StartAsync(ReplicaSpec spec, CancellationToken cancellationToken) => throw new NotSupportedException();

        public Task<ReplicaStatus> StopAsync(ReplicaHandle replica, TimeSpan gracePeriod, CancellationToken cancellationToken) => throw new NotSupportedException();

        public Task RemoveAsync(ReplicaHandle replica, CancellationToken cancellationToken) => throw new NotSupportedException();

        public Task<ReplicaStatus> InspectAsync(ReplicaHandle replica, CancellationToken cancellationToken) => throw new NotSupportedException();

        public Task<ReplicaStatus> WaitForExitAsync(ReplicaHandle replica, CancellationToken cancellationToken) => throw new NotSupportedException();

        public IAsyncEnumerable<LogEntry> GetLogsAsync(ReplicaHandle replica, LogOptions options, CancellationToken cancellationToken) => throw new NotSupportedException();

        public Task<ReplicaStats> GetStatsAsync(ReplicaHandle replica, CancellationToken cancellationToken) => throw new NotSupportedException();

        public Task<IReadOnlyList<ReplicaHandle>> ListAsync(string app, CancellationToken cancellationToken) => throw new NotSupportedException();
    }
}
