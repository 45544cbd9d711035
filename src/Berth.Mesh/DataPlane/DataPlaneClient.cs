using System.Collections.Concurrent;
using System.IO.Pipelines;
using System.Net.Sockets;
using Berth.Core.Diagnostics;
using Berth.Core.Routing;
using Berth.Mesh.Observability;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Berth.Mesh.DataPlane;

/// <summary>Settings for a <see cref="DataPlaneClient"/>.</summary>
public sealed record DataPlaneClientOptions(string StateDirectory)
{
    /// <summary>Starts a data plane process (the CLI's launcher; the flag: as the standby) when none answers; null: only
    /// connect to a running one.</summary>
    public Func<bool, CancellationToken, Task>? Launch { get; init; }

    /// <summary>The caller has just launched the active data plane itself (before the client's own first-use costs, so that
    /// its .NET start begins at once: issue #21): the first connect waits for that one instead of launching another.</summary>
    public bool Launched { get; init; }

    /// <summary>Keep a warm standby data plane beside the active one, so that when the active one dies the routes move to
    /// a process that is already running (milliseconds) instead of one that must start (a .NET start, about a second).</summary>
    public bool Standby { get; init; }

    /// <summary>With <see cref="Standby"/>: the first standby waits for <see cref="DataPlaneClient.ReleaseStandby"/>, so its
    /// .NET start does not take a core from the app's own start (issue #21); the control plane releases it once the app is up.</summary>
    public bool HoldStandby { get; init; }

    /// <summary>Told of every request the data plane finished (traces, the live graph); null: none asked for.</summary>
    public IMeshRequestObserver? RequestObserver { get; init; }

    /// <summary>How long to wait for a data plane (a launched one included) to accept the channel: 30s, as <c>berth up -d</c>
    /// waits for its control plane.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>How long to wait for a reply: 2 minutes, since applying a snapshot that removes a listener waits for its
    /// requests to finish (the mesh's 30s drain).</summary>
    public TimeSpan ReplyTimeout { get; init; } = TimeSpan.FromMinutes(2);

    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    public ILoggerFactory LoggerFactory { get; init; } = NullLoggerFactory.Instance;
}

/// <summary>The data plane refused the channel (wrong token) or is not a data plane.</summary>
public sealed class DataPlaneRefusedException(string message) : Exception(message);

/// <summary>
/// The control plane's side of the channel to the data plane process: keeps the whole route table, sends it as a new
/// versioned snapshot on every change and waits for the ack (so a replica leaves the routes before it is stopped),
/// keeps the in-flight counts the data plane pushes, hands finished requests to the observer, and asks for route status.
/// When the channel breaks it connects again — launching a new data plane if the old one is gone — and sends the table.
/// </summary>
public sealed partial class DataPlaneClient : IMeshDataPlane, IPodRouteSink, IAsyncDisposable
{
    private readonly DataPlaneClientOptions _options;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly Dictionary<(string Service, string Endpoint), ServiceRoute> _routes = [];
    private readonly Dictionary<string, PodRoute> _pods = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<long, (Connection On, TaskCompletionSource<DataPlaneMessage> Reply)> _pending = new();
    private readonly CancellationTokenSource _disposing = new();
    private volatile IReadOnlyDictionary<(string Service, string Replica), int> _inFlight = new Dictionary<(string, string), int>();
    private volatile Connection? _connection;
    private volatile Connection? _standby;
    private readonly Lock _standbyLock = new();
    private Task _standbyTask = Task.CompletedTask;
    private volatile bool _standbyReleased;
    private Task _reconnect = Task.CompletedTask;
    private long _version;
    private long _nextId;
    private bool _seeded;
    private bool _stopped;
    private bool _launchedByCaller;

    private DataPlaneClient(DataPlaneClientOptions options)
    {
        _options = options;
        _launchedByCaller = options.Launched;
        _logger = options.LoggerFactory.CreateLogger("Berth.DataPlane.Client");
    }

    /// <summary>Connects to the app's data plane (launching one when none answers) and takes over the routes it serves,
    /// so the incremental updates of an adopting control plane never drop a listener another endpoint still needs.</summary>
    public static async Task<DataPlaneClient> ConnectAsync(DataPlaneClientOptions options, CancellationToken cancellationToken)
    {
        var client = new DataPlaneClient(options);
        await client._gate.WaitAsync(cancellationToken);
        try
        {
            await client.EnsureConnectedAsync(cancellationToken);
        }
        finally
        {
            client._gate.Release();
        }

        return client;
    }

    /// <inheritdoc />
    public Uri? AdminAddress { get; private set; }

    /// <summary>The data plane's process id (from its welcome).</summary>
    public int? Pid => _connection?.Pid;

    /// <summary>Times the channel was established after the first (each one a reconnect, possibly to a new data plane).</summary>
    public int Reconnects { get; private set; }

    /// <inheritdoc />
    public async Task UpdateAsync(ServiceRoute route, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(route);
        await ChangeAsync(routes => routes[(route.Service, route.Endpoint.Name)] = route, route.Service, route.Endpoint.Name, cancellationToken);
    }

    /// <inheritdoc />
    public Task RemoveAsync(string service, string endpoint, CancellationToken cancellationToken) =>
        ChangeAsync(routes => routes.Remove((service, endpoint)), service, endpoint, cancellationToken);

    /// <inheritdoc />
    public async Task UpdatePodAsync(PodRoute pod, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(pod);
        await ChangeAsync(_ => _pods[pod.Pod.PodId] = pod, pod.Pod.PodId, "pod", cancellationToken);
    }

    /// <inheritdoc />
    public Task RemovePodAsync(string podId, CancellationToken cancellationToken) =>
        ChangeAsync(_ => _pods.Remove(podId), podId, "pod", cancellationToken);

    /// <inheritdoc />
    public int InFlight(string service, string replica) => _inFlight.GetValueOrDefault((service, replica));

    /// <inheritdoc />
    public async Task<IReadOnlyList<RouteStatus>> RoutesAsync(CancellationToken cancellationToken)
    {
        if (_connection is not { } connection)
        {
            return [];
        }

        try
        {
            var reply = await RequestAsync(connection, new DataPlaneMessage { Type = DataPlaneMessageTypes.Status }, cancellationToken);
            return reply.Status ?? [];
        }
        catch (IOException)
        {
            return [];
        }
    }

    /// <summary>Drops the routes a previous control plane left that this one did not publish while adopting (an endpoint
    /// no longer in the app), so the data plane serves exactly this control plane's table.</summary>
    public async Task RetainOnlyAsync(IReadOnlyCollection<(string Service, string Endpoint)> keep, CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken);
        try
        {
            var stale = _routes.Keys.Where(k => !keep.Contains(k)).ToList();
            if (stale.Count == 0)
            {
                return;
            }

            foreach (var k in stale)
            {
                _routes.Remove(k);
            }

            await PushAsync(cancellationToken);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Stops the data plane (<c>berth down</c>, after every replica is stopped): it closes its listeners and exits;
    /// waits until its process is gone.</summary>
    public async Task ShutdownAsync(CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken);
        try
        {
            _stopped = true;
            // A standby being launched right now sees the stop and is told to stop too.
            await _standbyTask.WaitAsync(cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            if (Interlocked.Exchange(ref _standby, null) is { } standby)
            {
                await StopAsync(standby, cancellationToken);
            }

            if (_connection is { } connection)
            {
                await StopAsync(connection, cancellationToken);
            }
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Tells one data plane to stop and waits until its process is gone.</summary>
    private async Task StopAsync(Connection connection, CancellationToken ct)
    {
        connection.StartReading(this);
        try
        {
            await RequestAsync(connection, new DataPlaneMessage { Type = DataPlaneMessageTypes.Shutdown }, ct);
        }
        catch (IOException)
        {
            // Gone already.
        }

        var started = _options.TimeProvider.GetTimestamp();
        while (DataPlaneFiles.IsDataPlaneProcess(connection.Pid) && _options.TimeProvider.GetElapsedTime(started) < _options.ConnectTimeout)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(20), _options.TimeProvider, ct);
        }

        connection.Close();
    }

    private async Task ChangeAsync(Action<Dictionary<(string, string), ServiceRoute>> change, string service, string endpoint, CancellationToken ct)
    {
        DataPlaneMessage ack;
        await _gate.WaitAsync(ct);
        try
        {
            change(_routes);
            ack = await PushAsync(ct);
        }
        finally
        {
            _gate.Release();
        }

        if (ack.Errors?.FirstOrDefault(e => e.Service == service && e.Endpoint == endpoint) is { } error)
        {
            throw new MeshListenerException(error.Message);
        }
    }

    /// <summary>Sends the whole table as the next version; on a broken channel connects again (launching a data plane if
    /// needed) and sends it there. Under the gate.</summary>
    private async Task<DataPlaneMessage> PushAsync(CancellationToken ct)
    {
        for (var attempt = 1; ; attempt++)
        {
            var connection = await EnsureConnectedAsync(ct);
            try
            {
                return await SendSnapshotAsync(connection, ct);
            }
            catch (IOException e) when (attempt < 3)
            {
                Log.PushRetried(_logger, e.Message);
                connection.Close();
            }
        }
    }

    private async Task<DataPlaneMessage> SendSnapshotAsync(Connection connection, CancellationToken ct)
    {
        var version = ++_version;
        StartupTrace.Mark($"snapshot {version}: send ({_routes.Count} routes, {_pods.Count} pods)");
        var reply = await RequestAsync(connection, new DataPlaneMessage { Type = DataPlaneMessageTypes.Snapshot, Version = version, Routes = [.. _routes.Values], Pods = [.. _pods.Values] }, ct);
        StartupTrace.Mark($"snapshot {version}: acked");
        if (reply.Type != DataPlaneMessageTypes.Ack)
        {
            throw new InvalidOperationException($"the data plane refused route snapshot {version}: {reply.Message}");
        }

        SetInFlight(connection, reply);
        return reply;
    }

    /// <summary>The live connection, or a new one (launching a data plane when none answers). Under the gate.</summary>
    private async Task<Connection> EnsureConnectedAsync(CancellationToken ct)
    {
        if (_connection is { Alive: true } live)
        {
            return live;
        }

        ObjectDisposedException.ThrowIf(_disposing.IsCancellationRequested, this);
        var started = _options.TimeProvider.GetTimestamp();
        var launched = _launchedByCaller;
        _launchedByCaller = false;
        while (true)
        {
            var connection = await TryConnectAsync(DataPlaneFiles.InfoFile, ct);
            if (connection is not null)
            {
                await AdoptAsync(connection, promoted: false, ct);
                if (connection.Welcome.Build != DataPlaneServer.Build && _options.Launch is not null && !_stopped)
                {
                    // An upgrade of Berth: the running data plane is an older build. A new one takes its listeners over.
                    try
                    {
                        connection = await HandOverAsync(connection, ct);
                    }
                    catch (IOException e)
                    {
                        // Whichever data plane now says it is active is adopted on the next turn.
                        Log.HandOverFailed(_logger, e.Message);
                        _connection = null;
                        await Task.Delay(TimeSpan.FromMilliseconds(50), _options.TimeProvider, ct);
                        continue;
                    }
                }

                EnsureStandby();
                return connection;
            }

            // The active data plane's process lives but did not answer in time (a starved machine; a CI run at load 40 took
            // this for a dead one): it still holds every listener, so a promoted standby or a new data plane could not bind
            // them. Ask it again, until the connect timeout, rather than replace it.
            if (DataPlaneFiles.ReadLive(_options.StateDirectory) is { } active)
            {
                if (_options.TimeProvider.GetElapsedTime(started) > _options.ConnectTimeout)
                {
                    throw new IOException($"the data plane (pid {active.Pid}) did not answer on its channel within {_options.ConnectTimeout.TotalSeconds:0}s; see {Path.Combine(_options.StateDirectory, DataPlaneFiles.LogFile)}");
                }

                await Task.Delay(TimeSpan.FromMilliseconds(50), _options.TimeProvider, ct);
                continue;
            }

            // The active data plane is gone: the standby takes the routes at once.
            var standby = Interlocked.Exchange(ref _standby, null);
            if (standby is not { Alive: true } && _options.Standby)
            {
                standby = await TryConnectAsync(DataPlaneFiles.StandbyFile, ct);
            }

            if (standby is { Alive: true })
            {
                await AdoptAsync(standby, promoted: true, ct);
                EnsureStandby();
                return standby;
            }

            if (!launched && _options.Launch is { } launch && !_stopped)
            {
                launched = true;
                await launch(false, ct);
            }
            else if (_options.TimeProvider.GetElapsedTime(started) > _options.ConnectTimeout)
            {
                throw new IOException($"no data plane answered on its channel within {_options.ConnectTimeout.TotalSeconds:0}s; see {Path.Combine(_options.StateDirectory, DataPlaneFiles.LogFile)}");
            }

            await Task.Delay(TimeSpan.FromMilliseconds(5), _options.TimeProvider, ct);
        }
    }

    private async Task AdoptAsync(Connection connection, bool promoted, CancellationToken ct)
    {
        var welcome = connection.Welcome;
        AdminAddress = Uri.TryCreate(welcome.Admin, UriKind.Absolute, out var admin) ? admin : null;
        _version = Math.Max(_version, welcome.Version ?? 0);
        var first = !_seeded;
        if (first)
        {
            // The routes a previous control plane left (those the active data plane serves, or, when only a standby is
            // left, the snapshot the dead one saved): kept until this control plane publishes its own.
            var saved = promoted ? ReadSavedSnapshot() : null;
            _version = Math.Max(_version, saved?.Version ?? 0);
            foreach (var r in (promoted ? saved?.Routes : welcome.Routes) ?? [])
            {
                _routes.TryAdd((r.Service, r.Endpoint.Name), r);
            }

            foreach (var p in (promoted ? saved?.Pods : welcome.Pods) ?? [])
            {
                _pods.TryAdd(p.Pod.PodId, p);
            }

            _seeded = true;
        }

        _connection = connection;
        connection.StartReading(this);
        if (!first || promoted)
        {
            Reconnects += first ? 0 : 1;
            Log.Reconnected(_logger, connection.Pid, promoted ? "the standby, promoted" : "a running data plane", welcome.Version ?? 0);
            // A standby serves nothing and a new data plane what it saved; this brings it up to the control plane's table.
            await SendSnapshotAsync(connection, ct);
        }
    }

    /// <summary>
    /// Replaces the running data plane by one of this build: a standby of this build is started (or the current standby,
    /// when it is of this build), warm; the old one is told to release its listeners and exit; the new one is sent the
    /// table at once and binds each port as soon as the old one lets go of it. Requests already in the old one finish
    /// there (its drain); only new connections in the moment between the close and the bind are refused.
    /// </summary>
    private async Task<Connection> HandOverAsync(Connection old, CancellationToken ct)
    {
        var successor = Interlocked.Exchange(ref _standby, null) ?? await TryConnectAsync(DataPlaneFiles.StandbyFile, ct);
        if (successor is not null && successor.Welcome.Build != DataPlaneServer.Build)
        {
            await StopAsync(successor, ct);
            successor = null;
        }

        if (successor is null)
        {
            await _options.Launch!(true, ct);
            var started = _options.TimeProvider.GetTimestamp();
            while ((successor = await TryConnectAsync(DataPlaneFiles.StandbyFile, ct)) is not { Welcome.Build: var build } || build != DataPlaneServer.Build)
            {
                successor?.Close();
                if (_options.TimeProvider.GetElapsedTime(started) > _options.ConnectTimeout)
                {
                    Log.StandbyFailed(_logger, $"no data plane of this build answered within {_options.ConnectTimeout.TotalSeconds:0}s; the older one keeps serving");
                    return old;
                }

                await Task.Delay(TimeSpan.FromMilliseconds(20), _options.TimeProvider, ct);
            }
        }

        successor.StartReading(this);
        _connection = successor;
        // The old data plane offers its listening sockets (SCM_RIGHTS, as Envoy's hot restart); the new one takes them, so both
        // hold the same sockets and no port closes. An old data plane of a build that cannot pass them answers 'error': then
        // the new one binds each port the moment the old one lets go of it.
        string? offered = null;
        try
        {
            offered = await RequestAsync(old, new DataPlaneMessage { Type = DataPlaneMessageTypes.Pass, Pid = successor.Pid }, ct) is { Type: DataPlaneMessageTypes.Ack, Path: { } path } ? path : null;
        }
        catch (IOException)
        {
            // It went on its own: the new one simply binds.
        }

        await RequestAsync(successor, new DataPlaneMessage { Type = DataPlaneMessageTypes.Prepare, Routes = [.. _routes.Values], Pods = [.. _pods.Values], Path = offered, Pid = offered is null ? null : old.Pid }, ct);
        var version = ++_version;
        var applied = RequestAsync(successor, new DataPlaneMessage { Type = DataPlaneMessageTypes.Snapshot, Version = version, Routes = [.. _routes.Values], Pods = [.. _pods.Values], HandOver = true }, ct);
        if (offered is not null)
        {
            // The new one accepts on the passed sockets before the old one stops accepting (both serve the same snapshot meanwhile).
            await applied;
        }

        try
        {
            await RequestAsync(old, new DataPlaneMessage { Type = DataPlaneMessageTypes.Release }, ct);
        }
        catch (IOException)
        {
            // It went on its own: the new one simply binds.
        }

        var reply = await applied;
        SetInFlight(successor, reply);

        AdminAddress = Uri.TryCreate(successor.Welcome.Admin, UriKind.Absolute, out var admin) ? admin : AdminAddress;
        Log.HandedOver(_logger, old.Pid, old.Welcome.Build ?? "?", successor.Pid, DataPlaneServer.Build, reply.Errors?.Count ?? 0);
        old.Close();
        return successor;
    }

    private DataPlaneMessage? ReadSavedSnapshot()
    {
        try
        {
            return System.Text.Json.JsonSerializer.Deserialize<DataPlaneMessage>(File.ReadAllBytes(Path.Combine(_options.StateDirectory, DataPlaneFiles.RoutesFile)), DataPlaneWire.Json);
        }
        catch (Exception e) when (e is IOException or System.Text.Json.JsonException)
        {
            return null;
        }
    }

    /// <summary>Lets the standby start (see <see cref="DataPlaneClientOptions.HoldStandby"/>); idempotent.</summary>
    public void ReleaseStandby()
    {
        _standbyReleased = true;
        EnsureStandby();
    }

    /// <summary>Starts (or adopts) the standby in the background when there is none; under the gate or from a closed standby.</summary>
    private void EnsureStandby()
    {
        if (!_options.Standby || _options.Launch is null || _stopped || _disposing.IsCancellationRequested || (_options.HoldStandby && !_standbyReleased))
        {
            return;
        }

        lock (_standbyLock)
        {
            if (_standby is { Alive: true } || !_standbyTask.IsCompleted)
            {
                return;
            }

            _standbyTask = Task.Run(() => StandbyAsync(_disposing.Token));
        }
    }

    private async Task StandbyAsync(CancellationToken ct)
    {
        try
        {
            var connection = await TryConnectAsync(DataPlaneFiles.StandbyFile, ct);
            if (connection is not null && connection.Welcome.Build != DataPlaneServer.Build)
            {
                // A standby of an older Berth: replaced by one of this build.
                await StopAsync(connection, ct);
                connection = null;
            }

            if (connection is null)
            {
                await _options.Launch!(true, ct);
                var started = _options.TimeProvider.GetTimestamp();
                while (connection is null && _options.TimeProvider.GetElapsedTime(started) < _options.ConnectTimeout)
                {
                    await Task.Delay(TimeSpan.FromMilliseconds(20), _options.TimeProvider, ct);
                    connection = await TryConnectAsync(DataPlaneFiles.StandbyFile, ct);
                }
            }

            if (connection is null)
            {
                Log.StandbyFailed(_logger, $"no standby answered within {_options.ConnectTimeout.TotalSeconds:0}s");
                return;
            }

            if (_stopped)
            {
                await StopAsync(connection, ct);
                return;
            }

            _standby = connection;
            connection.StartReading(this);
            Log.StandbyReady(_logger, connection.Pid);
        }
        catch (Exception e) when (e is IOException or DataPlaneRefusedException or InvalidOperationException && !ct.IsCancellationRequested)
        {
            Log.StandbyFailed(_logger, e.Message);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
    }

    private async Task<Connection?> TryConnectAsync(string file, CancellationToken ct)
    {
        if (DataPlaneFiles.ReadInfo(_options.StateDirectory, file) is not { } info || DataPlaneFiles.ReadToken(_options.StateDirectory) is not { } token)
        {
            return null;
        }

        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(info.Socket), ct);
        }
        catch (SocketException)
        {
            socket.Dispose();
            return null;
        }

        StartupTrace.Mark($"data plane channel: connected ({file})");
        var connection = new Connection(socket);
        try
        {
            await connection.SendAsync(new DataPlaneMessage { Type = DataPlaneMessageTypes.Hello, Token = token }, ct);
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(TimeSpan.FromSeconds(5));
            var welcome = await DataPlaneWire.ReadAsync(connection.Reader, DataPlaneWire.MaxMessageBytes, timeout.Token);
            // A data plane pushes in-flight counts and requests to the newest channel; one of an older build may push before
            // its welcome. Those are skipped, not taken for a refusal (which cost a reconnect on every start: issue #21, round 7).
            while (welcome?.Type is DataPlaneMessageTypes.InFlight or DataPlaneMessageTypes.Requests)
            {
                welcome = await DataPlaneWire.ReadAsync(connection.Reader, DataPlaneWire.MaxMessageBytes, timeout.Token);
            }

            if (welcome?.Type == DataPlaneMessageTypes.Error)
            {
                connection.Close();
                throw new DataPlaneRefusedException($"the data plane at {info.Socket} refused the channel: {welcome.Message}");
            }

            if (welcome is not { Type: DataPlaneMessageTypes.Welcome, Pid: { } pid })
            {
                StartupTrace.Mark($"data plane channel: no welcome ({welcome?.Type ?? "closed"})");
                connection.Close();
                return null;
            }

            connection.Welcome = welcome;
            connection.Pid = pid;
            StartupTrace.Mark("data plane channel: welcomed");
            return connection;
        }
        catch (Exception e) when (e is IOException or SocketException or InvalidDataException or OperationCanceledException && !ct.IsCancellationRequested)
        {
            StartupTrace.Mark($"data plane channel: failed ({e.GetType().Name}: {e.Message})");
            connection.Close();
            return null;
        }
    }

    private async Task<DataPlaneMessage> RequestAsync(Connection connection, DataPlaneMessage message, CancellationToken ct)
    {
        var id = Interlocked.Increment(ref _nextId);
        var reply = new TaskCompletionSource<DataPlaneMessage>(TaskCreationOptions.RunContinuationsAsynchronously);
        _pending[id] = (connection, reply);
        try
        {
            await connection.SendAsync(message with { Id = id }, ct);
            return await reply.Task.WaitAsync(_options.ReplyTimeout, _options.TimeProvider, ct);
        }
        catch (TimeoutException)
        {
            throw new IOException($"the data plane did not answer a {message.Type} within {_options.ReplyTimeout.TotalSeconds:0}s");
        }
        finally
        {
            _pending.TryRemove(id, out _);
        }
    }

    /// <summary>Takes the counts <paramref name="message"/> carries unless <paramref name="from"/> already gave newer ones: an
    /// ack is handled after the read loop has moved on, and the data plane may send counts in another order than it took them.</summary>
    private void SetInFlight(Connection from, DataPlaneMessage message)
    {
        if (message.InFlight is not { } counts)
        {
            return;
        }

        lock (from)
        {
            if (message.InFlightSequence is { } sequence)
            {
                if (sequence <= from.InFlightSequence)
                {
                    return;
                }

                from.InFlightSequence = sequence;
            }

            _inFlight = counts.ToDictionary(c => (c.Service, c.Replica), c => c.Count);
        }
    }

    private void OnMessage(Connection from, DataPlaneMessage message)
    {
        switch (message.Type)
        {
            case DataPlaneMessageTypes.InFlight or DataPlaneMessageTypes.Requests when from != _connection:
                return; // a standby's (empty) pushes, or a late one from a data plane already replaced
            case DataPlaneMessageTypes.InFlight:
                SetInFlight(from, message);
                return;
            case DataPlaneMessageTypes.Requests when _options.RequestObserver is { } observer:
                foreach (var r in message.Requests ?? [])
                {
                    observer.OnRequest(r);
                }

                return;
            default:
                if (message.Id is { } id && _pending.TryGetValue(id, out var pending))
                {
                    pending.Reply.TrySetResult(message);
                }

                return;
        }
    }

    private void OnClosed(Connection connection, string why)
    {
        foreach (var p in _pending.Values.Where(p => p.On == connection))
        {
            p.Reply.TrySetException(new IOException($"the data plane channel closed: {why}"));
        }

        if (Interlocked.CompareExchange(ref _standby, null, connection) == connection)
        {
            // The standby died (or was stopped): start another one.
            EnsureStandby();
            return;
        }

        if (_disposing.IsCancellationRequested || _stopped || _connection != connection)
        {
            return;
        }

        Log.ChannelLost(_logger, connection.Pid, why);
        _reconnect = Task.Run(ReconnectAsync);
    }

    /// <summary>After the channel broke: connect again (a live data plane), or launch a new one (it died) and send it the table.</summary>
    private async Task ReconnectAsync()
    {
        var ct = _disposing.Token;
        var delay = TimeSpan.FromMilliseconds(50);
        while (!ct.IsCancellationRequested && !_stopped)
        {
            try
            {
                await _gate.WaitAsync(ct);
                try
                {
                    if (!_stopped)
                    {
                        await EnsureConnectedAsync(ct);
                    }

                    return;
                }
                finally
                {
                    _gate.Release();
                }
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is IOException or DataPlaneRefusedException or InvalidOperationException)
            {
                Log.ReconnectFailed(_logger, e.Message);
                await Task.Delay(delay, _options.TimeProvider, ct).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromSeconds(5).Ticks));
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _disposing.CancelAsync();
        _connection?.Close();
        _standby?.Close();
        await _reconnect.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        await _standbyTask.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        _disposing.Dispose();
    }

    /// <summary>One channel connection: writes whole messages, reads on a loop that hands them to the client.</summary>
    private sealed class Connection(Socket socket)
    {
        private readonly NetworkStream _stream = new(socket, ownsSocket: true);
        private readonly SemaphoreSlim _write = new(1, 1);
        private PipeReader? _reader;
        private volatile bool _closed;

        public PipeReader Reader => _reader ??= PipeReader.Create(_stream);

        public DataPlaneMessage Welcome { get; set; } = null!;

        public int Pid { get; set; }

        /// <summary>The newest in-flight counts taken from this data plane (their <see cref="DataPlaneMessage.InFlightSequence"/>).</summary>
        public long InFlightSequence { get; set; }

        public bool Alive => !_closed;

        public async Task SendAsync(DataPlaneMessage message, CancellationToken ct)
        {
            var bytes = DataPlaneWire.Encode(message);
            await _write.WaitAsync(ct);
            try
            {
                await _stream.WriteAsync(bytes, ct);
            }
            catch (Exception e) when (e is ObjectDisposedException or SocketException)
            {
                Close();
                throw new IOException($"the data plane channel is closed: {e.Message}", e);
            }
            finally
            {
                _write.Release();
            }
        }

        private int _reading;

        public void StartReading(DataPlaneClient client)
        {
            if (Interlocked.Exchange(ref _reading, 1) == 0)
            {
                _ = Task.Run(() => ReadLoopAsync(client));
            }
        }

        private async Task ReadLoopAsync(DataPlaneClient client)
        {
            var why = "end of stream (the data plane exited)";
            try
            {
                while (await DataPlaneWire.ReadAsync(Reader, DataPlaneWire.MaxMessageBytes, CancellationToken.None) is { } message)
                {
                    client.OnMessage(this, message);
                }
            }
            catch (Exception e) when (e is IOException or SocketException or InvalidDataException or ObjectDisposedException)
            {
                why = e.Message;
            }

            Close();
            client.OnClosed(this, why);
        }

        public void Close()
        {
            _closed = true;
            _stream.Dispose();
        }
    }

    private static partial class Log
    {
        [LoggerMessage(6121, LogLevel.Warning, "Data plane channel lost (data plane {Pid}): {Reason}; reconnecting")]
        public static partial void ChannelLost(ILogger logger, int pid, string reason);

        [LoggerMessage(6122, LogLevel.Information, "Data plane channel re-established with data plane {Pid}, {Which} (it served snapshot version {Version})")]
        public static partial void Reconnected(ILogger logger, int pid, string which, long version);

        [LoggerMessage(6127, LogLevel.Warning, "Data plane handed over from {OldPid} (build {OldBuild}) to {NewPid} (build {NewBuild}); {Errors} routes refused")]
        public static partial void HandedOver(ILogger logger, int oldPid, string oldBuild, int newPid, string newBuild, int errors);

        [LoggerMessage(6128, LogLevel.Warning, "Data plane hand-over interrupted: {Reason}; connecting to whichever data plane is active")]
        public static partial void HandOverFailed(ILogger logger, string reason);

        [LoggerMessage(6125, LogLevel.Information, "Standby data plane {Pid} ready")]
        public static partial void StandbyReady(ILogger logger, int pid);

        [LoggerMessage(6126, LogLevel.Warning, "No standby data plane: {Reason}; a lost data plane is replaced by starting a new one")]
        public static partial void StandbyFailed(ILogger logger, string reason);

        [LoggerMessage(6123, LogLevel.Warning, "Could not reach the data plane: {Reason}; retrying")]
        public static partial void ReconnectFailed(ILogger logger, string reason);

        [LoggerMessage(6124, LogLevel.Warning, "Route snapshot not delivered ({Reason}); sending it again")]
        public static partial void PushRetried(ILogger logger, string reason);
    }
}
