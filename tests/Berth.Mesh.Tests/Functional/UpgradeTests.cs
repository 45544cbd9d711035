
namespace Berth.Mesh.Tests.Functional;

/// <summary>HTTP/1.1 Upgrade (WebSocket) through a mesh listener to a real Kestrel WebSocket echo server.</summary>
public sealed class UpgradeTests
{
    [Fact]
    public async Task Proxy_WebSocket_UpgradesAndEchoesBothWays()
    {
        var upstreamPort = Ports.Free();
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, upstreamPort));
        await using var upstream = builder.Build();
        upstream.UseWebSockets();
        upstream.Run(async context =>
        {
            if (!context.WebSockets.IsWebSocketRequest)
            {
                context.Response.StatusCode = 400;
                return;
            }

            using var socket = await context.WebSockets.AcceptWebSocketAsync();
            var buffer = new byte[1024];
            while (true)
            {
                var received = await socket.ReceiveAsync(buffer, context.RequestAborted);
                if (received.MessageType == WebSocketMessageType.Close)
                {
                    await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "bye", context.RequestAborted);
                    return;
                }

                await socket.SendAsync(buffer.AsMemory(0, received.Count), received.MessageType, received.EndOfMessage, context.RequestAborted);
            }
        });
        await upstream.StartAsync();
        await using var mesh = new MeshHost();
        var port = Ports.Free();
        await mesh.UpdateAsync(MeshTest.Route(port, MeshTest.Bare(), new Berth.Core.Routing.Upstream("ws", "127.0.0.1", upstreamPort, 1)), CancellationToken.None);

        using var client = new ClientWebSocket();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await client.ConnectAsync(new Uri($"ws://127.0.0.1:{port}/chat"), cts.Token);
        var replies = new List<string>();
        foreach (var text in new[] { "hello", "mesh" })
        {
            await client.SendAsync(Encoding.UTF8.GetBytes(text), WebSocketMessageType.Text, true, cts.Token);
            var buffer = new byte[64];
            var received = await client.ReceiveAsync(buffer, cts.Token);
            replies.Add(Encoding.UTF8.GetString(buffer, 0, received.Count));
        }

        await client.CloseAsync(WebSocketCloseStatus.NormalClosure, "done", cts.Token);

        Assert.Equal(["hello", "mesh"], replies);
        Assert.Equal(WebSocketState.Closed, client.State);
        await upstream.StopAsync();
    }
}
