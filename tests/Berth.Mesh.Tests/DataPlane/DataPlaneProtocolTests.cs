using System.Collections.Immutable;
using System.IO.Pipelines;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using Berth.Mesh.DataPlane;

namespace Berth.Mesh.Tests.DataPlane;

/// <summary>The channel's JSON comes from source-generated metadata (issue #21: reflection on first use put ~200 ms on
/// every control plane's start); an older or newer data plane across an upgrade reads the same text, so the text must be
/// what reflection wrote, field for field.</summary>
public sealed class DataPlaneProtocolTests
{
    /// <summary>The options as they were before the source-generated metadata: reflection only.</summary>
    private static readonly JsonSerializerOptions Reflection = CreateReflection();

    private static JsonSerializerOptions CreateReflection()
    {
        var o = new JsonSerializerOptions(JsonSerializerDefaults.Web)
        {
            DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
            TypeInfoResolver = new DefaultJsonTypeInfoResolver(),
        };
        o.Converters.Add(new JsonStringEnumConverter(JsonNamingPolicy.KebabCaseLower));
        o.MakeReadOnly();
        return o;
    }

    public static TheoryData<string> Messages => new() { "snapshot", "welcome", "requests", "status" };

    [Theory]
    [MemberData(nameof(Messages))]
    public void Encode_EveryKindOfMessage_SameTextAsReflectionAndReadsBackEqual(string kind)
    {
        var message = Sample(kind);

        var generated = JsonSerializer.Serialize(message, DataPlaneWire.Json);
        var reflected = JsonSerializer.Serialize(message, Reflection);

        Assert.Equal(reflected, generated);
        if (message.Routes is not null)
        {
            Assert.Contains("\"loadBalancing\":\"least-request\"", generated, StringComparison.Ordinal); // kebab-case enums kept
        }

        var back = JsonSerializer.Deserialize<DataPlaneMessage>(generated, DataPlaneWire.Json)!;
        Assert.Equal(reflected, JsonSerializer.Serialize(back, Reflection));
        // Written from the generated metadata, not by reflection built on first use.
        Assert.IsAssignableFrom<JsonSerializerContext>(DataPlaneWire.Json.GetTypeInfo(typeof(DataPlaneMessage)).OriginatingResolver);
    }

    [Fact]
    public void Info_WrittenBySourceGeneratedMetadata_SameTextAsReflection()
    {
        var info = new DataPlaneInfo(4242, "/run/x/dp.sock", "http://127.0.0.1:9901/", "build-1", new DateTimeOffset(2026, 12, 7, 16, 0, 0, TimeSpan.Zero));

        Assert.Equal(JsonSerializer.Serialize(info, Reflection), JsonSerializer.Serialize(info, DataPlaneWire.Json));
    }

    [Fact]
    public async Task Connect_DataPlanePushesInFlightCountsBeforeItsWelcome_ClientTakesTheWelcomeOnTheFirstChannel()
    {
        // A data plane of an older build set the channel as the one to push to before it sent the welcome, so an in-flight
        // push could come first; the client took it for a refusal and reconnected (on every start, seen in the start trace).
        await using var plane = FakeDataPlane.Start(async channel =>
        {
            await channel.SendAsync(DataPlaneWire.Encode(new DataPlaneMessage { Type = DataPlaneMessageTypes.InFlight, InFlight = [new InFlightCount("api", "api-1", 2)] }));
            await channel.SendAsync(FakeDataPlane.Welcome);
        });

        // No launcher: a refused first channel would end in the connect timeout's error (the fake is not a data plane process).
        await using var client = await DataPlaneClient.ConnectAsync(new DataPlaneClientOptions(plane.State) { ConnectTimeout = TimeSpan.FromSeconds(10) }, plane.Stop);

        Assert.Equal(Environment.ProcessId, client.Pid);
        Assert.Equal(1, plane.Accepted);
        Assert.Equal([plane.Token], plane.Hellos);
    }

    [Fact]
    public async Task InFlight_CountsArriveOutOfTheOrderTheyWereTaken_ClientKeepsTheNewest()
    {
        // The periodic push and a snapshot's ack count on different tasks: counts taken before a replica's last request
        // began could arrive after newer ones, and a stale zero let the control plane stop a replica a request was on (a 502
        // in a CI run's single-replica rollout).
        var observed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var plane = FakeDataPlane.Start(async channel =>
        {
            await channel.SendAsync(FakeDataPlane.Welcome);
            await channel.SendAsync(DataPlaneWire.Encode(new DataPlaneMessage { Type = DataPlaneMessageTypes.InFlight, InFlight = [new InFlightCount("api", "api-1", 1)], InFlightSequence = 5 }));
            await channel.SendAsync(DataPlaneWire.Encode(new DataPlaneMessage { Type = DataPlaneMessageTypes.InFlight, InFlight = [], InFlightSequence = 4 }));
            await channel.SendAsync(DataPlaneWire.Encode(new DataPlaneMessage { Type = DataPlaneMessageTypes.Requests, Requests = [Sample("requests").Requests![0]] }));
        });

        await using var client = await DataPlaneClient.ConnectAsync(
            new DataPlaneClientOptions(plane.State) { ConnectTimeout = TimeSpan.FromSeconds(10), RequestObserver = new Observer(observed) }, plane.Stop);
        await observed.Task.WaitAsync(TimeSpan.FromSeconds(30)); // every message before it was handled, in order

        Assert.Equal(1, client.InFlight("api", "api-1"));
    }

    private sealed class Observer(TaskCompletionSource seen) : IMeshRequestObserver
    {
        public void OnRequest(in MeshRequestRecord request) => seen.TrySetResult();
    }

    /// <summary>A Unix socket that answers the data plane channel's hello as <paramref name="serve"/> says, in a temporary state folder.</summary>
    private sealed class FakeDataPlane : IAsyncDisposable
    {
        private readonly Socket _listener = new(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        private readonly CancellationTokenSource _stop = new(TimeSpan.FromSeconds(60));
        private readonly List<string?> _hellos = [];
        private int _accepted;
        private Task _serve = Task.CompletedTask;

        public static readonly byte[] Welcome = DataPlaneWire.Encode(new DataPlaneMessage
        {
            Type = DataPlaneMessageTypes.Welcome, Version = 4, Routes = [], Pods = [], Pid = Environment.ProcessId, Admin = "http://127.0.0.1:1/", Build = DataPlaneServer.Build,
        });

        public string State { get; } = Directory.CreateTempSubdirectory("berth-dp-fake-").FullName;

        public string Token { get; private set; } = "";

        public CancellationToken Stop => _stop.Token;

        public int Accepted => Volatile.Read(ref _accepted);

        public IReadOnlyList<string?> Hellos
        {
            get
            {
                lock (_hellos)
                {
                    return [.. _hellos];
                }
            }
        }

        public static FakeDataPlane Start(Func<Socket, Task> serve)
        {
            var plane = new FakeDataPlane();
            plane.Token = DataPlaneFiles.EnsureToken(plane.State);
            var socketPath = Path.Combine(plane.State, "fake.sock");
            plane._listener.Bind(new UnixDomainSocketEndPoint(socketPath));
            plane._listener.Listen(4);
            var info = new DataPlaneInfo(Environment.ProcessId, socketPath, "http://127.0.0.1:1/", DataPlaneServer.Build, DateTimeOffset.UtcNow);
            DataPlaneFiles.WriteAtomically(Path.Combine(plane.State, DataPlaneFiles.InfoFile), JsonSerializer.SerializeToUtf8Bytes(info, DataPlaneWire.Json));
            plane._serve = Task.Run(async () =>
            {
                while (!plane._stop.IsCancellationRequested)
                {
                    var channel = await plane._listener.AcceptAsync(plane._stop.Token);
                    Interlocked.Increment(ref plane._accepted);
                    var reader = PipeReader.Create(new NetworkStream(channel, ownsSocket: true));
                    var hello = await DataPlaneWire.ReadAsync(reader, DataPlaneWire.MaxHelloBytes, plane._stop.Token);
                    lock (plane._hellos)
                    {
                        plane._hellos.Add(hello?.Token);
                    }

                    await serve(channel);
                }
            });
            return plane;
        }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            await _serve.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            _listener.Dispose();
            _stop.Dispose();
            Directory.Delete(State, recursive: true);
        }
    }

    private static DataPlaneMessage Sample(string kind)
    {
        var pod = new PodNetwork("web-1", "/proc/4242/ns/net") { NamespaceInode = 4026532000, SocketHelper = "/run/x/helper.sock" };
        var upstream = new Upstream("api-1", "127.0.0.1", 8080, 3)
        {
            Labels = ImmutableSortedDictionary<string, string>.Empty.Add("version", "v2"),
            Pod = pod,
        };
        var policy = MeshPolicy.Default with
        {
            HashOn = "header:X-User",
            PerTryTimeout = TimeSpan.FromMilliseconds(1500),
            Split = [new TrafficSplit { Version = "3", Weight = 90 }, new TrafficSplit { Version = "version=v2", Weight = 10, HeaderName = "X-Canary", HeaderValue = "true" }],
            AccessLog = true,
        };
        var route = new ServiceRoute("api", new Endpoint { Name = "http", Port = 7200 }, policy, [upstream])
        {
            Readiness = new Probe { Kind = ProbeKind.Http, Path = "/healthz", Endpoint = "http" },
        };
        var pods = new PodRoute(pod, [new OutboundListener("api", "http", "127.77.0.2", 8080) { ForwardTo = "127.0.0.1:7200" }]) { HostGateway = true };
        return kind switch
        {
            "snapshot" => new DataPlaneMessage { Type = DataPlaneMessageTypes.Snapshot, Id = 7, Version = 12, Routes = [route, MeshTest.TcpRoute(7400, MeshTest.Bare())], Pods = [pods] },
            "welcome" => new DataPlaneMessage
            {
                Type = DataPlaneMessageTypes.Welcome, Version = 12, Routes = [route], Pods = [pods], Pid = 4242, Admin = "http://127.0.0.1:9901/", Build = "b1", Standby = true,
            },
            "requests" => new DataPlaneMessage
            {
                Type = DataPlaneMessageTypes.Requests,
                Requests = [new MeshRequestRecord("api", "http", "GET", "/orders", 200, "api-1", 2, new DateTimeOffset(2026, 12, 7, 16, 0, 0, TimeSpan.Zero), TimeSpan.FromMilliseconds(3.5), "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", null, Weight: 5)],
                InFlight = [new InFlightCount("api", "api-1", 3)],
            },
            _ => new DataPlaneMessage
            {
                Type = DataPlaneMessageTypes.Status,
                Id = 9,
                Status = [new RouteStatus("api", "http", "http", 7200, "closed", [new UpstreamStatus("api-1", "127.0.0.1:8080", 3, false, true, "closed", 1)])],
                Errors = [new RouteError("api", "http", "port 7200 is taken")],
            },
        };
    }
}
