using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;

namespace Berth.Mesh.Tests.Support;

/// <summary>A real Kestrel app on a free loopback port, started before <see cref="StartAsync"/> returns and stopped (2 s at
/// most) on dispose: the host of the in-process test upstreams (HTTP/1.1, gRPC).</summary>
internal sealed class LoopbackHost : IAsyncDisposable
{
    private readonly WebApplication _app;

    private LoopbackHost(WebApplication app, int port) => (_app, Port) = (app, port);

    public int Port { get; }

    /// <param name="map">Maps what the app serves (middleware, endpoints).</param>
    /// <param name="protocols">The listener's protocols; HTTP/2 alone for gRPC's prior knowledge.</param>
    /// <param name="services">Adds the services <paramref name="map"/> needs.</param>
    public static async Task<LoopbackHost> StartAsync(Action<WebApplication> map, HttpProtocols protocols = HttpProtocols.Http1AndHttp2, Action<IServiceCollection>? services = null)
    {
        var port = Ports.Free();
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.WebHost.UseKestrelCore().ConfigureKestrel(k => k.Listen(IPAddress.Loopback, port, l => l.Protocols = protocols));
        services?.Invoke(builder.Services);
        var app = builder.Build();
        map(app);
        await app.StartAsync();
        return new LoopbackHost(app, port);
    }

    public async ValueTask DisposeAsync()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        await _app.StopAsync(cts.Token);
        await _app.DisposeAsync();
    }
}
