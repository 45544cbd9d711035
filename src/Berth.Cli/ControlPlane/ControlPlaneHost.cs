using System.Diagnostics;
using System.Runtime.InteropServices;
using Berth.Core.Diagnostics;
using Berth.Core.Model;
using Berth.Mesh;
using Berth.Mesh.DataPlane;
using Berth.Orchestration;
using Berth.Orchestration.Controllers;
using Berth.Orchestration.State;
using Berth.Runtime;
using Berth.Runtime.Capabilities;
using Berth.Runtime.Docker;
using Berth.Runtime.Process;
using Berth.Server;
using Berth.Server.Telemetry;

namespace Berth.Cli.ControlPlane;

/// <summary>One app's control plane in this process: store, drivers, controllers, API. Used by foreground <c>berth up</c>,
/// by the detached control plane, and by <c>berth down</c> when no control plane is running.</summary>
internal sealed class ControlPlaneHost : IAsyncDisposable
{
    private readonly List<IAsyncDisposable> _owned = [];
    private readonly List<IDisposable> _disposables = [];

    private ControlPlaneHost(string stateDirectory, IMeshDataPlane? mesh)
    {
        StateDirectory = stateDirectory;
        Mesh = mesh;
        Routes = new RoutingTable(mesh);
    }

    public string StateDirectory { get; }

    /// <summary>Where the process driver looks for cgroups instead of /sys/fs/cgroup: a delegated cgroup v2 subtree lets an
    /// unprivileged control plane enforce limits.</summary>
    public const string CgroupRootVariable = "BERTH_CGROUP_ROOT";

    /// <summary>Berth's folder in each cgroup hierarchy instead of <c>berth</c>: a subtree root made and handed to a normal
    /// user on cgroup v1 (<c>chown -R</c>), so that user's replicas get limits without root.</summary>
    public const string CgroupSubtreeVariable = "BERTH_CGROUP_SUBTREE";

    /// <summary>How many replicas start at once (default <see cref="OrchestratorDefaults.StartConcurrency"/>): for tuning and the benchmarks.</summary>
    public const string StartConcurrencyVariable = "BERTH_START_CONCURRENCY";

    /// <summary>How many events the control plane keeps (default <see cref="OrchestratorDefaults.EventRetention"/>).</summary>
    public const string EventRetentionVariable = "BERTH_EVENT_RETENTION";

    public Orchestration.Controllers.ControlPlane Plane { get; private set; } = null!;

    public ApiServer Api { get; private set; } = null!;

    /// <summary>The data plane: a listener on each endpoint's stable port in front of its Ready replicas — the channel to
    /// the data plane process (<see cref="DataPlaneClient"/>), or the mesh in this process when <c>BERTH_DATA_PLANE=in-process</c>.</summary>
    public IMeshDataPlane? Mesh { get; }

    public RoutingTable Routes { get; }

    public IReadOnlyList<string> Warnings { get; private set; } = [];

    /// <summary>Where process services' named volumes are kept: <c>.berth/volumes/</c> (removed by <c>berth down -v</c>).</summary>
    public static string VolumesDirectoryFor(string stateDirectory) => Path.Combine(stateDirectory, "volumes");

    /// <summary>The state folder of a spec: <c>.berth/</c> beside it (DESIGN.md).</summary>
    public static string StateDirectoryFor(string specPath) => Path.Combine(Path.GetDirectoryName(Path.GetFullPath(specPath))!, ".berth");

    /// <summary>Starts drivers and controllers (adopting running replicas) and the API; <paramref name="needsDocker"/>
    /// connects to Docker up front (otherwise only when Docker is reachable). <c>beforeApi</c> runs once the controllers have
    /// adopted, before the API starts: the detached control plane applies its spec there, so that the first replicas are
    /// created while the API's Kestrel starts, not after it.</summary>
    public static async Task<ControlPlaneHost> StartAsync(string stateDirectory, bool needsDocker, bool api, CancellationToken ct, TelemetrySpec? telemetry = null,
        Func<ControlPlaneHost, Task>? beforeApi = null)
    {
        try
        {
            return await StartCoreAsync(stateDirectory, needsDocker, api, ct, telemetry, beforeApi);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException && StateStoreException.From(e, Path.Combine(stateDirectory, StateStore.FileName)) is { } fault)
        {
            // The state folder itself is read-only or full (the token, api.json, the OTLP key): say so, as for the store.
            throw fault;
        }
    }

    private static async Task<ControlPlaneHost> StartCoreAsync(string stateDirectory, bool needsDocker, bool api, CancellationToken ct, TelemetrySpec? telemetry,
        Func<ControlPlaneHost, Task>? beforeApi)
    {
        StartupTrace.Mark("host: start");
        EnsureStartThreads();
        // The mesh and the telemetry receiver run only with a serving control plane; 'berth down' without one just stops replicas.
        IMeshDataPlane? mesh = null;
        TelemetryStore? store = null;
        OtlpReceiver? otlp = null;
        Task<DataPlaneClient>? dataPlane = null;
        if (api)
        {
            Directory.CreateDirectory(stateDirectory);
            store = new TelemetryStore(TelemetryOptionsFor(telemetry ?? TelemetrySpec.Default));
            // The data plane process is the longest step (a .NET start of its own): launched first, from a pool thread, while
            // Docker connects, the receiver's Kestrel starts and the store opens; waited for only when the controllers
            // need it (issue #21). Even the calls' synchronous parts (loading the Docker client, the channel's logger) took
            // 300-400 ms each on the loaded machine.
            var observer = store;
            dataPlane = DataPlaneProcess.InProcess ? null : Task.Run(() => { StartupTrace.Mark("pool: data plane connect began"); return DataPlaneProcess.ConnectAsync(stateDirectory, observer, ct); }, ct);
        }

        // Docker only when the app has Docker services: a slow or wedged engine must not hold up an app of processes. Its
        // connection (a ping and /info) is made while the receiver and the mesh start, not after them (issue #21).
        var dockerConnect = needsDocker ? Task.Run(() => { StartupTrace.Mark("pool: docker connect began"); return ConnectDockerAsync(stateDirectory, ct); }, ct) : null;
        // The telemetry receiver's Kestrel start (0.1-0.9 s, most of it loading ASP.NET) and the network-namespace probe (an
        // 'unshare' process) run on pool threads beside the store's open, not before it: nothing needs them until the
        // orchestrator's options are built (issue #21, round 6).
        Task<OtlpReceiver>? otlpStart = null;
        if (store is not null)
        {
            StartupTrace.Mark("host: telemetry receiver");
            var receiverStore = store;
            otlpStart = Task.Run(() => { StartupTrace.Mark("pool: receiver start began"); return OtlpReceiver.StartAsync(receiverStore, Path.Combine(stateDirectory, OtlpReceiver.KeyFileName), null, ct); }, ct);
        }

        var namespacesProbe = Task.Run(() => { StartupTrace.Mark("pool: namespace probe began"); return NetworkNamespaceProbe.Run(HostUser.Uid); }, ct);
        var disposables = new List<IDisposable>();
        var warnings = new List<string>();
        HostCapability networkNamespaces;
        ProcessDriver process;
        ProcessDriverOptions processOptions;
        StateStore stateStore;
        var drivers = new List<IWorkloadDriver>();
        Func<HostCapability>? dockerCapability = null;
        DockerDriver? connectedDocker = null;
        try
        {
            Directory.CreateDirectory(stateDirectory);
            stateStore = StateStore.Open(stateDirectory);
            disposables.Add(stateStore);
            processOptions = ProcessOptionsFor(stateDirectory);
            process = new ProcessDriver(processOptions);
            drivers.Add(process);
            StartupTrace.Mark("host: store opened");
            networkNamespaces = await namespacesProbe;
            StartupTrace.Mark("host: network namespaces probed");
            if (dockerConnect is not null)
            {
                try
                {
                    var docker = await dockerConnect;
                    connectedDocker = docker;
                    disposables.Add(docker);
                    drivers.Add(docker);
                    dockerCapability = () => docker.Capability is { Usable: false } c && docker.Lost is null ? c with { Detail = $"{c.Detail.TrimEnd('.')}; Docker services stay Pending" } : docker.Capability;
                }
                catch (DockerUnavailableException e)
                {
                    var unusable = new HostCapability(HostCapability.Docker, false, $"{e.Message.TrimEnd('.')}; Docker services stay Pending");
                    dockerCapability = () => unusable;
                }
                catch (OperationCanceledException) when (!ct.IsCancellationRequested)
                {
                    var unusable = new HostCapability(HostCapability.Docker, false,
                        $"the Docker engine did not answer within {DockerConnectTimeout.TotalSeconds:0}s; Docker services stay Pending", "check that dockerd is not stuck (docker info)");
                    dockerCapability = () => unusable;
                }
            }

            if (otlpStart is not null)
            {
                otlp = await otlpStart;
                StartupTrace.Mark("host: telemetry receiver started");
                if (dataPlane is null)
                {
                    var inProcess = new MeshHost(new MeshHostOptions { RequestObserver = store });
                    await inProcess.StartAsync(ct);
                    mesh = inProcess;
                    StartupTrace.Mark("host: mesh started");
                }
            }
        }
        catch
        {
            // What was started beside the failed step is stopped, not leaked: the receiver's Kestrel, the data plane's channel.
            await AbandonAsync(otlpStart, dataPlane, dockerConnect, mesh, disposables);
            throw;
        }

        StartupTrace.Mark("host: docker connected");
        if (dataPlane is not null)
        {
            mesh = await dataPlane;
            StartupTrace.Mark("host: mesh started");
        }

        var host = new ControlPlaneHost(stateDirectory, mesh) { Telemetry = store, Otlp = otlp };
        host._disposables.AddRange(disposables);
        var prober = new ProbeExecutor();
        host._disposables.Add(prober);
        var orchestrator = new OrchestratorOptions
        {
            StateDirectory = stateDirectory,
            PodRuntimes = !networkNamespaces.Usable ? new HashSet<RuntimeKind>()
                : HostUser.IsRoot ? [RuntimeKind.Process, RuntimeKind.Docker]
                : [RuntimeKind.Process],
            PodsUnavailable = networkNamespaces.Usable ? null : networkNamespaces.Message,
            EgressHelper = processOptions.EgressHelper, // the one the process driver starts, found once
        };
        if (Environment.GetEnvironmentVariable(EventRetentionVariable) is { Length: > 0 } keep)
        {
            if (int.TryParse(keep, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var n) && n > 0)
            {
                orchestrator = orchestrator with { EventRetention = n };
            }
            else
            {
                warnings.Add($"{EventRetentionVariable}='{keep}' is not a whole number above 0; keeping the newest {OrchestratorDefaults.EventRetention} events");
            }
        }

        if (Environment.GetEnvironmentVariable(StartConcurrencyVariable) is { Length: > 0 } starts)
        {
            if (int.TryParse(starts, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var n) && n > 0)
            {
                orchestrator = orchestrator with { StartConcurrency = n };
            }
            else
            {
                warnings.Add($"{StartConcurrencyVariable}='{starts}' is not a whole number above 0; starting {OrchestratorDefaults.StartConcurrency} replicas at once");
            }
        }

        if (otlp is not null)
        {
            orchestrator = orchestrator with { ReplicaEnvironment = otlp.ExporterEnvironment };
        }

        var plane = new Orchestration.Controllers.ControlPlane(orchestrator, stateStore, drivers, host.Routes, prober);
        host.Plane = plane;
        host._owned.Add(plane);
        if (mesh is IAsyncDisposable disposable)
        {
            host._owned.Add(disposable);
        }

        if (otlp is not null)
        {
            host._owned.Add(otlp);
        }

        host.Drivers = drivers;
        host.Capabilities = () => dockerCapability is null ? [process.CgroupCapability, networkNamespaces] : [process.CgroupCapability, networkNamespaces, dockerCapability()];
        await plane.StartAsync(ct);
        StartupTrace.Mark("host: control plane started (adopted)");

        if (mesh is DataPlaneClient client)
        {
            // Adoption published every endpoint of the current revision; whatever else the data plane still serves is gone from the app.
            await client.RetainOnlyAsync([.. host.Routes.Routes.Select(r => (r.Service, r.Endpoint.Name))], ct);
            host._owned.Insert(0, StandbyRelease.Start(plane, client, TimeProvider.System));
        }

        host.Warnings = warnings;
        try
        {
            if (connectedDocker is not null)
            {
                // Connected from its ping on; what the engine enforces (/info) came beside the adoption and the data plane's
                // connect, and is known before anything is applied or reported (issue #21, round 6).
                await connectedDocker.Described;
                StartupTrace.Mark("host: docker described");
            }

            if (beforeApi is not null)
            {
                // The first apply (and so the first creates) before the API's Kestrel start, not after it (issue #21, round 6).
                await beforeApi(host);
            }
        }
        catch
        {
            await host.DisposeAsync();
            throw;
        }

        if (api)
        {
            host.Api = await ApiServer.StartAsync(plane, new ApiServerOptions
            {
                StateDirectory = stateDirectory,
                Routes = host.Routes,
                Telemetry = store,
                Mesh = mesh,
                ReplicaEnvironment = orchestrator.ReplicaEnvironment,
                Capabilities = host.Capabilities,
            }, ct);
            host._owned.Insert(0, host.Api);
            host._owned.Insert(0, Rollouts.AutoscalerRun.Start(plane, mesh));
        }

        StartupTrace.Mark("host: api started");
        return host;
    }

    /// <summary>The start runs five slow steps side by side on pool threads (the data plane's launch, Docker's connect, the
    /// receiver's Kestrel, the namespace probe, the serializers' warm-up), each mostly JIT and synchronous work. The pool
    /// starts with one worker per core and adds more only about twice a second when starved, so on a 2-core machine the
    /// third and later steps waited 0.3-1.3 s in its queue before they began (<c>pool: … began</c> in the start-up trace;
    /// with this, all begin within 50 ms). The threads are made only when work is queued (issue #21, round 7).</summary>
    internal static void EnsureStartThreads()
    {
        ThreadPool.GetMinThreads(out var workers, out var io);
        if (workers < StartThreads)
        {
            ThreadPool.SetMinThreads(StartThreads, io);
        }
    }

    /// <summary>The pool's minimum worker count while a control plane runs: the start's parallel steps plus the loop and
    /// the API, with room to spare.</summary>
    internal const int StartThreads = 16;

    private static async Task AbandonAsync(Task<OtlpReceiver>? otlpStart, Task<DataPlaneClient>? dataPlane, Task<DockerDriver>? dockerConnect, IMeshDataPlane? mesh,
        List<IDisposable> disposables)
    {
        foreach (var d in disposables)
        {
            d.Dispose();
        }

        if (dockerConnect is not null)
        {
            await ((Task)dockerConnect).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            if (dockerConnect.IsCompletedSuccessfully && !disposables.Contains(dockerConnect.Result))
            {
                dockerConnect.Result.Dispose();
            }
        }

        if (otlpStart is not null)
        {
            await ((Task)otlpStart).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            if (otlpStart.IsCompletedSuccessfully)
            {
                await otlpStart.Result.DisposeAsync();
            }
        }

        if (mesh is MeshHost inProcess)
        {
            await inProcess.DisposeAsync();
        }

        if (dataPlane is not null)
        {
            await ((Task)dataPlane).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            if (dataPlane.IsCompletedSuccessfully)
            {
                await dataPlane.Result.DisposeAsync();
            }
        }
    }

    private static async Task<DockerDriver> ConnectDockerAsync(string stateDirectory, CancellationToken ct)
    {
        using var connect = CancellationTokenSource.CreateLinkedTokenSource(ct);
        connect.CancelAfter(DockerConnectTimeout);
        return await DockerDriver.ConnectAsync(new DockerDriverOptions { AppId = AppIdentity.LoadOrCreate(stateDirectory) }, connect.Token, describeLater: true);
    }

    public IReadOnlyList<IWorkloadDriver> Drivers { get; private set; } = [];

    /// <summary>The process driver's settings for an app's state folder: records under <c>runtime/</c>, volumes, cgroups as the environment says.</summary>
    public static ProcessDriverOptions ProcessOptionsFor(string stateDirectory)
    {
        var options = new ProcessDriverOptions { StateRoot = Path.Combine(stateDirectory, "runtime"), VolumesRoot = VolumesDirectoryFor(stateDirectory) };
        if (Environment.GetEnvironmentVariable(CgroupRootVariable) is { Length: > 0 } cgroupRoot)
        {
            options = options with { CgroupRoot = cgroupRoot };
        }

        if (Environment.GetEnvironmentVariable(CgroupSubtreeVariable) is { Length: > 0 } cgroupSubtree)
        {
            options = options with { CgroupSubtree = cgroupSubtree };
        }

        return options;
    }

    /// <summary>What this control plane may do here as its user, decided by trying (issue #18): cgroups, network
    /// namespaces, and Docker when the app has Docker services. Read again each time: cgroups can be lost while running.</summary>
    public Func<IReadOnlyList<HostCapability>> Capabilities { get; private set; } = () => [];

    /// <summary>Spans, logs and metrics from the apps (OTLP) and the mesh, for the dashboard; null without the API.</summary>
    public TelemetryStore? Telemetry { get; private init; }

    /// <summary>The OTLP receiver replicas export to; null without the API.</summary>
    public OtlpReceiver? Otlp { get; private init; }

    /// <summary>The spec's <c>telemetry:</c> limits over the defaults.</summary>
    public static TelemetryOptions TelemetryOptionsFor(TelemetrySpec spec) => new()
    {
        MaxSpans = spec.MaxSpans ?? TelemetryDefaults.MaxSpans,
        MaxLogs = spec.MaxLogs ?? TelemetryDefaults.MaxLogs,
        MaxMetricPoints = spec.MaxMetricPoints ?? TelemetryDefaults.MaxMetricPoints,
        ForwardEndpoint = spec.OtlpEndpoint,
    };

    /// <summary>Makes the nodes' cgroups where the process driver can (each node a cgroup with its memory and CPU cap).</summary>
    public async Task<IReadOnlyList<string>> EnsureNodesAsync(Application app, CancellationToken ct)
    {
        var problems = new List<string>();
        var isolation = Drivers.OfType<INodeIsolation>().FirstOrDefault();
        if (isolation is null || app.Nodes.IsDefaultOrEmpty)
        {
            return problems;
        }

        var cpuSets = Orchestration.Scheduling.CpuPartition.Assign(app.Nodes.Select(n => n.Cpu).ToList(), Orchestration.Scheduling.CpuPartition.UsableCpus());
        foreach (var (node, cpuSet) in app.Nodes.Zip(cpuSets))
        {
            try
            {
                await isolation.EnsureNodeAsync(new NodeCgroupSpec { Path = NodeCgroupSpec.PathFor(app.Name, node.Name), Cpu = node.Cpu, Memory = node.Memory, CpuSet = cpuSet }, ct);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidOperationException or NotSupportedException)
            {
                problems.Add($"node {node.Name}: its cgroup could not be made ({e.Message}); the scheduler still keeps within its capacity");
            }
        }

        return problems;
    }

    /// <summary>Stops the data plane last, once every replica is stopped (<c>berth down</c>): the one this control plane
    /// talks to, or one a killed control plane left running.</summary>
    public async Task StopDataPlaneAsync(CancellationToken ct)
    {
        if (Mesh is DataPlaneClient client)
        {
            await client.ShutdownAsync(ct);
        }
        else if (Mesh is null)
        {
            await DataPlaneProcess.StopOrphanAsync(StateDirectory, ct);
        }
    }

    /// <summary>Removes the nodes' cgroups once every replica is stopped (after <c>DownAsync</c>).</summary>
    public async Task RemoveNodesAsync(CancellationToken ct)
    {
        var app = Plane.Current?.Application;
        var isolation = Drivers.OfType<INodeIsolation>().FirstOrDefault();
        if (app is null || isolation is null)
        {
            return;
        }

        foreach (var node in app.Nodes)
        {
            try
            {
                await isolation.RemoveNodeAsync(NodeCgroupSpec.PathFor(app.Name, node.Name), ct);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidOperationException)
            {
                // A cgroup still in use (or already gone) is left to the next 'berth down'.
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var d in _owned)
        {
            await d.DisposeAsync();
        }

        foreach (var d in _disposables)
        {
            d.Dispose();
        }

        if (Api is not null)
        {
            File.Delete(Path.Combine(StateDirectory, ApiServerOptions.AddressFileName));
        }
    }

    /// <summary>How long <c>berth up</c> waits for the Docker engine to answer: 30s (the docker CLI waits as long as the engine takes).</summary>
    public static readonly TimeSpan DockerConnectTimeout = TimeSpan.FromSeconds(30);

    /// <summary>Whether the state folder's current revision has Docker services (for <c>berth down</c> without a control plane).</summary>
    /// <summary><c>berth down -v</c>: removes the app's named volumes once its replicas are gone — the Docker volumes Berth
    /// labelled for the app (never external ones) and the process services' folders under <c>.berth/volumes/</c>.
    /// Returns a problem to print, or null.</summary>
    public static async Task<string?> RemoveVolumesAsync(string stateDirectory, TextWriter log, CancellationToken ct)
    {
        var folder = VolumesDirectoryFor(stateDirectory);
        if (Directory.Exists(folder))
        {
            Directory.Delete(folder, recursive: true);
            log.WriteLine($"removed the process services' volumes in {folder}");
        }

        string? app = null;
        if (File.Exists(Path.Combine(stateDirectory, StateStore.FileName)))
        {
            using var store = StateStore.Open(stateDirectory);
            app = store.CurrentRevision()?.Application.Name;
        }

        if (app is null)
        {
            return null;
        }

        using var connect = CancellationTokenSource.CreateLinkedTokenSource(ct);
        connect.CancelAfter(DockerConnectTimeout);
        using var docker = await DockerDriver.ConnectAsync(new DockerDriverOptions(), connect.Token);
        if (!docker.Capabilities.Available)
        {
            return null; // no engine, so no Docker volumes of this app
        }

        try
        {
            foreach (var name in await docker.RemoveVolumesAsync(app, ct))
            {
                log.WriteLine($"removed volume {name}");
            }
        }
        catch (Docker.DotNet.DockerApiException e)
        {
            return $"a volume of '{app}' could not be removed: {e.Message}";
        }

        return null;
    }

    public static bool RecordedAppNeedsDocker(string stateDirectory)
    {
        if (!File.Exists(Path.Combine(stateDirectory, StateStore.FileName)))
        {
            return false;
        }

        using var store = StateStore.Open(stateDirectory);
        return store.CurrentRevision()?.Application.Services.Any(s => s.EffectiveRuntime == RuntimeKind.Docker) == true;
    }

    /// <summary>Runs each distinct build command of the app's services once (<c>build.command</c>), on the host, output to <paramref name="log"/>.
    /// Docker services' commands run too, before their image is built (<see cref="ImageBuilds"/>), with <c>BERTH_BUILD_RUNTIME=docker</c>.</summary>
    public static async Task<string?> BuildAsync(Application app, TextWriter log, CancellationToken ct)
    {
        var builds = app.Services
            .Where(s => s.Build is { Command.IsDefaultOrEmpty: false })
            .Select(s => (Command: s.Build!.Command, Dir: s.Build.WorkingDir ?? s.Build.Context ?? app.BaseDirectory, Service: s.Name, Runtime: s.EffectiveRuntime))
            .DistinctBy(b => string.Join('\0', b.Command) + "\0" + b.Dir + "\0" + b.Runtime)
            .ToList();
        foreach (var (command, dir, service, runtime) in builds)
        {
            var directory = Path.IsPathRooted(dir) ? dir : Path.Combine(app.BaseDirectory, dir);
            var served = string.Join(", ", app.Services.Where(s => s.Build is { } b && b.Command.SequenceEqual(command) && (b.WorkingDir ?? b.Context ?? app.BaseDirectory) == dir).Select(s => s.Name));
            log.WriteLine($"berth: building {served}: {string.Join(' ', command)}");
            // Through setsid: the build leads a process group of its own, so stopping it reaches every process it started
            // (compilers, test hosts, a child that outlives its parent), not only the ones still linked to it.
            var info = new ProcessStartInfo("setsid") { WorkingDirectory = directory, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            info.Environment["BERTH_BUILD_RUNTIME"] = runtime == RuntimeKind.Docker ? "docker" : "process";
            foreach (var a in command)
            {
                info.ArgumentList.Add(a);
            }

            // SIGINT/SIGTERM, which (where no one handles them) end berth at once, first end the build: it must not outlive berth.
            // Registered before the build starts; a signal in between (no pid yet) is held and acted on once it has one.
            var started = Stopwatch.StartNew();
            var leader = 0;
            var signalled = false;
            void Interrupted(PosixSignalContext signal)
            {
                lock (log)
                {
                    if (leader == 0)
                    {
                        signalled = true;
                        signal.Cancel = true;
                        return;
                    }
                }

                if (ProcessGroups.Kill(leader))
                {
                    log.WriteLine($"berth: build of {served} stopped after {started.Elapsed.TotalSeconds:0.0}s ({signal.Signal})");
                }
            }

            using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, Interrupted);
            using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Interrupted);
            using var process = Process.Start(info)!;
            lock (log)
            {
                leader = process.Id;
            }

            if (signalled)
            {
                ProcessGroups.Kill(leader);
                log.WriteLine($"berth: build of {served} stopped as it started (interrupted)");
                throw new OperationCanceledException("interrupted");
            }

            var output = new System.Text.StringBuilder();
            // The build's own output, folded under the service (indented), with the time since it started.
            void Line(string? text)
            {
                if (text is null)
                {
                    return;
                }

                lock (output)
                {
                    output.AppendLine(text);
                    log.WriteLine($"  {started.Elapsed.TotalSeconds,5:0.0}s │ {text}");
                }
            }

            process.OutputDataReceived += (_, e) => Line(e.Data);
            process.ErrorDataReceived += (_, e) => Line(e.Data);
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            // Killed from the cancellation itself, not after an await.
            await using var stop = ct.Register(() => ProcessGroups.Kill(process.Id));
            try
            {
                await process.WaitForExitAsync(ct);
            }
            catch (OperationCanceledException)
            {
                // Ctrl-C (or a newer change in berth watch) stops the build and everything it started: its process group,
                // then any descendant that made a group of its own.
                ProcessGroups.Kill(process.Id);
                try
                {
                    process.Kill(entireProcessTree: true);
                }
                catch (InvalidOperationException)
                {
                    // already gone with its group
                }

                log.WriteLine($"berth: build of {served} stopped after {started.Elapsed.TotalSeconds:0.0}s");
                throw;
            }

            if (process.ExitCode != 0)
            {
                return $"the build of {served} failed (exit code {process.ExitCode}) after {started.Elapsed.TotalSeconds:0.0}s: {string.Join(' ', command)} in {directory}";
            }

            log.WriteLine($"berth: built {served} in {started.Elapsed.TotalSeconds:0.0}s");
        }

        return null;
    }
}
