using System.Collections.Concurrent;
using System.IO.Pipelines;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Threading.Channels;
using Berth.Core.Diagnostics;
using Berth.Core.Routing;
using Berth.Mesh.Observability;
using Microsoft.Extensions.Logging;

namespace Berth.Mesh.DataPlane;

/// <summary>Settings for a <see cref="DataPlaneServer"/>: the app's state folder and the mesh's own settings.</summary>
public sealed record DataPlaneServerOptions(string StateDirectory)
{
    /// <summary>The mesh's settings; its request observer is the server's (requests go to the control plane).</summary>
    public MeshHostOptions Mesh { get; init; } = new();

    /// <summary>How often changed in-flight counts are pushed: 50ms, the control plane's drain poll (<c>ReplicaDrain.PollInterval</c>).</summary>
    public TimeSpan InFlightPeriod { get; init; } = TimeSpan.FromMilliseconds(50);

    /// <summary>Finished requests are sent in batches at most this often: 100ms, so a trace shows up well within a dashboard refresh.</summary>
    public TimeSpan RequestBatchPeriod { get; init; } = TimeSpan.FromMilliseconds(100);

    /// <summary>Start as the standby: warm, listening on its channel, serving no routes (not even the saved snapshot) until
    /// a control plane sends it one, which makes it the active data plane.</summary>
    public bool Standby { get; init; }

    /// <summary>How long a new connection has to say hello with the token: 5s.</summary>
    public TimeSpan HelloTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Successful requests sent to the control plane per second, at most: 200 (every failed one is sent). Past that a
    /// sent record stands for the requests of its service not sent (<see cref="Observability.MeshRequestRecord.Weight"/>),
    /// so the dashboard's request rates stay whole while only a sample becomes spans, as Envoy and Istio sample traces
    /// rather than ship every request.
    /// </summary>
    public int SampledRequestsPerSecond { get; init; } = 200;
}

/// <summary>
/// The data plane process's side of the channel: a <see cref="MeshHost"/> that serves the last snapshot it applied
/// (from <see cref="DataPlaneFiles.RoutesFile"/> at start), and a Unix socket where one control plane at a time, once it
/// has shown the token, sends whole versioned route snapshots and gets back acks, in-flight counts, finished requests
/// and route status. When the control plane goes, nothing changes here; the next one connects and takes over.
/// </summary>
public sealed partial class DataPlaneServer : IMeshRequestObserver, IAsyncDisposable
{
    /// <summary>The hidden <c>berth</c> subcommand that runs a data plane.</summary>
    public const string Command = "__data-plane";

    /// <summary>Finished requests waiting to be sent: 8192; past that they are dropped (the control plane is gone or slow), never the traffic.</summary>
    public const int RequestQueue = 8192;

    private readonly DataPlaneServerOptions _options;
    private readonly string _token;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _apply = new(1, 1);
    private readonly CancellationTokenSource _stop = new();
    private readonly TaskCompletionSource _shutdownRequested = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Channel<MeshRequestRecord> _requests = Channel.CreateBounded<MeshRequestRecord>(
        new BoundedChannelOptions(RequestQueue) { FullMode = BoundedChannelFullMode.DropWrite, SingleReader = true });
    private readonly List<Task> _loops = [];
    private readonly ConcurrentDictionary<string, StrongBox<long>> _unsent = new(StringComparer.Ordinal);
    private long _sampleSecond;
    private int _sampled;
    private MeshHost _mesh = null!;
    private Socket _listener = null!;
    private Dictionary<(string Service, string Endpoint), ServiceRoute> _routes = [];
    private Dictionary<string, (PodRoute Pod, string Json)> _pods = new(StringComparer.Ordinal);
    private long _version;
    private readonly Lock _counting = new();
    private long _countSequence;
    private volatile bool _standby;
    private volatile bool _released;
    private readonly ConcurrentDictionary<(string Service, string Endpoint), Socket> _bound = new();
    private readonly ConcurrentDictionary<(string Service, string Endpoint), Task> _binding = new();
    private volatile Session? _session;
    private readonly ConcurrentBag<System.Net.IPEndPoint> _passed = [];
    private readonly ConcurrentBag<int> _passedInPods = [];
    private readonly ConcurrentDictionary<(string Pod, string Address, int Port), Socket> _podBound = new();
    private Task _passing = Task.CompletedTask;

    private DataPlaneServer(DataPlaneServerOptions options, string token)
    {
        _options = options;
        _token = token;
        _standby = options.Standby;
        _logger = options.Mesh.LoggerFactory.CreateLogger("Berth.DataPlane");
        SocketPath = DataPlaneFiles.SocketPath(options.StateDirectory, Environment.ProcessId);
    }

    /// <summary>The build of this program, so a control plane can tell an older data plane (an upgrade) from its own;
    /// <see cref="BuildVariable"/> overrides it (a test poses as an older Berth with it).</summary>
    public static string Build { get; } = Environment.GetEnvironmentVariable(BuildVariable) is { Length: > 0 } posed ? posed
        : typeof(DataPlaneServer).Assembly.ManifestModule.ModuleVersionId.ToString("N");

    /// <summary>Names the build instead of the assembly's module version id.</summary>
    public const string BuildVariable = "BERTH_DATA_PLANE_BUILD";

    /// <summary>Set to 0, the data plane does not pass its listening sockets in an upgrade (as a build before passing did):
    /// its successor binds each port the moment it is free instead. An escape hatch where SCM_RIGHTS is not permitted
    /// (a seccomp or LSM profile), and how the tests reach that path.</summary>
    public const string PassVariable = "BERTH_DATA_PLANE_PASS";

    private static bool PassingDisabled { get; } = Environment.GetEnvironmentVariable(PassVariable) == "0";

    /// <summary>How long a hand-over keeps trying to bind a port the previous data plane is releasing: 10s.</summary>
    public static readonly TimeSpan HandOverBindTimeout = TimeSpan.FromSeconds(10);

    public string SocketPath { get; }

    /// <summary>The mesh this process runs.</summary>
    public MeshHost Mesh => _mesh;

    /// <summary>The snapshot version being served.</summary>
    public long Version => Interlocked.Read(ref _version);

    /// <summary>Completes when a control plane asks this data plane to stop (<c>berth down</c>).</summary>
    public Task ShutdownRequested => _shutdownRequested.Task;

    /// <summary>Serves the last snapshot, listens on the channel and records itself in <see cref="DataPlaneFiles.InfoFile"/>.</summary>
    public static async Task<DataPlaneServer> StartAsync(DataPlaneServerOptions options, CancellationToken cancellationToken)
    {
        var token = DataPlaneFiles.ReadToken(options.StateDirectory)
            ?? throw new InvalidOperationException($"no channel token at {Path.Combine(options.StateDirectory, DataPlaneFiles.TokenFile)}: the data plane is started by the control plane ('berth up'), which makes it");
        var server = new DataPlaneServer(options, token);
        await server.StartMeshAsync(cancellationToken);
        if (!options.Standby)
        {
            await server.LoadSnapshotAsync(cancellationToken);
        }
        else
        {
            await WarmUpAsync(options.Mesh, cancellationToken);
        }

        server.Listen();
        server.WriteInfo(options.Standby ? DataPlaneFiles.StandbyFile : DataPlaneFiles.InfoFile);
        server._loops.Add(server.AcceptLoopAsync(server._stop.Token));
        server._loops.Add(server.InFlightLoopAsync(server._stop.Token));
        server._loops.Add(server.RequestLoopAsync(server._stop.Token));
        Log.Started(server._logger, options.Standby ? "standby" : "active", Environment.ProcessId, server.SocketPath, server._mesh.AdminAddress!.ToString(), server.Version, server._routes.Count);
        return server;
    }

    /// <summary>True until a standby is sent its first snapshot.</summary>
    public bool IsStandby => _standby;

    private void WriteInfo(string file)
    {
        var info = new DataPlaneInfo(Environment.ProcessId, SocketPath, _mesh.AdminAddress!.ToString(), Build, _options.Mesh.TimeProvider.GetUtcNow());
        DataPlaneFiles.WriteAtomically(Path.Combine(_options.StateDirectory, file), JsonSerializer.SerializeToUtf8Bytes(info, DataPlaneWire.Json));
    }

    /// <inheritdoc />
    public bool Wants(string service, int status, bool failed)
    {
        if (_session is null)
        {
            return false;
        }

        if (Failed(status, failed))
        {
            return true;
        }

        var time = _options.Mesh.TimeProvider;
        var second = time.GetTimestamp() / time.TimestampFrequency;
        if (second != Volatile.Read(ref _sampleSecond))
        {
            Volatile.Write(ref _sampleSecond, second);
            Volatile.Write(ref _sampled, 0);
        }

        if (Interlocked.Increment(ref _sampled) > _options.SampledRequestsPerSecond)
        {
            Interlocked.Increment(ref Unsent(service).Value);
            return false;
        }

        return true;
    }

    /// <summary>A request <see cref="Wants"/> took: every failure, and successes within the second's sample, which carry the
    /// weight of the ones not sent since.</summary>
    public void OnRequest(in MeshRequestRecord request)
    {
        if (_session is null)
        {
            return;
        }

        if (Failed(request.Status, request.Error is not null))
        {
            _requests.Writer.TryWrite(request);
            return;
        }

        var weight = 1 + Interlocked.Exchange(ref Unsent(request.Service).Value, 0);
        _requests.Writer.TryWrite(weight == 1 ? request : request with { Weight = (int)Math.Min(weight, int.MaxValue) });
    }

    private static bool Failed(int status, bool failed) => status is >= 500 or 0 || failed;

    private StrongBox<long> Unsent(string service) => _unsent.GetOrAdd(service, static _ => new StrongBox<long>());

    private async Task StartMeshAsync(CancellationToken cancellationToken)
    {
        // The admin port of the previous data plane when it is free, so a scraper keeps its target across restarts (a
        // standby starts beside the active one, so it takes any port).
        var previous = !_options.Standby && DataPlaneFiles.ReadInfo(_options.StateDirectory) is { } old && Uri.TryCreate(old.Admin, UriKind.Absolute, out var uri) ? uri.Port : 0;
        foreach (var port in previous == 0 ? [0] : new[] { previous, 0 })
        {
            var mesh = new MeshHost(_options.Mesh with
            {
                RequestObserver = this,
                AdminPort = port,
                BoundListener = r => _bound.TryRemove((r.Service, r.Endpoint.Name), out var s) ? s : null,
                BoundPodListener = TakePassedPodListener,
            });
            try
            {
                await mesh.StartAsync(cancellationToken);
                _mesh = mesh;
                return;
            }
            catch (MeshListenerException) when (port != 0)
            {
                await mesh.DisposeAsync();
            }
        }
    }

    private async Task LoadSnapshotAsync(CancellationToken cancellationToken)
    {
        var path = Path.Combine(_options.StateDirectory, DataPlaneFiles.RoutesFile);
        DataPlaneMessage? saved;
        try
        {
            saved = File.Exists(path) ? JsonSerializer.Deserialize<DataPlaneMessage>(await File.ReadAllBytesAsync(path, cancellationToken), DataPlaneWire.Json) : null;
        }
        catch (JsonException e)
        {
            Log.SnapshotUnreadable(_logger, path, e.Message);
            return;
        }

        if (saved is { Version: { } version, Routes: { } routes })
        {
            var (applied, errors) = await ApplyRoutesAsync(routes, cancellationToken);
            _routes = applied;
            errors.AddRange(await ApplyPodsAsync(saved.Pods ?? [], cancellationToken));
            foreach (var e in errors)
            {
                Log.RouteFailed(_logger, e.Service, e.Endpoint, e.Message);
            }

            _version = version;
        }
    }

    /// <summary>
    /// Sends a few requests through a throw-away mesh (its own metrics) to a throw-away loopback upstream, so the code of
    /// a listener and of the request path is compiled before a promotion rather than on the first requests after it
    /// (measured: the first request through a cold process took most of a second on a loaded machine).
    /// </summary>
    private static async Task WarmUpAsync(MeshHostOptions options, CancellationToken ct)
    {
        using var upstream = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        upstream.Bind(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, 0));
        upstream.Listen(8);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var answer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"u8.ToArray();
        var serving = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                using var c = await upstream.AcceptAsync(stop.Token);
                var buffer = new byte[4096];
                while (await c.ReceiveAsync(buffer, stop.Token) > 0)
                {
                    await c.SendAsync(answer, stop.Token);
                }
            }
        }, CancellationToken.None);
        var port = FreePort();
        await using (var mesh = new MeshHost(options with { RequestObserver = null, AdminPort = 0, LoggerFactory = Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance }))
        {
            var route = new ServiceRoute("warm-up", new Core.Model.Endpoint { Name = "http", Port = port }, Core.Model.MeshPolicy.Default,
                [new Upstream("warm-up", "127.0.0.1", ((System.Net.IPEndPoint)upstream.LocalEndPoint!).Port, 0)]);
            // The snapshot's JSON too: the first (reflection-built) read of a route costs a cold process ~100ms.
            var wire = DataPlaneWire.Encode(new DataPlaneMessage { Type = DataPlaneMessageTypes.Snapshot, Version = 1, Routes = [route], HandOver = true });
            var pipe = PipeReader.Create(new System.Buffers.ReadOnlySequence<byte>(wire));
            route = (await DataPlaneWire.ReadAsync(pipe, DataPlaneWire.MaxMessageBytes, ct))!.Routes![0];
            try
            {
                await mesh.UpdateAsync(route, ct);
                using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { Timeout = TimeSpan.FromSeconds(10) };
                for (var i = 0; i < 3; i++)
                {
                    await http.GetStringAsync(new Uri($"http://127.0.0.1:{port}/"), ct);
                }
            }
            catch (Exception e) when (e is HttpRequestException or MeshListenerException or TaskCanceledException && !ct.IsCancellationRequested)
            {
                // Only a warm-up: a promotion still works, just slower on its first requests.
            }
        }

        await stop.CancelAsync();
        upstream.Close();
        await serving.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
    }

    private static int FreePort()
    {
        using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        probe.Bind(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, 0));
        return ((System.Net.IPEndPoint)probe.LocalEndPoint!).Port;
    }

    private void Listen()
    {
        File.Delete(SocketPath);
        _listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        _listener.Bind(new UnixDomainSocketEndPoint(SocketPath));
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(SocketPath, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }

        _listener.Listen(16);
    }

    private async Task AcceptLoopAsync(CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await _listener.AcceptAsync(ct);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }

            _ = Task.Run(() => ServeAsync(socket, ct), CancellationToken.None);
        }
    }

    private async Task ServeAsync(Socket socket, CancellationToken ct)
    {
        var session = new Session(socket);
        try
        {
            DataPlaneMessage? hello;
            using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct))
            {
                timeout.CancelAfter(_options.HelloTimeout);
                hello = await DataPlaneWire.ReadAsync(session.Reader, DataPlaneWire.MaxHelloBytes, timeout.Token);
            }

            if (hello?.Type != DataPlaneMessageTypes.Hello || !DataPlaneWire.TokenMatches(hello.Token, _token))
            {
                Log.Refused(_logger);
                await session.SendAsync(new DataPlaneMessage { Type = DataPlaneMessageTypes.Error, Message = "bad token: the data plane accepts only the token in the app's state folder (data-plane-token)" }, ct);
                return;
            }

            // The newest connection gets the pushes (in-flight counts, requests): a new control plane that knows the token is
            // the successor of whatever was connected before (which, alive or not, is left to close on its own).
            Log.ControlPlaneConnected(_logger, Version);
            await session.SendAsync(new DataPlaneMessage
            {
                Type = DataPlaneMessageTypes.Welcome,
                Version = Version,
                Routes = [.. _routes.Values],
                Pods = [.. _pods.Values.Select(p => p.Pod)],
                Pid = Environment.ProcessId,
                Admin = _mesh.AdminAddress?.ToString(),
                Build = Build,
                Standby = _standby ? true : null,
            }, ct);
            // Pushes only after the welcome, which the client reads first (a push ahead of it made the client reconnect).
            _session = session;
            while (await DataPlaneWire.ReadAsync(session.Reader, DataPlaneWire.MaxMessageBytes, ct) is { } message)
            {
                var reply = await HandleAsync(message, ct);
                await session.SendAsync(reply, ct);
                if (message.Type == DataPlaneMessageTypes.Shutdown)
                {
                    Log.ShuttingDown(_logger, _routes.Count);
                    _shutdownRequested.TrySetResult();
                }
                else if (message.Type == DataPlaneMessageTypes.Release)
                {
                    Log.Releasing(_logger, _routes.Count);
                    _released = true;
                    _shutdownRequested.TrySetResult();
                }
            }
        }
        catch (Exception e) when (e is IOException or SocketException or InvalidDataException or OperationCanceledException or ObjectDisposedException)
        {
            if (!ct.IsCancellationRequested)
            {
                Log.SessionEnded(_logger, e.Message);
            }
        }
        finally
        {
            if (Interlocked.CompareExchange(ref _session, null, session) == session)
            {
                Log.ControlPlaneGone(_logger, Version);
            }

            session.Close();
        }
    }

    /// <summary>Answers one message from an authenticated control plane.</summary>
    internal async Task<DataPlaneMessage> HandleAsync(DataPlaneMessage message, CancellationToken ct)
    {
        switch (message.Type)
        {
            case DataPlaneMessageTypes.Snapshot:
                return await ApplySnapshotAsync(message, ct);
            case DataPlaneMessageTypes.Pass when message.Pid is { } successor && !PassingDisabled:
                return OfferListeners(message, successor);
            case DataPlaneMessageTypes.Pass:
                return new DataPlaneMessage { Type = DataPlaneMessageTypes.Error, Id = message.Id, Message = $"this data plane does not pass its listening sockets ({PassVariable}=0)" };
            case DataPlaneMessageTypes.Prepare:
                var taken = message is { Path: { } path, Pid: { } from } ? await TakeListenersAsync(path, from) : 0;
                foreach (var r in message.Routes ?? [])
                {
                    if (!_bound.ContainsKey((r.Service, r.Endpoint.Name)))
                    {
                        // Not passed (an older data plane, or its socket was not found there): bind it the moment it is free.
                        _binding.TryAdd((r.Service, r.Endpoint.Name), BindAheadAsync(r, _stop.Token));
                    }
                }

                return new DataPlaneMessage { Type = DataPlaneMessageTypes.Ack, Id = message.Id, Message = $"took {taken} listening sockets over" };
            case DataPlaneMessageTypes.Status:
                return new DataPlaneMessage { Type = DataPlaneMessageTypes.StatusReply, Id = message.Id, Status = await _mesh.RoutesAsync(ct) };
            case DataPlaneMessageTypes.Release:
                LetGoOfPassedListeners();
                return new DataPlaneMessage { Type = DataPlaneMessageTypes.Bye, Id = message.Id };
            case DataPlaneMessageTypes.Shutdown:
                return new DataPlaneMessage { Type = DataPlaneMessageTypes.Bye, Id = message.Id };
            default:
                return new DataPlaneMessage { Type = DataPlaneMessageTypes.Error, Id = message.Id, Message = $"unknown message type '{message.Type}'" };
        }
    }

    private async Task<DataPlaneMessage> ApplySnapshotAsync(DataPlaneMessage snapshot, CancellationToken ct)
    {
        if (snapshot is not { Version: { } version, Routes: { } routes })
        {
            return new DataPlaneMessage { Type = DataPlaneMessageTypes.Nack, Id = snapshot.Id, Version = snapshot.Version, Message = "a snapshot needs a version and routes" };
        }

        await _apply.WaitAsync(ct);
        try
        {
            if (version <= _version)
            {
                // As an xDS client NACKs: a snapshot not newer than the one served is never applied (a late or replayed one).
                Log.StaleSnapshot(_logger, version, _version);
                return new DataPlaneMessage { Type = DataPlaneMessageTypes.Nack, Id = snapshot.Id, Version = version, Message = $"stale snapshot: version {version} is not newer than version {_version}, which is served" };
            }

            var (applied, errors) = await ApplyRoutesAsync(routes, ct, snapshot.HandOver == true);
            _routes = applied;
            errors.AddRange(await ApplyPodsAsync(snapshot.Pods ?? [], ct));
            foreach (var unused in _podBound.Keys.ToList())
            {
                if (_podBound.TryRemove(unused, out var socket))
                {
                    socket.Dispose(); // passed for a pod this snapshot no longer has
                }
            }

            Interlocked.Exchange(ref _version, version);
            var saved = DataPlaneWire.Encode(new DataPlaneMessage { Type = DataPlaneMessageTypes.Snapshot, Version = version, Routes = routes, Pods = snapshot.Pods });
            DataPlaneFiles.WriteAtomically(Path.Combine(_options.StateDirectory, DataPlaneFiles.RoutesFile), saved);
            if (_standby)
            {
                // Promoted: this is the active data plane now, the one the next control plane adopts.
                _standby = false;
                WriteInfo(DataPlaneFiles.InfoFile);
                DeleteInfoIfOurs(DataPlaneFiles.StandbyFile);
                Log.Promoted(_logger, version);
            }

            Log.Applied(_logger, version, routes.Count, errors.Count);
            StartupTrace.Mark($"data plane: applied snapshot {version}");
            var (sequence, inFlight) = CountInFlight();
            return new DataPlaneMessage { Type = DataPlaneMessageTypes.Ack, Id = snapshot.Id, Version = version, Errors = errors, InFlight = inFlight, InFlightSequence = sequence };
        }
        finally
        {
            _apply.Release();
        }
    }

    /// <summary>Makes the mesh serve exactly <paramref name="routes"/>: listeners no longer named are closed (after their
    /// in-flight requests), the rest added or updated in place (health, ejection and breaker state kept).</summary>
    private async Task<(Dictionary<(string, string), ServiceRoute> Routes, List<RouteError> Errors)> ApplyRoutesAsync(IReadOnlyList<ServiceRoute> routes, CancellationToken ct, bool handOver = false)
    {
        var next = new Dictionary<(string, string), ServiceRoute>();
        foreach (var r in routes)
        {
            next[(r.Service, r.Endpoint.Name)] = r;
        }

        foreach (var gone in _routes.Keys.Where(k => !next.ContainsKey(k)).ToList())
        {
            await _mesh.RemoveAsync(gone.Service, gone.Endpoint, ct);
        }

        var errors = new List<RouteError>();
        foreach (var r in next.Values)
        {
            try
            {
                if (_binding.TryRemove((r.Service, r.Endpoint.Name), out var binding))
                {
                    await binding;
                }
                else if (handOver && !_routes.ContainsKey((r.Service, r.Endpoint.Name)) && !_bound.ContainsKey((r.Service, r.Endpoint.Name)))
                {
                    await BindAheadAsync(r, ct);
                }

                await _mesh.UpdateAsync(r, ct);
            }
            catch (Exception e) when (e is MeshListenerException or ArgumentException or InvalidOperationException)
            {
                errors.Add(new RouteError(r.Service, r.Endpoint.Name, e.Message));
            }
            finally
            {
                if (_bound.TryRemove((r.Service, r.Endpoint.Name), out var unused))
                {
                    unused.Dispose();
                }
            }
        }

        return (next, errors);
    }

    /// <summary>
    /// A hand-over: the previous data plane is closing this port right now. Binds it the moment it is free — a bare
    /// socket tried again and again on a thread of its own (microseconds a try; a timer-paced retry was measured waking
    /// 119ms late on the loaded machine, refusing connections meanwhile) — so connections wait in its backlog while the
    /// listener starts on it instead of being refused. Bounded by <see cref="HandOverBindTimeout"/>.
    /// </summary>
    private Task BindAheadAsync(ServiceRoute route, CancellationToken ct) => Task.Factory.StartNew(() =>
    {
        if (!System.Net.IPAddress.TryParse(route.Endpoint.HostIp, out var ip))
        {
            return; // the mesh reports the bad address
        }

        var time = _options.Mesh.TimeProvider;
        var started = time.GetTimestamp();
        var refused = 0;
        while (!ct.IsCancellationRequested)
        {
            try
            {
                _bound[(route.Service, route.Endpoint.Name)] = Tcp.TcpProxy.Listen(new System.Net.IPEndPoint(ip, route.StablePort));
                Log.TookOver(_logger, route.Service, route.Endpoint.Name, time.GetElapsedTime(started).TotalMilliseconds, refused);
                return;
            }
            catch (SocketException) when (time.GetElapsedTime(started) < HandOverBindTimeout)
            {
                refused++;
                Thread.Yield();
            }
            catch (SocketException)
            {
                return; // still taken after the timeout: the mesh's own bind reports it
            }
        }
    }, ct, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    /// <summary>
    /// An upgrade's hand-over, on the old data plane: listens on <see cref="DataPlaneFiles.PassSocketPath"/> (0600) for the
    /// one connection of process <paramref name="successor"/> (its pid checked with SO_PEERCRED) and sends it every route's
    /// listening socket (SCM_RIGHTS), so the ports never close. Bounded by <see cref="HandOverBindTimeout"/>.
    /// </summary>
    private DataPlaneMessage OfferListeners(DataPlaneMessage message, int successor)
    {
        var path = DataPlaneFiles.PassSocketPath(_options.StateDirectory, Environment.ProcessId);
        var listener = new Socket(AddressFamily.Unix, SocketType.Seqpacket, ProtocolType.Unspecified);
        try
        {
            File.Delete(path);
            listener.Bind(new UnixDomainSocketEndPoint(path));
            if (!OperatingSystem.IsWindows())
            {
                File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            }

            listener.Listen(1);
        }
        catch (Exception e) when (e is SocketException or IOException or UnauthorizedAccessException)
        {
            listener.Dispose();
            return new DataPlaneMessage { Type = DataPlaneMessageTypes.Error, Id = message.Id, Message = $"cannot offer the listening sockets at {path}: {e.Message}" };
        }

        var routes = _routes.Values.ToList();
        _passing = PassListenersAsync(listener, path, successor, routes, _stop.Token);
        return new DataPlaneMessage { Type = DataPlaneMessageTypes.Ack, Id = message.Id, Path = path };
    }

    private async Task PassListenersAsync(Socket listener, string path, int successor, IReadOnlyList<ServiceRoute> routes, CancellationToken ct)
    {
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(HandOverBindTimeout);
            using var channel = await listener.AcceptAsync(timeout.Token);
            if (ListenerPassing.PeerPid(channel) is var peer && peer != successor)
            {
                Log.PassFailed(_logger, successor, $"the connection came from process {peer}, not {successor}; nothing passed");
                return;
            }

            var inPods = await _mesh.PodListeningSocketsAsync(ct);
            var passed = await Task.Factory.StartNew(() =>
            {
                var count = 0;
                foreach (var (pod, address, port, socket) in inPods)
                {
                    ListenerPassing.Send(channel, $"pod\n{pod}\n{address}\n{port}", (int)socket.Handle, HandOverBindTimeout);
                    _passedInPods.Add((int)socket.Handle);
                    count++;
                }

                foreach (var r in routes)
                {
                    if (System.Net.IPAddress.TryParse(r.Endpoint.HostIp, out var ip) && new System.Net.IPEndPoint(ip, r.StablePort) is var endpoint
                        && ListenerPassing.FindListening(endpoint) is { } fd)
                    {
                        ListenerPassing.Send(channel, $"{r.Service}\n{r.Endpoint.Name}", fd, HandOverBindTimeout);
                        _passed.Add(endpoint);
                        count++;
                    }
                }

                ListenerPassing.Send(channel, ListenerPassing.End, -1, HandOverBindTimeout);
                return count;
            }, ct, TaskCreationOptions.LongRunning, TaskScheduler.Default);
            Log.Passed(_logger, passed, successor);
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or IOException)
        {
            Log.PassFailed(_logger, successor, e.Message);
        }
        finally
        {
            listener.Dispose();
            File.Delete(path);
        }
    }

    /// <summary>The new data plane's side of <see cref="OfferListeners"/>: takes the listening sockets of data plane
    /// <paramref name="from"/> into <c>_bound</c>, where its listeners start on them. Returns how many came; a failure is
    /// logged and leaves the rest to the bind-ahead.</summary>
    private Task<int> TakeListenersAsync(string path, int from) => Task.Factory.StartNew(() =>
    {
        var taken = 0;
        var time = _options.Mesh.TimeProvider;
        var started = time.GetTimestamp();
        try
        {
            using var channel = new Socket(AddressFamily.Unix, SocketType.Seqpacket, ProtocolType.Unspecified);
            channel.Connect(new UnixDomainSocketEndPoint(path));
            if (ListenerPassing.PeerPid(channel) is var peer && peer != from)
            {
                throw new IOException($"{path} is served by process {peer}, not by data plane {from}");
            }

            while (ListenerPassing.Receive(channel, HandOverBindTimeout) is { } record && record.Text != ListenerPassing.End)
            {
                var name = record.Text.Split('\n');
                if (record.Fd >= 0 && name is ["pod", var pod, var address, var portText] && int.TryParse(portText, out var port))
                {
                    var passed = new Socket(new SafeSocketHandle(record.Fd, ownsHandle: true));
                    if (_podBound.TryRemove((pod, address, port), out var earlier))
                    {
                        earlier.Dispose();
                    }

                    _podBound[(pod, address, port)] = passed;
                    taken++;
                    continue;
                }

                if (record.Fd < 0 || name.Length != 2)
                {
                    if (record.Fd >= 0)
                    {
                        new SafeSocketHandle(record.Fd, ownsHandle: true).Dispose();
                    }

                    continue;
                }

                var socket = new Socket(new SafeSocketHandle(record.Fd, ownsHandle: true));
                if (_bound.TryRemove((name[0], name[1]), out var before))
                {
                    before.Dispose();
                }

                _bound[(name[0], name[1])] = socket;
                taken++;
            }

            Log.TookListeners(_logger, taken, from, time.GetElapsedTime(started).TotalMilliseconds);
        }
        catch (Exception e) when (e is SocketException or IOException or TimeoutException)
        {
            Log.PassFailed(_logger, from, e.Message);
        }

        return taken;
    }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    /// <summary>A pod listener passed by the previous data plane, if its socket is in <paramref name="pod"/>'s namespace
    /// (the pod was not made again since).</summary>
    private Socket? TakePassedPodListener(PodNetwork pod, string address, int port)
    {
        if (!_podBound.TryRemove((pod.PodId, address, port), out var socket))
        {
            return null;
        }

        if (pod.NamespaceInode != 0 && ListenerPassing.SocketNamespaceInode((int)socket.Handle) is { } ns && ns != pod.NamespaceInode)
        {
            socket.Dispose();
            return null;
        }

        return socket;
    }

    /// <summary>On release after passing: this process's descriptors of the passed sockets are pointed elsewhere before its
    /// listeners stop, so the stop closes nothing the successor now serves on.</summary>
    private void LetGoOfPassedListeners()
    {
        // A pod's listeners are found by the descriptors that were passed: they stay open until the listeners stop, and the
        // same address is in every pod, so /proc/self/fd could not tell them apart.
        var fds = _passed.Select(ListenerPassing.FindListening).OfType<int>().Concat(_passedInPods).Distinct().ToList();
        if (fds.Count > 0)
        {
            ListenerPassing.Detach(fds);
            Log.LetGo(_logger, fds.Count);
        }
    }

    /// <summary>Makes the mesh keep exactly <paramref name="pods"/>' outbound listeners: a pod no longer named is closed,
    /// a new or changed one (compared by its JSON) opened or replaced, an unchanged one left alone.</summary>
    private async Task<List<RouteError>> ApplyPodsAsync(IReadOnlyList<PodRoute> pods, CancellationToken ct)
    {
        var errors = new List<RouteError>();
        var next = new Dictionary<string, (PodRoute Pod, string Json)>(StringComparer.Ordinal);
        foreach (var p in pods)
        {
            next[p.Pod.PodId] = (p, JsonSerializer.Serialize(p, DataPlaneWire.Json));
        }

        foreach (var gone in _pods.Keys.Where(k => !next.ContainsKey(k)).ToList())
        {
            await _mesh.RemovePodAsync(gone, ct);
        }

        foreach (var (id, p) in next)
        {
            if (_pods.TryGetValue(id, out var old) && old.Json == p.Json)
            {
                continue;
            }

            try
            {
                await _mesh.UpdatePodAsync(p.Pod, ct);
            }
            catch (Exception e) when (e is MeshListenerException or IOException or SocketException or InvalidOperationException or ArgumentException)
            {
                errors.Add(new RouteError(id, "pod", e.Message));
                next[id] = (p.Pod, ""); // not served: tried again with the next snapshot
            }
        }

        _pods = next;
        return errors;
    }

    /// <summary>The in-flight counts with the order they were taken in: the periodic push and a snapshot's ack count on
    /// different tasks, and the one counted first may be sent last; the control plane keeps the newest, so a stale zero
    /// never lets it stop a replica a request is still on.</summary>
    private (long Sequence, IReadOnlyList<InFlightCount> Counts) CountInFlight()
    {
        lock (_counting)
        {
            return (++_countSequence, _mesh.InFlightCounts());
        }
    }

    private async Task InFlightLoopAsync(CancellationToken ct)
    {
        IReadOnlyList<InFlightCount> sent = [];
        Session? sentTo = null;
        using var timer = new PeriodicTimer(_options.InFlightPeriod, _options.Mesh.TimeProvider);
        try
        {
            while (await timer.WaitForNextTickAsync(ct))
            {
                var session = _session;
                if (session is null)
                {
                    continue;
                }

                var (sequence, counts) = CountInFlight();
                if (session == sentTo && counts.SequenceEqual(sent))
                {
                    continue;
                }

                await session.SendAsync(new DataPlaneMessage { Type = DataPlaneMessageTypes.InFlight, InFlight = counts, InFlightSequence = sequence }, ct);
                (sent, sentTo) = (counts, session);
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
    }

    private async Task RequestLoopAsync(CancellationToken ct)
    {
        var batch = new List<MeshRequestRecord>();
        try
        {
            while (await _requests.Reader.WaitToReadAsync(ct))
            {
                await Task.Delay(_options.RequestBatchPeriod, _options.Mesh.TimeProvider, ct);
                while (batch.Count < 4096 && _requests.Reader.TryRead(out var r))
                {
                    batch.Add(r);
                }

                if (_session is { } session)
                {
                    await session.SendAsync(new DataPlaneMessage { Type = DataPlaneMessageTypes.Requests, Requests = [.. batch] }, ct);
                }

                batch.Clear();
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener?.Dispose();
        _session?.Close();
        await Task.WhenAll([.. _loops, _passing]).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        File.Delete(SocketPath);
        if (_mesh is not null)
        {
            await _mesh.DisposeAsync();
        }

        DeleteInfoIfOurs(DataPlaneFiles.InfoFile);
        DeleteInfoIfOurs(DataPlaneFiles.StandbyFile);

        if (_shutdownRequested.Task.IsCompleted && !_released)
        {
            // Stopped by 'berth down': nothing of this data plane may outlive it.
            File.Delete(Path.Combine(_options.StateDirectory, DataPlaneFiles.RoutesFile));
        }

        _apply.Dispose();
        _stop.Dispose();
    }

    private void DeleteInfoIfOurs(string file)
    {
        if (DataPlaneFiles.ReadInfo(_options.StateDirectory, file)?.Pid == Environment.ProcessId)
        {
            File.Delete(Path.Combine(_options.StateDirectory, file));
        }
    }

    /// <summary>One connection: reads through a pipe, writes one whole message at a time.</summary>
    private sealed class Session(Socket socket)
    {
        private readonly NetworkStream _stream = new(socket, ownsSocket: true);
        private readonly SemaphoreSlim _write = new(1, 1);
        private PipeReader? _reader;

        public PipeReader Reader => _reader ??= PipeReader.Create(_stream);

        public async Task SendAsync(DataPlaneMessage message, CancellationToken ct)
        {
            var bytes = DataPlaneWire.Encode(message);
            await _write.WaitAsync(ct);
            try
            {
                await _stream.WriteAsync(bytes, ct);
            }
            catch (Exception e) when (e is IOException or ObjectDisposedException or SocketException)
            {
                Close();
            }
            finally
            {
                _write.Release();
            }
        }

        public void Close() => _stream.Dispose();
    }

    private static partial class Log
    {
        [LoggerMessage(6101, LogLevel.Information, "Data plane {Pid} ({Role}) serving snapshot version {Version} ({Routes} routes); channel {Socket}, admin {Admin}")]
        public static partial void Started(ILogger logger, string role, int pid, string socket, string admin, long version, int routes);

        [LoggerMessage(6102, LogLevel.Information, "Control plane connected (serving snapshot version {Version})")]
        public static partial void ControlPlaneConnected(ILogger logger, long version);

        [LoggerMessage(6103, LogLevel.Warning, "Control plane gone; still serving snapshot version {Version}")]
        public static partial void ControlPlaneGone(ILogger logger, long version);

        [LoggerMessage(6104, LogLevel.Warning, "Refused a channel connection without the right token")]
        public static partial void Refused(ILogger logger);

        [LoggerMessage(6105, LogLevel.Warning, "Refused stale snapshot version {Version}; serving version {Served}")]
        public static partial void StaleSnapshot(ILogger logger, long version, long served);

        [LoggerMessage(6106, LogLevel.Information, "Applied snapshot version {Version}: {Routes} routes, {Errors} refused")]
        public static partial void Applied(ILogger logger, long version, int routes, int errors);

        [LoggerMessage(6107, LogLevel.Warning, "Route {Service}.{Endpoint} not served: {Reason}")]
        public static partial void RouteFailed(ILogger logger, string service, string endpoint, string reason);

        [LoggerMessage(6108, LogLevel.Warning, "The saved snapshot {Path} is unreadable ({Reason}); starting with no routes")]
        public static partial void SnapshotUnreadable(ILogger logger, string path, string reason);

        [LoggerMessage(6110, LogLevel.Information, "Stopping at the control plane's request (berth down) with {Routes} routes left")]
        public static partial void ShuttingDown(ILogger logger, int routes);

        [LoggerMessage(6111, LogLevel.Warning, "Standby promoted: now the active data plane, serving snapshot version {Version}")]
        public static partial void Promoted(ILogger logger, long version);

        [LoggerMessage(6112, LogLevel.Information, "Releasing the listeners to a newer data plane (hand-over) with {Routes} routes")]
        public static partial void Releasing(ILogger logger, int routes);

        [LoggerMessage(6113, LogLevel.Information, "Took the port of {Service}.{Endpoint} over {Milliseconds:0.0} ms after the hand-over began ({Refused} binds refused while the previous data plane still held it)")]
        public static partial void TookOver(ILogger logger, string service, string endpoint, double milliseconds, int refused);

        [LoggerMessage(6114, LogLevel.Information, "Passed {Count} listening sockets to data plane {Successor} (SCM_RIGHTS): the ports stay open")]
        public static partial void Passed(ILogger logger, int count, int successor);

        [LoggerMessage(6115, LogLevel.Warning, "Passing listening sockets between this data plane and {Other} failed: {Reason}; the ports not passed are bound again after the release")]
        public static partial void PassFailed(ILogger logger, int other, string reason);

        [LoggerMessage(6116, LogLevel.Information, "Took {Count} listening sockets over from data plane {From} in {Milliseconds:0.0} ms (passed, never closed)")]
        public static partial void TookListeners(ILogger logger, int count, int from, double milliseconds);

        [LoggerMessage(6117, LogLevel.Information, "Let go of {Count} passed listening sockets before stopping the listeners")]
        public static partial void LetGo(ILogger logger, int count);

        [LoggerMessage(6109, LogLevel.Information, "Channel session ended: {Reason}")]
        public static partial void SessionEnded(ILogger logger, string reason);
    }
}
