
namespace Berth.Mesh.Tests.Support;

/// <summary>A real Kestrel upstream on a loopback port whose behaviour a test can change while it runs.</summary>
internal sealed class TestUpstream : IAsyncDisposable
{
    private LoopbackHost? _host;
    private int _requests;

    private TestUpstream(string name)
    {
        Name = name;
        Handler = context => context.Response.WriteAsync(name);
    }

    public string Name { get; }

    public int Port => _host!.Port;

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

    /// <summary>Answers <paramref name="body"/> (200) to each request only once the returned source is completed: a request
    /// held in flight for as long as the test wants. A held request the caller gives up on (a timeout, a drain) ends there.</summary>
    public TaskCompletionSource HoldAnswer(string body)
    {
        var release = new TaskCompletionSource();
        Handler = async context =>
        {
            await release.Task.WaitAsync(context.RequestAborted);
            await context.Response.WriteAsync(body);
        };
        return release;
    }

    /// <summary>Answers <paramref name="status"/> on <paramref name="path"/> and 200 on every other path, with no body.</summary>
    public void AnswerOn(string path, int status) => Handler = context =>
    {
        context.Response.StatusCode = context.Request.Path == path ? status : 200;
        return Task.CompletedTask;
    };

    public static async Task<TestUpstream> StartAsync(string name)
    {
        var self = new TestUpstream(name);
        self._host = await LoopbackHost.StartAsync(app => app.Run(self.ServeAsync));
        return self;
    }

    public ValueTask DisposeAsync() => _host!.DisposeAsync();

    private Task ServeAsync(HttpContext context)
    {
        Interlocked.Increment(ref _requests);
        Received.Enqueue(new HeaderDictionary(context.Request.Headers.ToDictionary(h => h.Key, h => h.Value, StringComparer.OrdinalIgnoreCase)));
        return Handler(context);
    }
}
