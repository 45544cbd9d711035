using System.Net;
using System.Net.Sockets;
using System.Text;
using Berth.Mesh.Transport;

namespace Berth.Mesh.Tests.Transport;

/// <summary>The mesh's event-loop sockets against plain .NET sockets on loopback: waits, edges, cancellation, liveness.</summary>
public sealed class LoopSocketTests
{
    [Fact]
    public async Task ConnectSendReceive_TheAnswerCompletesOnTheLoopThatOwnsTheSocket()
    {
        using var listener = Listen();
        var loop = EventLoop.Next();
        using var client = await LoopSocket.ConnectAsync(new Socket(SocketType.Stream, ProtocolType.Tcp), Loopback(listener), loop, CancellationToken.None);
        using var server = await listener.AcceptAsync();

        await client.SendAsync("ping"u8.ToArray());
        Assert.Equal("ping", await ReceiveTextAsync(server, 4));

        var buffer = new byte[16];
        var pending = client.ReceiveAsync(buffer); // nothing sent yet: it waits for the edge
        Assert.False(pending.IsCompleted);
        var continued = WhereItContinuesAsync(pending); // its continuation is registered now, before the answer
        await server.SendAsync("pong"u8.ToArray());
        var (n, ranOn) = await continued;

        Assert.Equal("pong", Encoding.ASCII.GetString(buffer, 0, n));
        Assert.Same(loop, ranOn);
    }

    [Fact]
    public async Task SendAsync_MoreThanTheSocketBuffersHold_WaitsForThePeerThenSendsEveryByte()
    {
        using var listener = Listen();
        using var client = await LoopSocket.ConnectAsync(new Socket(SocketType.Stream, ProtocolType.Tcp), Loopback(listener), EventLoop.Next(), CancellationToken.None);
        using var server = await listener.AcceptAsync();
        var data = new byte[32 * 1024 * 1024];
        Random.Shared.NextBytes(data);

        var sending = client.SendAsync(data).AsTask();
        Assert.False(sending.IsCompleted, "32 MiB cannot fit in loopback's socket buffers while nobody reads: the send waits for writability");

        var received = new byte[data.Length];
        var total = 0;
        while (total < received.Length)
        {
            var n = await server.ReceiveAsync(received.AsMemory(total));
            Assert.NotEqual(0, n);
            total += n;
        }

        await sending.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.True(data.AsSpan().SequenceEqual(received));
    }

    [Fact]
    public async Task ReceiveAsync_CancelledWhileWaiting_Throws_AndTheNextReceiveStillGetsTheData()
    {
        using var listener = Listen();
        using var client = await LoopSocket.ConnectAsync(new Socket(SocketType.Stream, ProtocolType.Tcp), Loopback(listener), EventLoop.Next(), CancellationToken.None);
        using var server = await listener.AcceptAsync();
        using var cancel = new CancellationTokenSource();
        var buffer = new byte[16];

        var waiting = client.ReceiveAsync(buffer, cancel.Token).AsTask();
        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting);

        await server.SendAsync("later"u8.ToArray());
        var n = await client.ReceiveAsync(buffer).AsTask().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal("later", Encoding.ASCII.GetString(buffer, 0, n));
    }

    [Fact]
    public async Task ReceiveAsync_PeerClosesWhileWaiting_ReturnsZero()
    {
        using var listener = Listen();
        using var client = await LoopSocket.ConnectAsync(new Socket(SocketType.Stream, ProtocolType.Tcp), Loopback(listener), EventLoop.Next(), CancellationToken.None);
        var server = await listener.AcceptAsync();

        var waiting = client.ReceiveAsync(new byte[16]).AsTask();
        server.Dispose();

        Assert.Equal(0, await waiting.WaitAsync(TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task ReceiveAsync_DataAndEndOfStreamArrivedBeforeTheRead_ShortReadThenZero_NotAWaitForAnEdgeThatNeverComes()
    {
        // A close-delimited answer: the peer sends and closes at once. The short read that takes the data must not count as
        // "drained" (the end of stream is already in, and no edge will follow it), or the next receive waits forever.
        using var listener = Listen();
        using var client = await LoopSocket.ConnectAsync(new Socket(SocketType.Stream, ProtocolType.Tcp), Loopback(listener), EventLoop.Next(), CancellationToken.None);
        using (var server = await listener.AcceptAsync())
        {
            await server.SendAsync("until-close"u8.ToArray());
        }

        await Poll.UntilAsync(() => !client.IsIdleAndOpen(), TimeSpan.FromSeconds(10), "the data and the end of stream have reached the client socket");
        var buffer = new byte[64];

        Assert.Equal(11, await client.ReceiveAsync(buffer));
        Assert.Equal(0, await client.ReceiveAsync(buffer).AsTask().WaitAsync(TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task Dispose_WithAReceiveWaiting_FailsIt()
    {
        using var listener = Listen();
        var client = await LoopSocket.ConnectAsync(new Socket(SocketType.Stream, ProtocolType.Tcp), Loopback(listener), EventLoop.Next(), CancellationToken.None);
        using var server = await listener.AcceptAsync();

        var waiting = client.ReceiveAsync(new byte[16]).AsTask();
        client.Dispose();

        await Assert.ThrowsAsync<ObjectDisposedException>(() => waiting.WaitAsync(TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task IsIdleAndOpen_TrueWhileIdle_FalseOnceThePeerClosed_WithoutAReceive()
    {
        using var listener = Listen();
        using var client = await LoopSocket.ConnectAsync(new Socket(SocketType.Stream, ProtocolType.Tcp), Loopback(listener), EventLoop.Next(), CancellationToken.None);
        var server = await listener.AcceptAsync();
        await server.SendAsync("answer"u8.ToArray());
        var buffer = new byte[64];
        Assert.Equal(6, await client.ReceiveAsync(buffer)); // a short read: drained

        Assert.True(client.IsIdleAndOpen());
        server.Dispose();

        await Poll.UntilAsync(() => !client.IsIdleAndOpen(), TimeSpan.FromSeconds(10), "the idle connection is seen closed after the peer closed it");
    }

    [Fact]
    public async Task ConnectAsync_NothingListens_ConnectionRefused()
    {
        var port = Ports.Free();

        var refused = await Assert.ThrowsAsync<SocketException>(async () =>
            await LoopSocket.ConnectAsync(new Socket(SocketType.Stream, ProtocolType.Tcp), new IPEndPoint(IPAddress.Loopback, port), EventLoop.Next(), CancellationToken.None));

        Assert.Equal(SocketError.ConnectionRefused, refused.SocketErrorCode);
    }

    [Fact]
    public async Task PingPong_ManyConnectionsFromPoolThreadsAndLoops_NoReadinessEdgeLost()
    {
        // Every wait that misses its edge hangs its connection: 32 connections x 300 round trips, operations started both
        // from thread-pool threads and from continuations on the loops, must all finish.
        using var listener = Listen();
        const int Connections = 32, Rounds = 300;
        var echo = Task.Run(async () =>
        {
            var served = new List<Task>();
            for (var i = 0; i < Connections; i++)
            {
                var s = await listener.AcceptAsync();
                served.Add(Task.Run(async () =>
                {
                    using (s)
                    {
                        var b = new byte[8];
                        int n;
                        while ((n = await s.ReceiveAsync(b)) > 0)
                        {
                            await s.SendAsync(b.AsMemory(0, n));
                        }
                    }
                }));
            }

            await Task.WhenAll(served);
        });

        var clients = await Task.WhenAll(Enumerable.Range(0, Connections).Select(async i =>
        {
            using var c = await LoopSocket.ConnectAsync(new Socket(SocketType.Stream, ProtocolType.Tcp), Loopback(listener), EventLoop.Next(), CancellationToken.None);
            var b = new byte[8];
            var done = 0;
            for (var r = 0; r < Rounds; r++)
            {
                if (r % 2 == 0)
                {
                    await Task.Yield(); // half the rounds start from a pool thread, half from the loop's continuation
                }

                BitConverter.TryWriteBytes(b, (long)r);
                await c.SendAsync(b).ConfigureAwait(false);
                var got = 0;
                while (got < 8)
                {
                    var n = await c.ReceiveAsync(b.AsMemory(got)).ConfigureAwait(false);
                    Assert.NotEqual(0, n);
                    got += n;
                }

                Assert.Equal(r, BitConverter.ToInt64(b));
                done++;
            }

            return done;
        })).WaitAsync(TimeSpan.FromSeconds(60));

        Assert.All(clients, done => Assert.Equal(Rounds, done));
        await echo.WaitAsync(TimeSpan.FromSeconds(10));
    }

    /// <summary>The result and the loop the code after the await ran on (no synchronization context in between).</summary>
    private static async Task<(int Result, EventLoop? Loop)> WhereItContinuesAsync(ValueTask<int> pending)
    {
        var result = await pending.ConfigureAwait(false);
        return (result, EventLoop.Current);
    }

    private static Socket Listen()
    {
        var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(64);
        return listener;
    }

    private static IPEndPoint Loopback(Socket listener) => (IPEndPoint)listener.LocalEndPoint!;

    private static async Task<string> ReceiveTextAsync(Socket socket, int length)
    {
        var buffer = new byte[length];
        var got = 0;
        while (got < length)
        {
            var n = await socket.ReceiveAsync(buffer.AsMemory(got));
            Assert.NotEqual(0, n);
            got += n;
        }

        return Encoding.ASCII.GetString(buffer);
    }
}
