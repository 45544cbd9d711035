namespace Berth.Mesh.Tests.Functional;

/// <summary>
/// Plain HTTP/1.1 listeners on either transport: the mesh's own event loops (the default, which every other test runs on)
/// and Kestrel's socket transport (<see cref="MeshHostOptions.EventLoops"/> false, what BERTH_MESH_EVENT_LOOPS=0 gives),
/// which stays a user's way back and must keep working.
/// </summary>
public sealed class TransportTests
{
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Serve_KeepAliveClient_PooledUpstreamThenCloseDelimitedAnswers_OnEitherTransport(bool eventLoops)
    {
        var options = new MeshHostOptions { EventLoops = eventLoops };
        await using (var pooled = await RawMesh.ConnectAsync(options: options))
        {
            for (var i = 0; i < 3; i++)
            {
                await pooled.SendAsync($"GET /{i} HTTP/1.1\r\nHost: api\r\n\r\n");
                Assert.Equal("ok", (await pooled.ReadAsync()).Body);
            }

            Assert.Equal(3, pooled.Requests.Count);
        }

        await using var closing = await RawMesh.ConnectAsync(new RawUpstream { Respond = _ => "HTTP/1.0 200 OK\r\n\r\nuntil-close", CloseAfterRespond = true }, options);
        for (var i = 0; i < 3; i++)
        {
            await closing.SendAsync("GET / HTTP/1.1\r\nHost: api\r\n\r\n");
            var answer = await closing.ReadAsync();
            Assert.True(answer.Chunked);
            Assert.Equal("until-close", answer.Body);
        }
    }
}
