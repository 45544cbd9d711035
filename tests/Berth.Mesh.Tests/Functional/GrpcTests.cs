using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;

namespace Berth.Mesh.Tests.Functional;

/// <summary>gRPC through a <c>protocol: grpc</c> listener, with a real Grpc.AspNetCore server and a Grpc.Net.Client client on loopback.</summary>
[Collection(SerialCollection.Name)]
public sealed class GrpcTests
{
    [Fact]
    public async Task Proxy_GrpcUnaryCall_AnsweredWithTrailersForwarded()
    {
        await using var server = await GrpcUpstream.StartAsync("a");
        await using var mesh = await MeshTest.ServeGrpcAsync(MeshPolicy.Default, server.Upstream);
        using var channel = GrpcChannel.ForAddress($"http://127.0.0.1:{mesh.Port}");

        using var call = channel.CreateCallInvoker().AsyncUnaryCall(EchoService.EchoMethod, null, new CallOptions(), "hello");
        var reply = await call.ResponseAsync;

        Assert.Equal("a:hello", reply);
        Assert.Equal("42", call.GetTrailers().GetValue("x-sum"));
        Assert.Equal(StatusCode.OK, call.GetStatus().StatusCode);
    }

    [Fact]
    public async Task Proxy_GrpcUnavailableWithRetryOnUnavailable_RetriedOnAnotherReplicaOnce()
    {
        await using var down = await GrpcUpstream.StartAsync("down");
        await using var up = await GrpcUpstream.StartAsync("up");
        down.Fail = StatusCode.Unavailable;
        await using var mesh = new MeshHost();
        await mesh.StartAsync(CancellationToken.None);
        var port = Ports.Free();
        var policy = MeshTest.Bare() with { Retries = new RetryPolicy { Attempts = 2, On = ["unavailable", "resource-exhausted"], BackoffBase = TimeSpan.FromMilliseconds(1) } };
        await mesh.UpdateAsync(MeshTest.GrpcRoute(port, policy, down.Upstream, up.Upstream), CancellationToken.None);
        using var channel = GrpcChannel.ForAddress($"http://127.0.0.1:{port}");
        var invoker = channel.CreateCallInvoker();

        for (var i = 0; i < 4; i++)
        {
            Assert.Equal("up:x", await invoker.AsyncUnaryCall(EchoService.EchoMethod, null, new CallOptions(), "x"));
        }

        Assert.InRange(down.Calls, 1, 4);
        Assert.Equal(4, up.Calls);
        using var admin = new HttpClient { BaseAddress = mesh.AdminAddress };
        var metrics = await admin.GetStringAsync("/metrics");
        Assert.Contains($"berth_mesh_retries_total{{service=\"api\",endpoint=\"grpc\",reason=\"grpc-unavailable\"}} {down.Calls}", metrics, StringComparison.Ordinal);
        Assert.Contains($"berth_mesh_grpc_responses_total{{service=\"api\",endpoint=\"grpc\",grpc_status=\"14\"}} {down.Calls}", metrics, StringComparison.Ordinal);
        Assert.Contains("berth_mesh_grpc_responses_total{service=\"api\",endpoint=\"grpc\",grpc_status=\"0\"} 4", metrics, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Proxy_GrpcStatusNotInRetryOn_NotRetried()
    {
        await using var failing = await GrpcUpstream.StartAsync("failing");
        await using var other = await GrpcUpstream.StartAsync("other");
        failing.Fail = StatusCode.Internal;
        other.Fail = StatusCode.Internal;
        var policy = MeshTest.Bare() with { Retries = new RetryPolicy { Attempts = 2, On = ["unavailable"] } };
        await using var mesh = await MeshTest.ServeGrpcAsync(policy, failing.Upstream, other.Upstream);
        using var channel = GrpcChannel.ForAddress($"http://127.0.0.1:{mesh.Port}");

        var error = await Assert.ThrowsAsync<RpcException>(() => channel.CreateCallInvoker().AsyncUnaryCall(EchoService.EchoMethod, null, new CallOptions(), "x").ResponseAsync);

        Assert.Equal(StatusCode.Internal, error.StatusCode);
        Assert.Equal(1, failing.Calls + other.Calls);
    }

    [Fact]
    public async Task Proxy_GrpcTimeout_PropagatedUpstreamAndTheCallEndsDeadlineExceededInTime()
    {
        await using var slow = await GrpcUpstream.StartAsync("slow");
        slow.Delay = TimeSpan.FromSeconds(20);
        await using var mesh = await MeshTest.ServeGrpcAsync(MeshTest.Bare(), slow.Upstream);
        // A raw HTTP/2 call (not Grpc.Net.Client, which would enforce the deadline itself): only the mesh can end it.
        using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false });
        using var request = new HttpRequestMessage(HttpMethod.Post, $"http://127.0.0.1:{mesh.Port}/test.Echo/Echo")
        {
            Content = new ByteArrayContent(Frame("x")),
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
        };
        request.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/grpc");
        request.Headers.TryAddWithoutValidation("grpc-timeout", "300m");
        request.Headers.TryAddWithoutValidation("TE", "trailers");

        var sw = System.Diagnostics.Stopwatch.StartNew();
        using var response = await http.SendAsync(request);
        await response.Content.ReadAsByteArrayAsync();
        sw.Stop();

        // Whichever ends it first (the upstream, told the remaining deadline, or the mesh) answers DEADLINE_EXCEEDED.
        var status = response.Headers.TryGetValues("grpc-status", out var h) ? h.Single()
            : response.TrailingHeaders.TryGetValues("grpc-status", out var t) ? t.Single()
            : $"none: HTTP {(int)response.StatusCode}, headers {response.Headers}, trailers {response.TrailingHeaders}";
        Assert.Equal("4", status);
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(10), $"the call ended after {sw.Elapsed.TotalSeconds:0.0}s; its deadline was 300ms");
        var budget = Assert.Single(slow.Budgets);
        Assert.True(budget > TimeSpan.Zero && budget <= TimeSpan.FromMilliseconds(300), $"the upstream was given {budget.TotalMilliseconds:0} ms, expected at most the caller's 300 ms");
    }

    private static byte[] Frame(string message)
    {
        var payload = Encoding.UTF8.GetBytes(message);
        var frame = new byte[5 + payload.Length];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(1), (uint)payload.Length);
        payload.CopyTo(frame, 5);
        return frame;
    }

    /// <summary>A real gRPC server (Grpc.AspNetCore on Kestrel, HTTP/2 prior knowledge) serving <see cref="EchoService"/>.</summary>
    private sealed class GrpcUpstream : IAsyncDisposable
    {
        private LoopbackHost? _host;
        private int _calls;

        private GrpcUpstream(string name) => Name = name;

        public string Name { get; }

        public int Port => _host!.Port;

        public int Calls => Volatile.Read(ref _calls);

        public StatusCode? Fail { get; set; }

        public TimeSpan Delay { get; set; }

        /// <summary>The time each call had left when it arrived (from its propagated grpc-timeout).</summary>
        public System.Collections.Concurrent.ConcurrentQueue<TimeSpan> Budgets { get; } = new();

        public Upstream Upstream => new(Name, "127.0.0.1", Port, 1);

        public static async Task<GrpcUpstream> StartAsync(string name)
        {
            var self = new GrpcUpstream(name);
            self._host = await LoopbackHost.StartAsync(
                app =>
                {
                    app.UseRouting();
                    app.MapGrpcService<EchoService>();
                },
                HttpProtocols.Http2,
                services => services.AddRouting().AddGrpc().Services.AddSingleton(self));
            return self;
        }

        public async Task<string> HandleAsync(string request, ServerCallContext context)
        {
            Interlocked.Increment(ref _calls);
            if (context.Deadline != DateTime.MaxValue)
            {
                Budgets.Enqueue(context.Deadline - DateTime.UtcNow);
            }

            if (Delay > TimeSpan.Zero)
            {
                await Task.Delay(Delay, context.CancellationToken);
            }

            if (Fail is { } status)
            {
                throw new RpcException(new Status(status, $"{Name} fails on purpose"));
            }

            context.ResponseTrailers.Add("x-sum", "42");
            return $"{Name}:{request}";
        }

        public ValueTask DisposeAsync() => _host!.DisposeAsync();
    }

    /// <summary>A one-method gRPC service bound by hand, shaped as generated code is (no .proto code generation): strings as UTF-8 messages.</summary>
    [BindServiceMethod(typeof(EchoBase), nameof(BindService))]
    public abstract class EchoBase
    {
        public static void BindService(ServiceBinderBase binder, EchoBase? service) =>
            binder.AddMethod(EchoService.EchoMethod, service is null ? null : service.Echo);

        public abstract Task<string> Echo(string request, ServerCallContext context);
    }

    private sealed class EchoService(GrpcUpstream upstream) : EchoBase
    {
        private static readonly Marshaller<string> Utf8 = Marshallers.Create(s => Encoding.UTF8.GetBytes(s), b => Encoding.UTF8.GetString(b));

        public static readonly Method<string, string> EchoMethod = new(MethodType.Unary, "test.Echo", "Echo", Utf8, Utf8);

        public override Task<string> Echo(string request, ServerCallContext context) => upstream.HandleAsync(request, context);
    }
}
