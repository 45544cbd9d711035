namespace Berth.Mesh.Tests.Functional;

/// <summary>HTTP/1.1 framing and header rules through a real listener, with raw-socket clients and upstreams so the bytes are what is checked.</summary>
[Collection(SerialCollection.Name)]
public sealed class Http11ConformanceTests
{
    [Fact]
    public async Task Proxy_ChunkedRequestBody_ForwardedChunkedAndWhole()
    {
        await using var raw = await RawMesh.ConnectAsync();

        await raw.SendAsync("POST /orders HTTP/1.1\r\nHost: api\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
        var response = await raw.ReadAsync();

        Assert.Equal(200, response.Status);
        var received = Assert.Single(raw.Requests);
        Assert.Contains("\r\nTransfer-Encoding: chunked\r\n", received, StringComparison.Ordinal);
        Assert.DoesNotContain("Content-Length", received, StringComparison.OrdinalIgnoreCase);
        Assert.Equal("hello world", Dechunk(received[(received.IndexOf("\r\n\r\n", StringComparison.Ordinal) + 4)..]));
    }

    [Fact]
    public async Task Proxy_ChunkedResponse_ReachesClientChunkedAndWhole()
    {
        await using var raw = await RawMesh.ConnectAsync(new RawUpstream
        {
            Respond = _ => "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nberth\r\n5\r\n mesh\r\n0\r\n\r\n",
        });

        await raw.SendAsync("GET / HTTP/1.1\r\nHost: api\r\n\r\n");
        var response = await raw.ReadAsync();
        await raw.SendAsync("GET /again HTTP/1.1\r\nHost: api\r\n\r\n");
        var second = await raw.ReadAsync();

        Assert.True(response.Chunked, "expected a chunked response to the client");
        Assert.Equal("berth mesh", response.Body);
        Assert.Equal("berth mesh", second.Body);
        Assert.Equal(2, raw.Requests.Count);
    }

    [Fact]
    public async Task Proxy_Expect100Continue_ClientGets100ThenTheUpstreamAnswer()
    {
        await using var raw = await RawMesh.ConnectAsync();

        await raw.SendAsync("POST /upload HTTP/1.1\r\nHost: api\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
        var interim = await raw.ReadAsync(interim: true);
        await raw.SendAsync("hello");
        var final = await raw.ReadAsync();

        Assert.Equal(100, interim.Status);
        Assert.Equal(200, final.Status);
        var received = Assert.Single(raw.Requests);
        Assert.EndsWith("\r\n\r\nhello", received, StringComparison.Ordinal);
        Assert.DoesNotContain("Expect:", received, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task Proxy_HopByHopHeaders_StrippedInBothDirections()
    {
        await using var raw = await RawMesh.ConnectAsync(new RawUpstream
        {
            Respond = _ => "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: X-Upstream-Hop\r\nX-Upstream-Hop: 1\r\nKeep-Alive: timeout=5\r\n"
                + "Proxy-Connection: keep-alive\r\nTrailer: X-Sum\r\nUpgrade: h2c\r\nX-End-To-End: kept\r\n\r\nok",
        });

        // (Kestrel reports "Connection: X-Client-Hop, keep-alive" as just "keep-alive", so a header named next to
        // keep-alive cannot be seen; named alone, as here, it is stripped.)
        await raw.SendAsync("GET / HTTP/1.1\r\nHost: api\r\nConnection: X-Client-Hop\r\nX-Client-Hop: secret\r\nKeep-Alive: timeout=5\r\n"
            + "Proxy-Connection: keep-alive\r\nTE: trailers\r\nTrailer: X-Sum\r\nUpgrade: h2c\r\nX-End-To-End: kept\r\n\r\n");
        var response = await raw.ReadAsync();

        var received = Assert.Single(raw.Requests);
        foreach (var hop in new[] { "X-Client-Hop", "Keep-Alive", "Proxy-Connection", "TE", "Trailer", "Upgrade" })
        {
            Assert.DoesNotContain("\r\n" + hop + ":", received, StringComparison.OrdinalIgnoreCase);
        }

        Assert.DoesNotContain("\r\nConnection:", received, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("\r\nX-End-To-End: kept\r\n", received, StringComparison.Ordinal);
        Assert.Equal(200, response.Status);
        foreach (var hop in new[] { "X-Upstream-Hop", "Keep-Alive", "Proxy-Connection", "Trailer", "Upgrade" })
        {
            Assert.Null(response.Header(hop));
        }

        Assert.Equal("kept", response.Header("X-End-To-End"));
        Assert.Equal("ok", response.Body);
    }

    [Theory]
    [InlineData("POST / HTTP/1.1\r\nHost: api\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")]
    [InlineData("POST / HTTP/1.1\r\nHost: api\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!")]
    [InlineData("GET / HTTP/1.1\r\nHost: api\r\nX-Folded: one\r\n two\r\n\r\n")]
    [InlineData("POST / HTTP/1.1\r\nHost: api\r\nTransfer-Encoding: gzip\r\n\r\nhello")]
    public async Task Proxy_SmugglingShapedRequest_Rejected400AndNothingForwarded(string request)
    {
        await using var raw = await RawMesh.ConnectAsync();

        await raw.SendAsync(request);
        var response = await raw.ReadAsync();

        Assert.Equal(400, response.Status);
        Assert.True(await raw.ClosedAsync(), "the connection must close after a request whose framing cannot be trusted");
        Assert.Empty(raw.Requests);
    }

    /// <summary>A head over one of the server's limits gets that limit's status: {0} in <paramref name="head"/> stands for
    /// <paramref name="kib"/> KiB of 'a'.</summary>
    [Theory]
    [InlineData("GET / HTTP/1.1\r\nHost: api\r\nX-Big: {0}\r\n\r\n", 40, 431)] // headers too large
    [InlineData("GET /{0} HTTP/1.1\r\nHost: api\r\n\r\n", 10, 414)] // request line too long
    public async Task Proxy_HeadOverALimit_AnsweredWithThatLimitsStatusNothingForwarded(string head, int kib, int status)
    {
        await using var raw = await RawMesh.ConnectAsync();

        await raw.SendAsync(string.Format(System.Globalization.CultureInfo.InvariantCulture, head, new string('a', kib * 1024)));

        Assert.Equal(status, (await raw.ReadAsync()).Status);
        Assert.Empty(raw.Requests);
    }

    [Fact]
    public async Task Proxy_PipelinedRequests_AnsweredInOrder()
    {
        await using var raw = await RawMesh.ConnectAsync(new RawUpstream
        {
            Respond = head =>
            {
                var path = head.Split(' ')[1];
                return $"HTTP/1.1 200 OK\r\nContent-Length: {path.Length}\r\n\r\n{path}";
            },
        });

        await raw.SendAsync("GET /one HTTP/1.1\r\nHost: api\r\n\r\nPOST /two HTTP/1.1\r\nHost: api\r\nContent-Length: 3\r\n\r\nabcGET /three HTTP/1.1\r\nHost: api\r\n\r\n");

        Assert.Equal("/one", (await raw.ReadAsync()).Body);
        Assert.Equal("/two", (await raw.ReadAsync()).Body);
        Assert.Equal("/three", (await raw.ReadAsync()).Body);
    }

    [Fact]
    public async Task Proxy_HeadRequest_ContentLengthKeptNoBodyRead()
    {
        await using var raw = await RawMesh.ConnectAsync(new RawUpstream { Respond = _ => "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n" });

        await raw.SendAsync("HEAD / HTTP/1.1\r\nHost: api\r\n\r\n");
        var head = await raw.ReadAsync(isHead: true);
        await raw.SendAsync("HEAD / HTTP/1.1\r\nHost: api\r\n\r\n");
        var again = await raw.ReadAsync(isHead: true);

        Assert.Equal("1234", head.Header("Content-Length"));
        Assert.Equal(200, again.Status);
    }

    private static string Dechunk(string chunked)
    {
        var body = new System.Text.StringBuilder();
        while (true)
        {
            var eol = chunked.IndexOf("\r\n", StringComparison.Ordinal);
            var size = Convert.ToInt32(chunked[..eol], 16);
            if (size == 0)
            {
                return body.ToString();
            }

            body.Append(chunked, eol + 2, size);
            chunked = chunked[(eol + 2 + size + 2)..];
        }
    }
}
