using Berth.Core.Model;
using Berth.Orchestration.Controllers;
using Berth.Orchestration.State;
using Berth.Testing.ControlPlanes;
using Berth.Runtime;

namespace Berth.Orchestration.Tests.Controllers;

/// <summary>Services whose limits the driver cannot enforce still run, and the control plane says so once per service.</summary>
public sealed class LimitsWarningTests : IAsyncLifetime
{
    private readonly ControlPlaneHarness _h = new("berth-limits-");

    public async Task InitializeAsync() => await _h.StartAsync();

    public async Task DisposeAsync() => await _h.DisposeAsync();

    private static Service Limited(string name, string? cpu, string? memory) => new()
    {
        Name = name, Command = [name],
        Resources = new Resources { CpuLimit = cpu is null ? null : CpuQuantity.Parse(cpu), MemoryLimit = memory is null ? null : ByteSize.Parse(memory) },
    };

    private List<EventRecord> LimitEvents() => [.. _h.Store.ListEvents(0, int.MaxValue).Where(e => e.Type == EventTypes.LimitsNotEnforced)];

    [Fact]
    public async Task Apply_LimitsOnDriverWithoutCgroups_OneEventPerServiceNotRepeatedOnScale()
    {
        var app = new Application { Name = "shop", Services = [Limited("api", "500m", "256Mi"), Limited("web", null, "64Mi"), Limited("free", null, null)] };

        await _h.Plane.ApplyAsync(app, "up", CancellationToken.None);
        await _h.Plane.ScaleAsync("api", 3, CancellationToken.None);
        await _h.Plane.ApplyAsync(app, "up", CancellationToken.None);

        var events = LimitEvents();
        Assert.Equal(["api", "web"], events.Select(e => e.Service));
        Assert.Equal("limits not enforced for api (cpu 500m, memory 256Mi): none; " + LimitsCheck.ProcessFix, events[0].Message);
        Assert.Equal("limits not enforced for web (memory 64Mi): none; " + LimitsCheck.ProcessFix, events[1].Message);
        Assert.Equal(events.Select(e => e.Message), _h.Plane.LimitWarnings.Select(w => w.Message));
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

        public Task<ExecResult> ExecAsync(ReplicaHandle replica, IReadOnlyList<string> command, string? workingDirectory, CancellationToken cancellationToken) => throw new NotSupportedException();

        public Task<IReadOnlyList<ReplicaHandle>> ListAsync(string app, CancellationToken cancellationToken) => throw new NotSupportedException();
    }
}
