
namespace Berth.Mesh.Tests.Support;

/// <summary>A real Kestrel upstream on a loopback port whose behaviour a test can change while it runs.</summary>
internal sealed class TestUpstream : IAsyncDisposable
{
    private readonly WebApplication _app;
    private int _requests;

    private TestUpstream(string name, WebApplication app, int port)
    {
        Name = name;
        _app = app;
        Port = port;
        Handler = context => context.Response.WriteAsync(name);
    }

    public string Name { get; }

    public int Port { get; }

    public int Requests => Volatile.Read(ref _requests);

    /// <summary>What the upstream answers; the default writes its name with 200.</summary>
    public Func<HttpContext, Task> Handler { get; set; }

    /// <summary>Headers of every request received, in order.</summary>
    public ConcurrentQueue<IHeaderDictionary> Received { get; } = new();

    public Upstream Upstream(long revision = 1) => new(Name, "127.0.0.1", Port, revision);

    public void Answer(int status) => Handler = context =>
    {
        context.Response.StatusCode = status;
        return context.Response.WriteAsync(Name);
    };

    /// <summary>Answers <paramref name="status"/> on <paramref name="path"/> and 200 on every other path, with no body.</summary>
    public void AnswerOn(string path, int status) => Handler = context =>
    {
        context.Response.StatusCode = context.Request.Path == path ? status : 200;
        return Task.CompletedTask;
    };

    public static async Task<TestUpstream> StartAsync(string name)
    {
        var port = Ports.Free();
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.WebHost.UseKestrelCore().ConfigureKestrel(k => k.Listen(IPAddress.Loopback, port));
        var app = builder.Build();
        TestUpstream? self = null;
        app.Run(context =>
        {
            Interlocked.Increment(ref self!._requests);
            self.Received.Enqueue(new HeaderDictionary(context.Request.Headers.ToDictionary(h => h.Key, h => h.Value, StringComparer.OrdinalIgnoreCase)));
            return self.Handler(context);
        });
        self = new TestUpstream(name, app, port);
        await app.StartAsync();
        return self;
    }

    public async ValueTask DisposeAsync()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        await _app.StopAsync(cts.Token);
        await _app.DisposeAsync();
    }
}
