using System.Net;
using System.Net.Sockets;

namespace Berth.Cli.Tests.ControlPlane;

/// <summary>Issue #14 §11 with the real <c>berth</c>: a stable port another program holds is a hard error for its service.</summary>
[Collection("real processes")]
public sealed class PortConflictTests : IAsyncLifetime
{
    private readonly AppFolder _app = new("berth-cli-port-");
    private readonly TcpListener _holder = new(IPAddress.Loopback, 0);

    public PortConflictTests()
    {
        _holder.Start();
        Port = ((IPEndPoint)_holder.LocalEndpoint).Port;
        _app.WriteSpec(TestHttpServer.App("ports", replicas: 1, port: Port) + TestHttpServer.Service("other"));
    }

    private int Port { get; }

    public Task InitializeAsync() => Task.CompletedTask;

    // IAsyncLifetime, not IAsyncDisposable: xunit v2 never calls a test class's IAsyncDisposable.DisposeAsync (v3 does), so
    // whatever the test started (its app, control plane, data plane, replicas) would be left running.
    public async Task DisposeAsync()
    {
        _holder.Dispose();
        await _app.DisposeAsync();
    }

    [Fact]
    public async Task UpDetached_StablePortHeldByAnotherProgram_ExitsNonZeroNamingTheHolderServicePendingWithEventThenStartsOnceFree()
    {
        var up = await _app.Cli.RunAsync("up", "-d");

        Assert.True(up.Code == 3, $"berth up -d must fail when a stable port is taken: {up}");
        var reason = $"stable port {Port} of endpoint http cannot be listened on; it is held by pid {Environment.ProcessId} (";
        Assert.Contains($"berth: error: web: {reason}", up.Err, StringComparison.Ordinal);
        Assert.Contains("free the port or give the endpoint another one in the spec; the service starts once the port is free", up.Err, StringComparison.Ordinal);

        // The other service runs; web waits, Pending with the reason, and the event says so once.
        await Poll.UntilAsync(async () => (await _app.Cli.PsAsync()).Any(r => r.GetProperty("service").GetString() == "other" && r.GetProperty("phase").GetString() == "ready"),
            TimeSpan.FromSeconds(60), "the other service ready");
        var web = (await _app.Cli.PsAsync()).Single(r => r.GetProperty("service").GetString() == "web");
        Assert.Equal("pending", web.GetProperty("phase").GetString());
        Assert.StartsWith(reason, web.GetProperty("reason").GetString(), StringComparison.Ordinal);
        var conflicts = (await _app.Cli.EventsAsync()).Where(e => e.GetProperty("type").GetString() == "port-conflict").ToList();
        Assert.Single(conflicts);
        Assert.Equal("web", conflicts[0].GetProperty("service").GetString());

        // The port freed: web starts, with no one's help.
        _holder.Stop();
        await Poll.UntilAsync(async () => (await _app.Cli.PsAsync()).Any(r => r.GetProperty("service").GetString() == "web" && r.GetProperty("phase").GetString() == "ready"),
            TimeSpan.FromSeconds(60), "web ready once its port is free");
        using var http = new HttpClient();
        Assert.True((await http.GetAsync(new Uri($"http://127.0.0.1:{Port}/"))).IsSuccessStatusCode, "web answers on its stable port");
    }
}
