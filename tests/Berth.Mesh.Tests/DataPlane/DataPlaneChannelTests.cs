using System.IO.Pipelines;

namespace Berth.Mesh.Tests.DataPlane;

/// <summary>The channel between control plane and data plane over a real Unix socket, with a real mesh behind it serving
/// real upstreams on loopback: token, snapshot versions, the saved snapshot, and what flows back (in-flight counts,
/// finished requests, route status).</summary>
[Collection(SerialCollection.Name)]
public sealed class DataPlaneChannelTests : IDisposable
{
    private readonly string _state = Directory.CreateTempSubdirectory("berth-dp-").FullName;

    public void Dispose() => Directory.Delete(_state, recursive: true);

    private async Task<DataPlaneServer> StartServerAsync(int sampledPerSecond = 200)
    {
        DataPlaneFiles.EnsureToken(_state);
        return await DataPlaneServer.StartAsync(new DataPlaneServerOptions(_state) { SampledRequestsPerSecond = sampledPerSecond }, CancellationToken.None);
    }

    [Fact]
    public async Task Hello_WrongToken_RefusedAndNothingApplied()
    {
        await using var a = await TestUpstream.StartAsync("a");
        await using var server = await StartServerAsync();
        var port = Ports.Free();

        using var socket = await ConnectRawAsync(server);
        // The reader first: once a send has met the closed channel, .NET no longer makes a stream over the socket.
        var reader = PipeReader.Create(new NetworkStream(socket));
        await SendAsync(socket, new DataPlaneMessage { Type = DataPlaneMessageTypes.Hello, Token = "not-the-token" });
        try
        {
            await SendAsync(socket, new DataPlaneMessage { Type = DataPlaneMessageTypes.Snapshot, Version = 1, Routes = [MeshTest.Route(port, MeshTest.Bare(), a.Upstream())] });
        }
        catch (SocketException e) when (e.SocketErrorCode is SocketError.Shutdown or SocketError.ConnectionReset or SocketError.ConnectionAborted)
        {
            // The data plane may already have answered and closed the channel (EPIPE): the snapshot is refused either way.
        }

        var answer = await DataPlaneWire.ReadAsync(reader, DataPlaneWire.MaxMessageBytes, CancellationToken.None);

        Assert.Equal(DataPlaneMessageTypes.Error, answer?.Type);
        Assert.Equal("bad token: the data plane accepts only the token in the app's state folder (data-plane-token)", answer?.Message);
        Assert.Null(await DataPlaneWire.ReadAsync(reader, DataPlaneWire.MaxMessageBytes, CancellationToken.None));
        Assert.Equal(0, server.Version);
        Assert.Empty(await server.Mesh.RoutesAsync(CancellationToken.None));
        await Assert.ThrowsAsync<HttpRequestException>(() => MeshTest.Client(port).GetStringAsync("/"));
    }

    [Fact]
    public async Task Connect_WrongTokenFile_ClientRefusedWithReason()
    {
        await using var server = await StartServerAsync();
        File.WriteAllText(Path.Combine(_state, DataPlaneFiles.TokenFile), "stolen-or-stale");

        var e = await Assert.ThrowsAsync<DataPlaneRefusedException>(() => DataPlaneClient.ConnectAsync(new DataPlaneClientOptions(_state), CancellationToken.None));

        Assert.Contains("refused the channel: bad token", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Snapshot_StaleVersion_RefusedAndTheNewerOneKeepsServing()
    {
        await using var a = await TestUpstream.StartAsync("a");
        await using var b = await TestUpstream.StartAsync("b");
        await using var server = await StartServerAsync();
        var port = Ports.Free();
        var token = DataPlaneFiles.ReadToken(_state);

        using var socket = await ConnectRawAsync(server);
        var reader = PipeReader.Create(new NetworkStream(socket));
        await SendAsync(socket, new DataPlaneMessage { Type = DataPlaneMessageTypes.Hello, Token = token });
        Assert.Equal(DataPlaneMessageTypes.Welcome, (await ReadReplyAsync(reader)).Type);
        await SendAsync(socket, new DataPlaneMessage { Type = DataPlaneMessageTypes.Snapshot, Id = 1, Version = 5, Routes = [MeshTest.Route(port, MeshTest.Bare(), a.Upstream())] });
        var ack = await ReadReplyAsync(reader);
        await SendAsync(socket, new DataPlaneMessage { Type = DataPlaneMessageTypes.Snapshot, Id = 2, Version = 4, Routes = [MeshTest.Route(port, MeshTest.Bare(), b.Upstream())] });
        var nack = await ReadReplyAsync(reader);

        Assert.Equal((DataPlaneMessageTypes.Ack, 5L), (ack.Type, ack.Version));
        Assert.Equal((DataPlaneMessageTypes.Nack, 2L), (nack.Type, nack.Id));
        Assert.Equal("stale snapshot: version 4 is not newer than version 5, which is served", nack.Message);
        Assert.Equal(5, server.Version);
        using var client = MeshTest.Client(port);
        for (var i = 0; i < 4; i++)
        {
            Assert.Equal("a", await client.GetStringAsync("/"));
        }

        Assert.Equal(0, b.Requests);
    }

    [Fact]
    public async Task Restart_SavedSnapshot_ServedBeforeAnyControlPlaneConnects()
    {
        await using var a = await TestUpstream.StartAsync("a");
        var port = Ports.Free();
        await using (var first = await StartServerAsync())
        {
            await using var client = await DataPlaneClient.ConnectAsync(new DataPlaneClientOptions(_state), CancellationToken.None);
            await client.UpdateAsync(MeshTest.Route(port, MeshTest.Bare(), a.Upstream()), CancellationToken.None);
        }

        await using var second = await StartServerAsync();

        using var http = MeshTest.Client(port);
        Assert.Equal("a", await http.GetStringAsync("/"));
        Assert.Equal(1, second.Version);
    }

    [Fact]
    public async Task Client_Routes_TrafficFlowsAndObservationsComeBack()
    {
        await using var a = await TestUpstream.StartAsync("a");
        var release = new TaskCompletionSource();
        a.Handler = async context =>
        {
            if (context.Request.Path == "/slow")
            {
                await release.Task.WaitAsync(context.RequestAborted);
            }

            await context.Response.WriteAsync("a");
        };
        await using var server = await StartServerAsync();
        var observed = new RecordingObserver();
        await using var client = await DataPlaneClient.ConnectAsync(new DataPlaneClientOptions(_state) { RequestObserver = observed }, CancellationToken.None);
        var port = Ports.Free();

        await client.UpdateAsync(MeshTest.Route(port, MeshTest.Bare(), a.Upstream()), CancellationToken.None);
        using var http = MeshTest.Client(port);
        Assert.Equal("a", await http.GetStringAsync("/hello"));
        var slow = http.GetStringAsync("/slow");

        await Poll.UntilAsync(() => client.InFlight("api", "a") == 1, TimeSpan.FromSeconds(20), "the slow request counted in flight on a, pushed by the data plane");
        await Poll.UntilAsync(() => observed.Paths.Contains("/hello"), TimeSpan.FromSeconds(20), "the finished GET /hello reported to the control plane's observer");
        var status = Assert.Single(await client.RoutesAsync(CancellationToken.None));
        Assert.Equal(("api", "http", port), (status.Service, status.Endpoint, status.Port));
        Assert.Equal("a", Assert.Single(status.Upstreams).Replica);
        Assert.Equal(server.Mesh.AdminAddress, client.AdminAddress);
        release.SetResult();
        Assert.Equal("a", await slow);
        await Poll.UntilAsync(() => client.InFlight("api", "a") == 0, TimeSpan.FromSeconds(20), "a's in-flight count back to 0");
    }

    [Fact]
    public async Task Server_MoreRequestsThanTheSample_RecordsSentStandForEveryRequestAndEveryFailureIsSent()
    {
        await using var a = await TestUpstream.StartAsync("a");
        a.AnswerOn("/fail", 500);
        await using var server = await StartServerAsync(sampledPerSecond: 3);
        var observed = new RecordingObserver();
        await using var client = await DataPlaneClient.ConnectAsync(new DataPlaneClientOptions(_state) { RequestObserver = observed }, CancellationToken.None);
        var port = Ports.Free();
        await client.UpdateAsync(MeshTest.Route(port, MeshTest.Bare(), a.Upstream()), CancellationToken.None);
        using var http = MeshTest.Client(port);

        for (var i = 0; i < 40; i++)
        {
            (await http.GetAsync(i % 10 == 0 ? "/fail" : "/ok")).Dispose();
        }

        // Requests not sent are carried by the next sent record of the service, so keep asking until all 40 are accounted for.
        await Poll.UntilAsync(async () =>
        {
            if (observed.Weight < 40)
            {
                (await http.GetAsync("/ok")).Dispose();
            }

            return observed.Weight >= 40;
        }, TimeSpan.FromSeconds(30), "records whose weights add up to every request sent");
        Assert.Equal(4, observed.Paths.Count(p => p == "/fail"));
        Assert.True(observed.Records < observed.Weight, $"{observed.Records} records for {observed.Weight} requests: successes past 3 a second must be sampled");
    }

    [Fact]
    public async Task Client_PortTaken_UpdateThrowsWithTheMeshsReason()
    {
        await using var server = await StartServerAsync();
        await using var client = await DataPlaneClient.ConnectAsync(new DataPlaneClientOptions(_state), CancellationToken.None);
        using var holder = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        holder.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        holder.Listen();
        var port = ((IPEndPoint)holder.LocalEndPoint!).Port;

        var e = await Assert.ThrowsAsync<MeshListenerException>(() => client.UpdateAsync(MeshTest.Route(port, MeshTest.Bare()), CancellationToken.None));

        Assert.StartsWith($"mesh: cannot listen for service api, endpoint http", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Client_ServerReplaced_ReconnectsAndSendsItsTable()
    {
        await using var a = await TestUpstream.StartAsync("a");
        await using var b = await TestUpstream.StartAsync("b");
        var portA = Ports.Free();
        var portB = Ports.Free();
        var first = await StartServerAsync();
        await using var client = await DataPlaneClient.ConnectAsync(new DataPlaneClientOptions(_state), CancellationToken.None);
        await client.UpdateAsync(MeshTest.Route(portA, MeshTest.Bare(), a.Upstream()), CancellationToken.None);
        await first.DisposeAsync();
        // Snapshot saved, then a route the gone data plane never saw: the next one must get both.
        File.Delete(Path.Combine(_state, DataPlaneFiles.RoutesFile));

        await using var second = await StartServerAsync();
        await Poll.UntilAsync(() => client.Reconnects == 1 && second.Version > 0, TimeSpan.FromSeconds(20), "the client reconnected to the new data plane and sent its table");
        await client.UpdateAsync(MeshTest.Route(portB, MeshTest.Bare(), b.Upstream()) with { Service = "web" }, CancellationToken.None);

        Assert.Equal("a", await MeshTest.Client(portA).GetStringAsync("/"));
        Assert.Equal("b", await MeshTest.Client(portB).GetStringAsync("/"));
    }

    private static async Task<Socket> ConnectRawAsync(DataPlaneServer server)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await socket.ConnectAsync(new UnixDomainSocketEndPoint(server.SocketPath));
        return socket;
    }

    private static async Task SendAsync(Socket socket, DataPlaneMessage message) => await socket.SendAsync(DataPlaneWire.Encode(message));

    /// <summary>The next reply, skipping the data plane's pushes (in-flight counts, requests).</summary>
    private static async Task<DataPlaneMessage> ReadReplyAsync(PipeReader reader)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (await DataPlaneWire.ReadAsync(reader, DataPlaneWire.MaxMessageBytes, timeout.Token) is { } message)
        {
            if (message.Type is not (DataPlaneMessageTypes.InFlight or DataPlaneMessageTypes.Requests))
            {
                return message;
            }
        }

        throw new InvalidOperationException("the data plane closed the channel before replying");
    }

    private sealed class RecordingObserver : IMeshRequestObserver
    {
        public ConcurrentBag<string> Paths { get; } = [];

        private long _weight;
        private int _records;

        public long Weight => Interlocked.Read(ref _weight);

        public int Records => Volatile.Read(ref _records);

        public void OnRequest(in MeshRequestRecord request)
        {
            Paths.Add(request.Path);
            Interlocked.Add(ref _weight, request.Weight);
            Interlocked.Increment(ref _records);
        }
    }
}
