using System.Diagnostics;
using System.Net.Sockets;
using Berth.Core.Model;
using Berth.Mesh.Tests.Support;

namespace Berth.Mesh.Tests.Functional;

/// <summary>
/// The mesh's own HTTP/1.1 server (Http1Server) with raw sockets: what it owns, what it hands to Kestrel unread, and the
/// bounds on idle and partial connections.
/// </summary>
[Collection(SerialCollection.Name)]
public sealed class Http1ServerTests
{
    [Fact]
    public async Task Serve_ConnectionNamesAHeaderNextToKeepAlive_NamedHeaderStripped()
    {
        // Kestrel reported "Connection: X, keep-alive" as just keep-alive, so X reached the upstream; the mesh's parser reads every token.
        await using var raw = await RawMesh.ConnectAsync();

        await raw.SendAsync("GET / HTTP/1.1\r\nHost: api\r\nConnection: X-Client-Hop, keep-alive\r\nX-Client-Hop: secret\r\nX-End-To-End: kept\r\n\r\n");
        var response = await raw.ReadAsync();

        Assert.Equal(200, response.Status);
        var received = Assert.Single(raw.Requests);
        Assert.DoesNotContain("X-Client-Hop", received, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("\r\nConnection:", received, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("\r\nX-End-To-End: kept\r\n", received, StringComparison.Ordinal);
        Assert.Contains("\r\nX-Forwarded-For: 127.0.0.1\r\n", received, StringComparison.Ordinal);
        Assert.Contains("\r\nX-Forwarded-Host: api\r\n", received, StringComparison.Ordinal);
        Assert.Contains("\r\ntraceparent: 00-", received, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Serve_PipelinedOwnedThenChunkedThenOwned_AllAnsweredInOrderOnOneConnection()
    {
        // The chunked POST is Kestrel's to read: the connection is handed over with it unread, and Kestrel answers the rest.
        await using var raw = await RawMesh.ConnectAsync(new RawUpstream
        {
            Respond = head => $"HTTP/1.1 200 OK\r\nContent-Length: {head.Split(' ')[1].Length}\r\n\r\n{head.Split(' ')[1]}",
        });

        await raw.SendAsync("GET /one HTTP/1.1\r\nHost: api\r\n\r\n"
            + "POST /two HTTP/1.1\r\nHost: api\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n"
            + "GET /three HTTP/1.1\r\nHost: api\r\n\r\n");

        Assert.Equal("/one", (await raw.ReadAsync()).Body);
        Assert.Equal("/two", (await raw.ReadAsync()).Body);
        Assert.Equal("/three", (await raw.ReadAsync()).Body);
        Assert.Equal(3, raw.Requests.Count);
        Assert.Contains(raw.Requests, r => r.StartsWith("POST /two ", StringComparison.Ordinal) && r.EndsWith("abc\r\n0\r\n\r\n", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("G(T / HTTP/1.1\r\nHost: api\r\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\nHost: api\r\nHost: other\r\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\nHost : api\r\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\nHost: api\r\nBad Name: x\r\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\nHost: api\r\nX-Bare: a\rb\r\n\r\n")]
    [InlineData("GET /a b HTTP/1.1\r\nHost: api\r\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\nHost: api\r\nContent-Length: 1x\r\n\r\n")]
    public async Task Serve_MalformedHead_Answered400AndNothingForwarded(string request)
    {
        await using var raw = await RawMesh.ConnectAsync();

        await raw.SendAsync(request);

        Assert.Equal(400, (await raw.ReadAsync()).Status);
        Assert.Empty(raw.Requests);
    }

    [Fact]
    public async Task Serve_HeadArrivesInPieces_ForwardedOnceWhole()
    {
        await using var raw = await RawMesh.ConnectAsync();

        await raw.SendAsync("GET /piece HTTP/1.1\r\nHo");
        await Task.Delay(200); // two TCP segments: the parser sees a partial head first
        await raw.SendAsync("st: api\r\nX-A: 1\r\n\r\n");

        Assert.Equal(200, (await raw.ReadAsync()).Status);
        var received = Assert.Single(raw.Requests);
        Assert.StartsWith("GET /piece HTTP/1.1\r\n", received, StringComparison.Ordinal);
        Assert.Contains("\r\nX-A: 1\r\n", received, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Serve_PartialHeadNeverFinished_ConnectionClosedByTheHeadersTimeout()
    {
        // Slowloris: a head that never ends holds the connection only as long as the headers timeout.
        await using var raw = await RawMesh.ConnectAsync(options: new MeshHostOptions { RequestHeadersTimeout = TimeSpan.FromSeconds(2) });
        var watch = Stopwatch.StartNew();

        await raw.SendAsync("GET / HTTP/1.1\r\nHost: api\r\nX-Slow: ");

        Assert.True(await ClosedOrAnsweredWithinAsync(raw.Client, TimeSpan.FromSeconds(30)), "a partial head must be cut off by the headers timeout");
        Assert.True(watch.Elapsed >= TimeSpan.FromSeconds(1.5), $"closed after {watch.Elapsed}, before the 2 s headers timeout");
        Assert.Empty(raw.Requests);
    }

    [Fact]
    public async Task Serve_IdleAfterARequest_ClosedByTheKeepAliveTimeout()
    {
        await using var raw = await RawMesh.ConnectAsync(options: new MeshHostOptions { KeepAliveTimeout = TimeSpan.FromSeconds(2) });

        await raw.SendAsync("GET / HTTP/1.1\r\nHost: api\r\n\r\n");
        Assert.Equal(200, (await raw.ReadAsync()).Status);
        var watch = Stopwatch.StartNew();

        Assert.True(await raw.ClosedAsync(), "an idle keep-alive connection must be closed after the keep-alive timeout");
        Assert.True(watch.Elapsed >= TimeSpan.FromSeconds(1.5), $"closed after {watch.Elapsed}, before the 2 s keep-alive timeout");
    }

    [Fact]
    public async Task Serve_CloseDelimitedUpstreamResponse_ChunkedToTheClientWhichKeepsItsConnection()
    {
        await using var raw = await RawMesh.ConnectAsync(new RawUpstream { Respond = _ => "HTTP/1.0 200 OK\r\nX-Old: 1\r\n\r\nuntil-close", CloseAfterRespond = true });

        await raw.SendAsync("GET / HTTP/1.1\r\nHost: api\r\n\r\n");
        var first = await raw.ReadAsync();
        await raw.SendAsync("GET / HTTP/1.1\r\nHost: api\r\n\r\n");
        var second = await raw.ReadAsync();

        Assert.True(first.Chunked);
        Assert.Equal("until-close", first.Body);
        Assert.Equal("1", first.Header("X-Old"));
        Assert.Equal("until-close", second.Body);
    }

    [Fact]
    public async Task Serve_ChunkedUpstreamResponseWithTrailers_BodyWholeTrailersDroppedConnectionReusable()
    {
        await using var raw = await RawMesh.ConnectAsync(new RawUpstream
        {
            Respond = _ => "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Sum: 11\r\n\r\n",
        });

        await raw.SendAsync("GET / HTTP/1.1\r\nHost: api\r\n\r\nGET / HTTP/1.1\r\nHost: api\r\n\r\n");
        var first = await raw.ReadAsync();
        var second = await raw.ReadAsync();

        Assert.True(first.Chunked);
        Assert.Equal("hello world", first.Body);
        Assert.Null(first.Header("Trailer"));
        Assert.Equal("hello world", second.Body);
    }

    [Fact]
    public async Task Serve_ConnectionClose_AnsweredWithConnectionCloseThenClosed()
    {
        await using var raw = await RawMesh.ConnectAsync();

        await raw.SendAsync("GET / HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n");
        var response = await raw.ReadAsync();

        Assert.Equal(200, response.Status);
        Assert.Equal("close", response.Header("Connection"));
        Assert.True(await raw.ClosedAsync(), "the mesh must close after answering a request that asked for close");
    }

    [Fact]
    public async Task Serve_NoUpstreamAnswer_MeshAnswerWithErrorHeaderAndDate()
    {
        var dead = new Berth.Core.Routing.Upstream("dead", "127.0.0.1", Ports.Free(), 1);
        await using var mesh = await MeshTest.ServeAsync(dead, policy: MeshPolicy.Default with { Retries = new RetryPolicy { Attempts = 0 } });
        using var raw = await RawHttp.ConnectAsync(mesh.Port);

        await raw.SendAsync("GET / HTTP/1.1\r\nHost: api\r\n\r\n");
        var response = await raw.ReadAsync();
        await raw.SendAsync("GET / HTTP/1.1\r\nHost: api\r\n\r\n");
        var again = await raw.ReadAsync();

        Assert.Equal(502, response.Status);
        Assert.Equal("upstream-connect-failure", response.Header("x-berth-error"));
        Assert.Equal("0", response.Header("Content-Length"));
        Assert.NotNull(response.Header("Date"));
        Assert.Equal(502, again.Status);
    }

    private static async Task<bool> ClosedOrAnsweredWithinAsync(RawHttp raw, TimeSpan deadline)
    {
        using var timeout = new CancellationTokenSource(deadline);
        try
        {
            var response = await raw.ReadAsync().WaitAsync(timeout.Token);
            return response.Status == 408;
        }
        catch (IOException)
        {
            return true;
        }
        catch (SocketException)
        {
            return true;
        }
    }
}
