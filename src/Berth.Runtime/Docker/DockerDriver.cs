using System.Collections.Concurrent;
using System.Formats.Tar;
using System.Globalization;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Text;
using Berth.Core.Build;
using Berth.Core.Diagnostics;
using Berth.Core.Model;
using Berth.Core.Routing;
using Berth.Runtime.Capabilities;
using Berth.Runtime.Logs;
using global::Docker.DotNet;
using global::Docker.DotNet.Models;

namespace Berth.Runtime.Docker;

/// <summary>Runs replicas as Docker containers through the Engine API: host networking, NanoCPUs and memory limits, Berth labels for adoption.</summary>
public sealed class DockerDriver : IWorkloadDriver, IDisposable
{
    private readonly DockerDriverOptions _options;
    private readonly DockerClient _client;
    private readonly string _host;
    private readonly ConcurrentDictionary<string, (ulong CpuNanos, DateTime Read)> _cpuSamples = new();

    /// <summary>Containers this driver stopped or killed: only for these is a 128+n exit code known to be a signal.</summary>
    private readonly ConcurrentDictionary<string, bool> _stopped = new();

    /// <summary>cgroupfs or systemd; a node's cgroup path is a plain cgroupfs path, so it is only passed to a cgroupfs engine.</summary>
    private string _cgroupDriver = "cgroupfs";

    private readonly DockerEndpoint.Choice _endpoint;

    private DockerDriver(DockerDriverOptions options, DockerEndpoint.Choice endpoint, DriverCapabilities capabilities)
    {
        _options = options;
        _endpoint = endpoint;
        _host = endpoint.Host;
        _client = new DockerClientConfiguration(new Uri(_host), defaultTimeout: options.RequestTimeout).CreateClient();
        Capabilities = capabilities;
    }

    public RuntimeKind Kind => RuntimeKind.Docker;

    public DriverCapabilities Capabilities { get; private set; }

    /// <summary>The engine address in use and where it came from, e.g. <c>unix:///var/run/docker.sock (default; DOCKER_HOST is not set)</c>.</summary>
    public string HostDescription => $"{_host} ({_endpoint.Source})";

    /// <summary>Whether the engine runs rootless (its <c>/info</c> security options say <c>name=rootless</c>).</summary>
    public bool Rootless { get; private set; }

    /// <summary>Whether Docker is usable here for this user, and through which engine, in the words <c>berth up</c> prints.</summary>
    public HostCapability Capability => !Capabilities.Available
        ? new HostCapability(HostCapability.Docker, false, Capabilities.UnavailableReason ?? $"not reachable at {HostDescription}", Capabilities.UnavailableReason is null ? UnreachableFix : null)
        : _lost is { } lost
        ? new HostCapability(HostCapability.Docker, false, $"the engine at {HostDescription} stopped answering at {lost.Since.UtcDateTime:HH:mm:ss} UTC ({lost.Why}); " +
            "running containers are kept as they were and routed by their probes, and replicas to start wait for the engine", UnreachableFix)
        : new HostCapability(HostCapability.Docker, true, $"{(Rootless ? "rootless" : "rootful")} engine at {HostDescription}: {Capabilities.LimitsMechanism}");

    /// <summary>The engine answered at first and then stopped (killed, restarting): since when and why; null while it answers.</summary>
    public EngineLoss? Lost => _lost;

    private volatile EngineLoss? _lost;

    private const string UnreachableFix = "start Docker (systemctl start docker, or run dockerd); for rootless Docker: dockerd-rootless-setuptool.sh install, " +
        "then systemctl --user start docker; or set DOCKER_HOST to a running engine";

    /// <summary>The engine address this user should use, found as the driver finds it (DOCKER_HOST, the rootful socket when
    /// usable, else rootless Docker's); for other Engine API clients such as the pipelines' image builds.</summary>
    public static Uri FindEngine(DockerDriverOptions options) => new(DockerEndpoint.Resolve(options).Host);

    /// <summary>Connects and asks the engine what it enforces. Never throws for an unreachable engine: <see cref="DriverCapabilities.Available"/> says so.</summary>
    /// <param name="options">The driver's settings.</param>
    /// <param name="cancellationToken">Stops the connect.</param>
    /// <param name="describeLater">Return once the engine answered its ping, with what it enforces assumed (limits enforced)
    /// until its <c>/info</c> answer arrives; <see cref="Described"/> completes then. The control plane adopts and connects
    /// its data plane meanwhile, and awaits <see cref="Described"/> before it applies (issue #21, round 6).</param>
    public static async Task<DockerDriver> ConnectAsync(DockerDriverOptions options, CancellationToken cancellationToken, bool describeLater = false)
    {
        var driver = new DockerDriver(options, DockerEndpoint.Resolve(options), new DriverCapabilities { Available = false });
        StartupTrace.Mark("docker: client created");
        // /info is asked beside the ping, not after it: the two first calls each paid the client's first-use costs (0.5-1 s
        // each on a loaded machine), one after the other, on the control plane's path to its first create (issue #21, round 6).
        // Its deadline still starts once the engine answered the ping.
        var infoTimeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var describe = driver._client.System.GetSystemInfoAsync(infoTimeout.Token);
        _ = describe.ContinueWith(t =>
        {
            _ = t.Exception; // observed: after a failed ping nobody awaits it
            infoTimeout.Dispose();
        }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        try
        {
            await driver.CallAsync(c => c.System.PingAsync(cancellationToken)).ConfigureAwait(false);
            StartupTrace.Mark("docker: pinged");
        }
        catch (DockerUnavailableException e)
        {
            CancelQuietly(infoTimeout);
            driver.Capabilities = new DriverCapabilities { Available = false, UnavailableReason = e.Message, LimitsMechanism = "none: Docker is not reachable" };
            return driver;
        }
        catch
        {
            CancelQuietly(infoTimeout);
            throw;
        }

        // /info can stall while a busy engine holds its locks; the engine answered its ping, so it is usable either way.
        CancelAfterQuietly(infoTimeout, options.InfoTimeout);
        if (describeLater)
        {
            driver.Capabilities = new DriverCapabilities
            {
                Available = true,
                CpuLimitsEnforced = true,
                MemoryLimitsEnforced = true,
                LimitsMechanism = "docker (describing itself: /info not answered yet; limits assumed enforced, as on any Linux engine)",
            };
            driver.Described = driver.DescribeAsync(describe, options, cancellationToken);
            return driver;
        }

        await driver.DescribeAsync(describe, options, cancellationToken).ConfigureAwait(false);
        return driver;
    }

    /// <summary>Completes once the engine's <c>/info</c> answer (or its timeout) has set <see cref="Capabilities"/>,
    /// <see cref="Rootless"/> and the cgroup driver; already complete unless connected with <c>describeLater</c>.</summary>
    public Task Described { get; private set; } = Task.CompletedTask;

    private async Task DescribeAsync(Task<SystemInfoResponse> describe, DockerDriverOptions options, CancellationToken cancellationToken)
    {
        try
        {
            var info = await describe.ConfigureAwait(false);
            StartupTrace.Mark("docker: described (/info)");
            _cgroupDriver = info.CgroupDriver ?? "cgroupfs";
            Rootless = info.SecurityOptions?.Any(o => o.Contains("name=rootless", StringComparison.Ordinal)) == true;
            Capabilities = new DriverCapabilities
            {
                Available = true,
                CpuLimitsEnforced = info.CPUCfsQuota,
                MemoryLimitsEnforced = info.MemoryLimit,
                LimitsMechanism = $"docker {info.ServerVersion}: cgroup v{info.CgroupVersion} ({info.CgroupDriver} driver)",
            };
        }
        catch (Exception e) when (e is OperationCanceledException or HttpRequestException or IOException && !cancellationToken.IsCancellationRequested)
        {
            Capabilities = new DriverCapabilities
            {
                Available = true,
                CpuLimitsEnforced = true,
                MemoryLimitsEnforced = true,
                LimitsMechanism = $"docker (the engine did not describe itself within {options.InfoTimeout.TotalSeconds:0}s; limits assumed enforced, as on any Linux engine)",
            };
        }
    }

    // The /info call may have completed (and disposed its source) before the ping's answer: a late cancel is a no-op.
    private static void CancelQuietly(CancellationTokenSource source)
    {
        try
        {
            source.Cancel();
        }
        catch (ObjectDisposedException)
        {
        }
    }

    private static void CancelAfterQuietly(CancellationTokenSource source, TimeSpan delay)
    {
        try
        {
            source.CancelAfter(delay);
        }
        catch (ObjectDisposedException)
        {
        }
    }

    public async Task<ReplicaHandle> StartAsync(ReplicaSpec spec, CancellationToken cancellationToken)
    {
        if (string.IsNullOrWhiteSpace(spec.Image))
        {
            throw new ReplicaStartException($"replica {spec.ReplicaId} of service {spec.Service} has no image: set 'image' (or 'build') in the spec, or run it with the process driver");
        }

        // The cgroup driver (a node's cgroup parent) comes with /info: known before the first create.
        await Described.ConfigureAwait(false);
        if (spec.PullPolicy == PullPolicy.Always)
        {
            await PullAsync(spec.Image, $"pull_policy always: pulling '{spec.Image}' failed", cancellationToken).ConfigureAwait(false);
        }

        var files = await MountedFiles.WriteAsync(spec, cancellationToken).ConfigureAwait(false);
        var subpaths = await EnsureVolumesAsync(spec, cancellationToken).ConfigureAwait(false);
        var parameters = CreateParameters(spec, files, subpaths);
        CreateContainerResponse created;
        try
        {
            // Create first: the image is almost always local, and only a missing one costs the extra round trips.
            StartupTrace.Mark($"docker {spec.ReplicaId}: create");
            created = await CreateAsync(spec, parameters, cancellationToken).ConfigureAwait(false);
            StartupTrace.Mark($"docker {spec.ReplicaId}: created");
        }
        catch (DockerApiException e) when (e.StatusCode == System.Net.HttpStatusCode.NotFound)
        {
            if (spec.PullPolicy is PullPolicy.Never or PullPolicy.Build)
            {
                throw new ReplicaStartException($"replica {spec.ReplicaId}: image '{spec.Image}' is not on the Docker engine and pull_policy is {spec.PullPolicy.ToString().ToLowerInvariant()}, so it is not pulled; " +
                    (spec.PullPolicy == PullPolicy.Build ? "berth up builds it from build: unless --no-build is given" : "build or load it (docker load), or use pull_policy missing"), e);
            }

            await EnsureImageAsync(spec.Image, cancellationToken).ConfigureAwait(false);
            created = await CreateAsync(spec, parameters, cancellationToken).ConfigureAwait(false);
        }

        try
        {
            foreach (var sync in spec.Syncs)
            {
                var filter = new Core.Build.WatchFilter(sync.Rule, sync.BuildContext);
                await using var tar = await filter.TarAsync(filter.Files(), sync.Rule.Target!, cancellationToken).ConfigureAwait(false);
                await CopyIntoAsync(created.ID, tar, cancellationToken).ConfigureAwait(false);
            }

            await CallAsync(c => c.Containers.StartContainerAsync(created.ID, new ContainerStartParameters(), cancellationToken)).ConfigureAwait(false);
        }
        catch (DockerApiException e)
        {
            await CallAsync(c => c.Containers.RemoveContainerAsync(created.ID, new ContainerRemoveParameters { Force = true }, CancellationToken.None)).ConfigureAwait(false);
            throw new ReplicaStartException($"replica {spec.ReplicaId} of service {spec.Service} did not start: {ApiMessage(e)}", e);
        }

        Log.ContainerStarted(_options.Logger, created.ID[..12], spec.ReplicaId, spec.App, spec.Service);
        StartupTrace.Mark($"docker {spec.ReplicaId}: started");
        PodNetwork? pod = null;
        if (spec.Pod is not null)
        {
            // The container's network namespace (NetworkMode none: loopback only) is its pod; the mesh enters it by the main pid.
            var inspected = await CallAsync(c => c.Containers.InspectContainerAsync(created.ID, cancellationToken)).ConfigureAwait(false);
            var path = $"/proc/{inspected.State.Pid}/ns/net";
            pod = new PodNetwork(spec.ReplicaId, path) { NamespaceInode = PodSockets.InodeOf(path) };
            StartupTrace.Mark($"docker {spec.ReplicaId}: pod inspected");
        }

        return new ReplicaHandle
        {
            Pod = pod,
            ReplicaId = spec.ReplicaId,
            App = spec.App,
            Service = spec.Service,
            Revision = spec.Revision,
            Kind = RuntimeKind.Docker,
            ContainerId = created.ID,
            StateDirectory = spec.StateDirectory,
        };
    }

    private async Task<CreateContainerResponse> CreateAsync(ReplicaSpec spec, CreateContainerParameters parameters, CancellationToken cancellationToken)
    {
        try
        {
            return await CallAsync(c => c.Containers.CreateContainerAsync(parameters, cancellationToken)).ConfigureAwait(false);
        }
        catch (DockerApiException e) when (e.StatusCode == System.Net.HttpStatusCode.Conflict)
        {
            throw new ReplicaStartException($"replica {spec.ReplicaId}: a container named {parameters.Name} already exists; remove it first (docker rm -f {parameters.Name}) or give the replica another id", e);
        }
        catch (DockerApiException e) when (e.StatusCode != System.Net.HttpStatusCode.NotFound)
        {
            throw new ReplicaStartException($"replica {spec.ReplicaId}: the engine refused to create the container: {ApiMessage(e)}", e);
        }
    }

    public async Task<ReplicaStatus> StopAsync(ReplicaHandle replica, TimeSpan gracePeriod, CancellationToken cancellationToken)
    {
        var id = ContainerId(replica);
        _stopped[id] = true;
        try
        {
            var seconds = (uint)Math.Ceiling(Math.Max(0, gracePeriod.TotalSeconds));
            if (seconds == 0)
            {
                // No grace: SIGKILL now. (A stop with t=0 is dropped from the query as a default value, and the
                // engine would then wait its own 10 s.)
                await CallAsync(c => c.Containers.KillContainerAsync(id, new ContainerKillParameters { Signal = "KILL" }, cancellationToken)).ConfigureAwait(false);
                await CallAsync(c => c.Containers.WaitContainerAsync(id, cancellationToken)).ConfigureAwait(false);
            }
            else
            {
                // The engine does SIGTERM (or the image's STOPSIGNAL), then SIGKILL after the wait, as docker stop.
                await CallAsync(c => c.Containers.StopContainerAsync(id, new ContainerStopParameters { WaitBeforeKillSeconds = seconds }, cancellationToken)).ConfigureAwait(false);
            }
        }
        catch (DockerContainerNotFoundException)
        {
        }
        catch (DockerApiException e) when (e.StatusCode == System.Net.HttpStatusCode.Conflict)
        {
            // Not running: nothing to stop.
        }

        return await InspectAsync(replica, cancellationToken).ConfigureAwait(false);
    }

    public async Task RemoveAsync(ReplicaHandle replica, CancellationToken cancellationToken)
    {
        var id = ContainerId(replica);
        try
        {
            await CallAsync(c => c.Containers.RemoveContainerAsync(id, new ContainerRemoveParameters(), cancellationToken)).ConfigureAwait(false);
        }
        catch (DockerContainerNotFoundException)
        {
        }
        catch (DockerApiException e) when (e.StatusCode == System.Net.HttpStatusCode.Conflict)
        {
            throw new InvalidOperationException($"replica {replica.ReplicaId} is still running; stop it before removing it", e);
        }

        _cpuSamples.TryRemove(id, out _);
        _stopped.TryRemove(id, out _);
    }

    public async Task<ReplicaStatus> InspectAsync(ReplicaHandle replica, CancellationToken cancellationToken)
    {
        var id = ContainerId(replica);
        ContainerInspectResponse inspect;
        try
        {
            inspect = await CallAsync(c => c.Containers.InspectContainerAsync(id, cancellationToken)).ConfigureAwait(false);
        }
        catch (DockerContainerNotFoundException)
        {
            return new ReplicaStatus { State = ReplicaState.Unknown, ContainerId = id, Error = $"container {id[..Math.Min(12, id.Length)]} no longer exists" };
        }

        var state = inspect.State;
        var replicaState = state.Status switch
        {
            "created" => ReplicaState.Created,
            "running" or "paused" or "restarting" => ReplicaState.Running,
            "exited" or "dead" => ReplicaState.Exited,
            _ => ReplicaState.Unknown,
        };
        var exited = replicaState == ReplicaState.Exited;
        return new ReplicaStatus
        {
            State = replicaState,
            ContainerId = inspect.ID,
            Pid = state.Pid > 0 ? (int)state.Pid : null,
            ExitCode = exited ? (int)state.ExitCode : null,
            Signal = exited ? DockerExitStatus.Signal(state.ExitCode, state.OOMKilled, _stopped.ContainsKey(inspect.ID) || _stopped.ContainsKey(id)) : null,
            StartedAt = ParseTime(state.StartedAt),
            FinishedAt = exited ? ParseTime(state.FinishedAt) : null,
            OomKilled = state.OOMKilled,
            Error = string.IsNullOrEmpty(state.Error) ? null : state.Error,
        };
    }

    public async Task<ReplicaStatus> WaitForExitAsync(ReplicaHandle replica, CancellationToken cancellationToken)
    {
        var id = ContainerId(replica);
        try
        {
            await CallAsync(c => c.Containers.WaitContainerAsync(id, cancellationToken)).ConfigureAwait(false);
        }
        catch (DockerContainerNotFoundException)
        {
        }

        return await InspectAsync(replica, cancellationToken).ConfigureAwait(false);
    }

    public async IAsyncEnumerable<LogEntry> GetLogsAsync(ReplicaHandle replica, LogOptions options, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var id = ContainerId(replica);
        var parameters = new ContainerLogsParameters
        {
            ShowStdout = options.Stdout,
            ShowStderr = options.Stderr,
            Follow = options.Follow,
            Timestamps = true,
            Tail = options.Tail?.ToString(CultureInfo.InvariantCulture) ?? "all",
            Since = options.Since is { } since ? (since.ToUnixTimeMilliseconds() / 1000.0).ToString("0.000", CultureInfo.InvariantCulture) : null,
        };
        using var stream = await CallAsync(c => c.Containers.GetContainerLogsAsync(id, false, parameters, cancellationToken)).ConfigureAwait(false);
        var buffer = new byte[81920];
        var partial = new Dictionary<MultiplexedStream.TargetStream, StringBuilder>();
        var decoder = new Dictionary<MultiplexedStream.TargetStream, Decoder>();
        while (true)
        {
            var read = await stream.ReadOutputAsync(buffer, 0, buffer.Length, cancellationToken).ConfigureAwait(false);
            if (read.EOF)
            {
                break;
            }

            if (!partial.TryGetValue(read.Target, out var text))
            {
                partial[read.Target] = text = new StringBuilder();
                decoder[read.Target] = Encoding.UTF8.GetDecoder();
            }

            var chars = new char[Encoding.UTF8.GetMaxCharCount(read.Count)];
            var n = decoder[read.Target].GetChars(buffer, 0, read.Count, chars, 0);
            text.Append(chars, 0, n);
            var logStream = read.Target == MultiplexedStream.TargetStream.StandardError ? LogStream.Stderr : LogStream.Stdout;
            foreach (var entry in TakeLines(text, logStream, options.Since))
            {
                yield return entry;
            }
        }
    }

    public async Task<ReplicaStats> GetStatsAsync(ReplicaHandle replica, CancellationToken cancellationToken)
    {
        var id = ContainerId(replica);
        var sample = await ReadStatsAsync(id, cancellationToken).ConfigureAwait(false);
        if (!_cpuSamples.TryGetValue(id, out var previous) || sample.Read - previous.Read > TimeSpan.FromMinutes(1) || sample.Read <= previous.Read)
        {
            previous = (sample.CPUStats?.CPUUsage?.TotalUsage ?? 0, sample.Read);
            await Task.Delay(_options.StatsSampleWindow, _options.TimeProvider, cancellationToken).ConfigureAwait(false);
            sample = await ReadStatsAsync(id, cancellationToken).ConfigureAwait(false);
        }

        var cpu = sample.CPUStats?.CPUUsage?.TotalUsage ?? 0;
        _cpuSamples[id] = (cpu, sample.Read);

        // The container's own CPU time over the engine's wall time between the two reads (docker stats' ratio, per core).
        var wall = (sample.Read - previous.Read).TotalMilliseconds * 1_000_000;
        var percent = wall > 0 ? (cpu - previous.CpuNanos) / wall * 100 : 0;
        var memory = sample.MemoryStats;
        var usage = (long)(memory?.Usage ?? 0);
        if (memory?.Stats is { } stats)
        {
            // As the docker CLI: page cache the kernel can drop is not the container's working set.
            usage -= (long)(stats.TryGetValue("total_inactive_file", out var v1) ? v1 : stats.TryGetValue("inactive_file", out var v2) ? v2 : 0);
        }

        var limit = (long)(memory?.Limit ?? 0);
        return new ReplicaStats
        {
            CpuPercent = Math.Max(0, percent),
            MemoryUsage = new ByteSize(Math.Max(0, usage)),
            MemoryLimit = limit is > 0 and < long.MaxValue / 2 ? new ByteSize(limit) : null,
            Timestamp = _options.TimeProvider.GetUtcNow(),
        };
    }

    /// <summary>The container's processes: its main pid from the engine, then its cgroup's members from /proc (the engine
    /// runs them on this kernel), so the columns are the process driver's.</summary>
    public async Task<IReadOnlyList<Process.ProcessRow>> TopAsync(ReplicaHandle replica, CancellationToken cancellationToken)
    {
        var inspect = await CallAsync(c => c.Containers.InspectContainerAsync(ContainerId(replica), cancellationToken)).ConfigureAwait(false);
        return inspect.State.Pid > 0 ? Process.ProcessTable.Of((int)inspect.State.Pid) : [];
    }

    /// <summary>Runs the command inside the container through the engine's exec API (no docker CLI needed).</summary>
    /// <summary>Extracts <paramref name="tar"/> at the container's root (docker cp's archive API); its entries carry their full paths.</summary>
    public Task CopyIntoAsync(string containerId, Stream tar, CancellationToken cancellationToken) =>
        CallAsync(c => c.Containers.ExtractArchiveToContainerAsync(containerId, new ContainerPathStatParameters { Path = "/" }, tar, cancellationToken));

    public async Task<ExecResult> ExecAsync(ReplicaHandle replica, IReadOnlyList<string> command, string? workingDirectory, CancellationToken cancellationToken)
    {
        var id = ContainerId(replica);
        var exec = await CallAsync(c => c.Exec.ExecCreateContainerAsync(id, new ContainerExecCreateParameters
        {
            Cmd = [.. command],
            AttachStdout = true,
            AttachStderr = true,
        }, cancellationToken)).ConfigureAwait(false);
        using (var stream = await CallAsync(c => c.Exec.StartAndAttachContainerExecAsync(exec.ID, false, cancellationToken)).ConfigureAwait(false))
        {
            var (stdout, stderr) = await stream.ReadOutputToEndAsync(cancellationToken).ConfigureAwait(false);
            var inspect = await CallAsync(c => c.Exec.InspectContainerExecAsync(exec.ID, cancellationToken)).ConfigureAwait(false);
            return new ExecResult((int)inspect.ExitCode, stdout + stderr);
        }
    }

    public async Task<IReadOnlyList<ReplicaHandle>> ListAsync(string app, CancellationToken cancellationToken)
    {
        var containers = await CallAsync(c => c.Containers.ListContainersAsync(
            new ContainersListParameters
            {
                All = true,
                Filters = new Dictionary<string, IDictionary<string, bool>> { ["label"] = new Dictionary<string, bool> { [$"{BerthLabels.App}={app}"] = true } },
            },
            cancellationToken)).ConfigureAwait(false);
        var handles = new List<ReplicaHandle>();
        foreach (var c in containers
            .Where(c => c.Labels.ContainsKey(BerthLabels.Replica) && c.Labels.ContainsKey(BerthLabels.Service))
            .Where(c => _options.AppId is null || !c.Labels.TryGetValue(BerthLabels.AppId, out var id) || id == _options.AppId)
            .OrderBy(c => c.Labels[BerthLabels.Replica], StringComparer.Ordinal))
        {
            var replica = c.Labels[BerthLabels.Replica];
            handles.Add(new ReplicaHandle
            {
                ReplicaId = replica,
                App = app,
                Service = c.Labels[BerthLabels.Service],
                Revision = c.Labels.TryGetValue(BerthLabels.Revision, out var r) && long.TryParse(r, CultureInfo.InvariantCulture, out var rev) ? rev : 0,
                Kind = RuntimeKind.Docker,
                ContainerId = c.ID,
                Pod = await RefindPodAsync(c, replica, cancellationToken).ConfigureAwait(false),
            });
        }

        return handles;
    }

    /// <summary>The pod of a running container in its own network (NetworkMode none), found again for a control plane that
    /// adopts it: the main pid's network namespace, with its inode (the engine's pid is current; a recorded one may not be).</summary>
    private async Task<PodNetwork?> RefindPodAsync(ContainerListResponse container, string replicaId, CancellationToken cancellationToken)
    {
        if (container.State != "running" || container.NetworkSettings?.Networks?.ContainsKey(PodNetworkMode) != true)
        {
            return null;
        }

        var inspected = await CallAsync(c => c.Containers.InspectContainerAsync(container.ID, cancellationToken)).ConfigureAwait(false);
        var path = $"/proc/{inspected.State.Pid}/ns/net";
        return inspected.State.Running && inspected.State.Pid > 0 ? new PodNetwork(replicaId, path) { NamespaceInode = PodSockets.InodeOf(path) } : null;
    }

    /// <summary>Creates the app's named volumes (labelled <c>berth.app</c> and <c>berth.volume</c>, so <c>berth down -v</c>
    /// finds them) and checks that external ones exist. Returns, per mount with a <c>subpath</c>, the host folder to bind:
    /// the volume's own folder joined with the subpath (the local driver keeps it on this machine), as Engine 26's
    /// VolumeOptions.Subpath does.</summary>
    private async Task<IReadOnlyDictionary<string, string>> EnsureVolumesAsync(ReplicaSpec spec, CancellationToken cancellationToken)
    {
        var subpaths = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var mount in spec.Volumes.Where(v => v.Type == VolumeType.Volume && v.VolumeName is not null))
        {
            VolumeResponse volume;
            if (mount.External)
            {
                try
                {
                    volume = await CallAsync(c => c.Volumes.InspectAsync(mount.VolumeName!, cancellationToken)).ConfigureAwait(false);
                }
                catch (DockerApiException e) when (e.StatusCode == System.Net.HttpStatusCode.NotFound)
                {
                    throw new ReplicaStartException($"replica {spec.ReplicaId}: external volume '{mount.VolumeName}' does not exist; create it (docker volume create {mount.VolumeName}) or drop external: true", e);
                }
            }
            else
            {
                // Creating an existing volume returns it unchanged, so this is also the lookup.
                volume = await CallAsync(c => c.Volumes.CreateAsync(new VolumesCreateParameters
                {
                    Name = mount.VolumeName,
                    Driver = "local",
                    Labels = new Dictionary<string, string> { [BerthLabels.App] = spec.App, [BerthLabels.Volume] = mount.Source! },
                }, cancellationToken)).ConfigureAwait(false);
            }

            if (mount.Subpath is { } subpath)
            {
                var folder = Path.GetFullPath(Path.Combine(volume.Mountpoint, subpath));
                if (!folder.StartsWith(volume.Mountpoint, StringComparison.Ordinal) || !Directory.Exists(folder))
                {
                    throw new ReplicaStartException($"replica {spec.ReplicaId}: subpath '{subpath}' is not a folder in volume '{mount.VolumeName}' (as Compose, it must exist)");
                }

                subpaths[mount.Target] = folder;
            }
        }

        return subpaths;
    }

    /// <summary>Removes the app's named volumes (those Berth created, by label); external volumes are never touched.
    /// Returns the names removed.</summary>
    public async Task<IReadOnlyList<string>> RemoveVolumesAsync(string app, CancellationToken cancellationToken)
    {
        var list = await CallAsync(c => c.Volumes.ListAsync(new VolumesListParameters
        {
            Filters = new Dictionary<string, IDictionary<string, bool>> { ["label"] = new Dictionary<string, bool> { [$"{BerthLabels.App}={app}"] = true } },
        }, cancellationToken)).ConfigureAwait(false);
        var removed = new List<string>();
        foreach (var volume in list.Volumes ?? [])
        {
            await CallAsync(c => c.Volumes.RemoveAsync(volume.Name, force: false, cancellationToken)).ConfigureAwait(false);
            removed.Add(volume.Name);
        }

        return removed;
    }

    private async Task PullAsync(string image, string what, CancellationToken cancellationToken)
    {
        if (await TryPullAsync(image, cancellationToken).ConfigureAwait(false) is { } error)
        {
            throw new ReplicaStartException($"{what}: {error}. No registry may be reachable from here; use pull_policy missing (the local image is used) or build (it is built from build:)");
        }
    }

    /// <summary>Pulls <paramref name="image"/>; returns the engine's error, or null when it was pulled.</summary>
    private async Task<string?> TryPullAsync(string image, CancellationToken cancellationToken)
    {
        var (name, tag) = SplitImage(image);
        string? error = null;
        try
        {
            await CallAsync(c => c.Images.CreateImageAsync(
                new ImagesCreateParameters { FromImage = name, Tag = tag },
                null,
                new Progress(m => error ??= m.Error?.Message ?? (string.IsNullOrEmpty(m.ErrorMessage) ? null : m.ErrorMessage)),
                cancellationToken)).ConfigureAwait(false);
        }
        catch (DockerApiException e)
        {
            error = ApiMessage(e);
        }

        return error;
    }

    /// <summary>Makes sure the image is on the engine: a local image is used as is; a missing one is pulled, with a plain error when no registry answers.</summary>
    public async Task EnsureImageAsync(string image, CancellationToken cancellationToken)
    {
        try
        {
            await CallAsync(c => c.Images.InspectImageAsync(image, cancellationToken)).ConfigureAwait(false);
            return;
        }
        catch (DockerImageNotFoundException)
        {
        }
        catch (DockerApiException e) when (e.StatusCode == System.Net.HttpStatusCode.NotFound)
        {
        }

        Log.Pulling(_options.Logger, image);
        var error = await TryPullAsync(image, cancellationToken).ConfigureAwait(false);

        if (error is null)
        {
            try
            {
                await CallAsync(c => c.Images.InspectImageAsync(image, cancellationToken)).ConfigureAwait(false);
                return;
            }
            catch (DockerApiException e)
            {
                error = ApiMessage(e);
            }
        }

        throw new ReplicaStartException(
            $"image '{image}' is not on the Docker engine and pulling it failed: {error}. If no registry is reachable from here, " +
            "build the image locally (a 'build' section in the spec, or docker build) or load it (docker load), then start again");
    }

    /// <summary>Builds <paramref name="tag"/> from a context folder and a Dockerfile in it, through the engine's API (as <c>docker build</c>).</summary>
    public async Task BuildImageAsync(string contextDirectory, string tag, string dockerfile = "Dockerfile", CancellationToken cancellationToken = default)
    {
        var context = Path.GetFullPath(contextDirectory);
        if (!File.Exists(Path.Combine(context, dockerfile)))
        {
            throw new ReplicaStartException($"cannot build image '{tag}': no {dockerfile} in {context}; check 'build.context' and 'build.dockerfile' in the spec");
        }

        Log.Building(_options.Logger, tag, context);
        using var tar = await BuildContext.CreateTarAsync(context, cancellationToken).ConfigureAwait(false);
        var errors = new List<string>();
        var output = new StringBuilder();
        await CallAsync(c => c.Images.BuildImageFromDockerfileAsync(
            new ImageBuildParameters { Tags = [tag], Dockerfile = dockerfile, Remove = true, ForceRemove = true },
            tar,
            null,
            null,
            new Progress(m =>
            {
                output.Append(m.Stream);
                if (m.Error?.Message is { Length: > 0 } err)
                {
                    errors.Add(err);
                }
                else if (!string.IsNullOrEmpty(m.ErrorMessage))
                {
                    errors.Add(m.ErrorMessage);
                }
            }),
            cancellationToken)).ConfigureAwait(false);
        if (errors.Count > 0)
        {
            throw new ReplicaStartException($"building image '{tag}' from {context} failed: {string.Join("; ", errors)}");
        }
    }

    public void Dispose() => _client.Dispose();

    /// <summary>The engine keeps a container's logs with the replica's rotation (issue #14 §5): json-file (Docker's default driver,
    /// which alone never rotates unless told) or the spec's local driver, with <c>max-size</c>/<c>max-file</c> from
    /// <see cref="ReplicaSpec.Logging"/> in bytes, as <c>docker run --log-opt</c> takes them.</summary>
    internal static LogConfig LogConfigFor(ContainerOptions c, LogRotation rotation)
    {
        var options = c.LogOptions.ToDictionary();
        // The loader moves Compose's max-size/max-file into the rotation; options given to the driver directly still win.
        options.TryAdd("max-size", rotation.MaxSize.Bytes.ToString(CultureInfo.InvariantCulture));
        options.TryAdd("max-file", rotation.MaxFiles.ToString(CultureInfo.InvariantCulture));
        return new LogConfig { Type = c.LogDriver ?? "json-file", Config = options };
    }

    internal CreateContainerParameters CreateParameters(ReplicaSpec spec, IReadOnlyList<(MountedFile File, string HostPath)>? files = null,
        IReadOnlyDictionary<string, string>? subpaths = null)
    {
        var labels = new Dictionary<string, string>(spec.Labels, StringComparer.Ordinal)
        {
            [BerthLabels.App] = spec.App,
            [BerthLabels.Service] = spec.Service,
            [BerthLabels.Replica] = spec.ReplicaId,
            [BerthLabels.Revision] = spec.Revision.ToString(CultureInfo.InvariantCulture),
        };
        if (_options.AppId is { } appId)
        {
            labels[BerthLabels.AppId] = appId;
        }

        var env = new SortedDictionary<string, string>(StringComparer.Ordinal);
        if (spec.Ports.Count == 1 && !spec.Env.ContainsKey("PORT"))
        {
            env["PORT"] = spec.Ports.Values.First().ToString(CultureInfo.InvariantCulture);
        }

        foreach (var (key, value) in spec.Env)
        {
            env[key] = value;
        }

        IList<string>? entrypoint = spec.Entrypoint is { } ep ? [.. ep] : null;
        IList<string>? cmd = spec.Command.IsDefaultOrEmpty ? null : [.. spec.Command];
        if (spec.Shell)
        {
            // The spec asked for a shell: the words become one script for sh -c, as Compose's string form.
            var script = string.Join(' ', (entrypoint ?? []).Concat(cmd ?? []));
            entrypoint = ["/bin/sh", "-c"];
            cmd = [script];
        }

        var memory = spec.MemoryLimit?.Bytes ?? 0;
        var c = spec.Container;
        var mounts = spec.Volumes.Select(v => Mount(v, subpaths)).ToList();
        mounts.AddRange((files ?? []).Select(f => new Mount { Type = "bind", Source = f.HostPath, Target = f.File.Target, ReadOnly = true }));
        return new CreateContainerParameters
        {
            Name = ContainerName(spec.App, spec.ReplicaId),
            Image = spec.Image,
            Entrypoint = entrypoint,
            Cmd = cmd,
            Env = [.. env.Select(kv => $"{kv.Key}={kv.Value}")],
            WorkingDir = spec.WorkingDir,
            User = spec.User,
            Labels = labels,
            StopSignal = c.StopSignal,
            Hostname = c.Hostname,
            HostConfig = new HostConfig
            {
                NetworkMode = spec.Pod is null ? _options.NetworkMode : PodNetworkMode,
                NanoCPUs = (spec.CpuLimit?.MilliCores ?? 0) * 1_000_000,
                Memory = memory,

                // memory + swap = memory: no swapping past the limit, as Kubernetes.
                MemorySwap = memory,
                CgroupParent = spec.Node is null || _cgroupDriver != "cgroupfs" ? null : $"/{_options.CgroupSubtree}/{spec.Node}",
                Mounts = mounts,

                // Compose's container options, as docker compose passes them to the engine.
                Init = c.Init,
                ReadonlyRootfs = c.ReadOnly,
                Privileged = c.Privileged,
                Tmpfs = c.Tmpfs.IsDefaultOrEmpty ? null : c.Tmpfs.ToDictionary(t => t.Split(':', 2)[0], t => t.Contains(':', StringComparison.Ordinal) ? t.Split(':', 2)[1] : ""),
                CapAdd = c.CapAdd.IsDefaultOrEmpty ? null : [.. c.CapAdd],
                CapDrop = c.CapDrop.IsDefaultOrEmpty ? null : [.. c.CapDrop],
                Ulimits = c.Ulimits.IsEmpty ? null : [.. c.Ulimits.Select(u => new global::Docker.DotNet.Models.Ulimit { Name = u.Key, Soft = u.Value.Soft, Hard = u.Value.Hard })],
                Sysctls = c.Sysctls.IsEmpty ? null : c.Sysctls.ToDictionary(),
                ShmSize = c.ShmSize?.Bytes ?? 0,
                SecurityOpt = c.SecurityOpt.IsDefaultOrEmpty ? null : [.. c.SecurityOpt],
                Devices = c.Devices.IsDefaultOrEmpty ? null : [.. c.Devices.Select(Device)],
                ExtraHosts = spec.Pod is { } pod
                    ? [.. pod.Hosts.Select(h => $"{h.Key}:{h.Value}")]
                    : c.ExtraHosts.IsDefaultOrEmpty ? null : [.. c.ExtraHosts],
                GroupAdd = c.GroupAdd.IsDefaultOrEmpty ? null : [.. c.GroupAdd],
                PidsLimit = c.PidsLimit,
                LogConfig = LogConfigFor(c, spec.Logging),
            },
        };
    }

    private static Mount Mount(VolumeMount v, IReadOnlyDictionary<string, string>? subpaths)
    {
        if (v.Type == VolumeType.Volume && subpaths?.TryGetValue(v.Target, out var folder) == true)
        {
            return new Mount { Type = "bind", Source = folder, Target = v.Target, ReadOnly = v.ReadOnly };
        }

        if (v.Type == VolumeType.Bind && v.CreateHostPath && v.Source is { } source && !Path.Exists(source))
        {
            Directory.CreateDirectory(source); // Compose's create_host_path (the engine's Mounts API would refuse a missing source)
        }

        return new Mount
        {
            Type = v.Type switch { VolumeType.Bind => "bind", VolumeType.Tmpfs => "tmpfs", VolumeType.Volume => "volume" },
            Source = v.Type == VolumeType.Volume ? v.VolumeName ?? v.Source : v.Source,
            Target = v.Target,
            ReadOnly = v.ReadOnly,
            VolumeOptions = v.NoCopy ? new VolumeOptions { NoCopy = true } : null,
            TmpfsOptions = v.TmpfsSize is null && v.TmpfsMode is null ? null : new TmpfsOptions { SizeBytes = v.TmpfsSize?.Bytes ?? 0, Mode = (uint)(v.TmpfsMode ?? 0b1_111_111_111) },
        };
    }

    /// <summary><c>HOST[:CONTAINER[:PERMISSIONS]]</c>, as docker run --device.</summary>
    private static DeviceMapping Device(string text)
    {
        var parts = text.Split(':');
        return new DeviceMapping
        {
            PathOnHost = parts[0],
            PathInContainer = parts.Length > 1 ? parts[1] : parts[0],
            CgroupPermissions = parts.Length > 2 ? parts[2] : "rwm",
        };
    }

    internal static string ContainerName(string app, string replicaId) => $"berth-{app}-{replicaId}";

    /// <summary>A replica in a pod: a network namespace of its own holding only loopback, as Docker's <c>none</c> network.</summary>
    private const string PodNetworkMode = "none";

    private static IEnumerable<LogEntry> TakeLines(StringBuilder text, LogStream stream, DateTimeOffset? since)
    {
        List<LogEntry> entries = [];
        var s = text.ToString();
        var start = 0;
        int nl;
        while ((nl = s.IndexOf('\n', start)) >= 0)
        {
            var line = s[start..nl];
            start = nl + 1;
            var entry = ParseDockerLine(line, stream);
            if (since is null || entry.Timestamp >= since)
            {
                entries.Add(entry);
            }
        }

        text.Remove(0, start);
        return entries;
    }

    /// <summary>Docker's <c>timestamps=true</c> lines: RFC 3339 with nanoseconds, a space, the text.</summary>
    internal static LogEntry ParseDockerLine(string line, LogStream stream)
    {
        var space = line.IndexOf(' ', StringComparison.Ordinal);
        if (space > 0 && ParseTime(line[..space]) is { } ts)
        {
            return new LogEntry(ts, stream, line[(space + 1)..]);
        }

        return new LogEntry(default, stream, line);
    }

    /// <summary>Parses the engine's RFC 3339 times (nanoseconds, which .NET cannot hold, are cut to 100 ns ticks).</summary>
    internal static DateTimeOffset? ParseTime(string? text)
    {
        if (string.IsNullOrEmpty(text) || text.StartsWith("0001-01-01", StringComparison.Ordinal))
        {
            return null;
        }

        var s = text;
        var dot = s.IndexOf('.', StringComparison.Ordinal);
        if (dot > 0)
        {
            var end = dot + 1;
            while (end < s.Length && char.IsAsciiDigit(s[end]))
            {
                end++;
            }

            if (end - dot - 1 > 7)
            {
                s = s[..(dot + 8)] + s[end..];
            }
        }

        return DateTimeOffset.TryParse(s, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var value) ? value : null;
    }

    private static (string Name, string Tag) SplitImage(string image)
    {
        var at = image.IndexOf('@', StringComparison.Ordinal);
        if (at > 0)
        {
            return (image[..at], image[(at + 1)..]);
        }

        var colon = image.LastIndexOf(':');
        return colon > image.LastIndexOf('/') ? (image[..colon], image[(colon + 1)..]) : (image, "latest");
    }

    private async Task<ContainerStatsResponse> ReadStatsAsync(string id, CancellationToken cancellationToken)
    {
        ContainerStatsResponse? response = null;
        await CallAsync(c => c.Containers.GetContainerStatsAsync(id, new ContainerStatsParameters { Stream = false, OneShot = true }, new StatsProgress(r => response = r), cancellationToken)).ConfigureAwait(false);
        return response ?? throw new InvalidOperationException($"the engine returned no stats for container {id[..12]}");
    }

    private static string ContainerId(ReplicaHandle replica) =>
        replica.ContainerId ?? ContainerName(replica.App, replica.ReplicaId);

    private static string ApiMessage(DockerApiException e)
    {
        var body = e.ResponseBody?.Trim() ?? "";
        try
        {
            using var doc = System.Text.Json.JsonDocument.Parse(body);
            if (doc.RootElement.TryGetProperty("message", out var message))
            {
                return message.GetString() ?? body;
            }
        }
        catch (System.Text.Json.JsonException)
        {
        }

        return body.Length > 0 ? body : e.Message;
    }

    /// <summary>Every engine call goes through here so an unreachable engine gives one clear error, never a stack trace, and
    /// <see cref="Lost"/> says whether the engine answers now.</summary>
    private async Task<T> CallAsync<T>(Func<DockerClient, Task<T>> call)
    {
        try
        {
            var result = await call(_client).ConfigureAwait(false);
            _lost = null;
            return result;
        }
        catch (Exception e) when (IsUnreachable(e))
        {
            throw Unreachable(e);
        }
    }

    private async Task CallAsync(Func<DockerClient, Task> call)
    {
        try
        {
            await call(_client).ConfigureAwait(false);
            _lost = null;
        }
        catch (Exception e) when (IsUnreachable(e))
        {
            throw Unreachable(e);
        }
    }

    private static bool IsUnreachable(Exception e) =>
        e is HttpRequestException or SocketException or IOException || (e is TimeoutException && e is not OperationCanceledException)
        || (e.InnerException is { } inner && IsUnreachable(inner));

    private DockerUnavailableException Unreachable(Exception e)
    {
        var cause = e;
        while (cause.InnerException is not null)
        {
            cause = cause.InnerException;
        }

        var where = _endpoint.Tried.Count > 0
            ? $": tried {string.Join(", ", _endpoint.Tried)}"
            : $" at {HostDescription}: {cause.Message.TrimEnd('.')}";
        if (Capabilities.Available)
        {
            _lost ??= new EngineLoss(_options.TimeProvider.GetUtcNow(), cause.Message.TrimEnd('.'));
        }

        return new DockerUnavailableException(
            $"Docker engine not reachable{where}. Start Docker (systemctl start docker, or run dockerd), " +
            "or set DOCKER_HOST to a running engine (rootless Docker: unix://$XDG_RUNTIME_DIR/docker.sock); the process driver needs no Docker.",
            e);
    }

    private sealed class Progress(Action<JSONMessage> report) : IProgress<JSONMessage>
    {
        public void Report(JSONMessage value) => report(value);
    }

    private sealed class StatsProgress(Action<ContainerStatsResponse> report) : IProgress<ContainerStatsResponse>
    {
        public void Report(ContainerStatsResponse value) => report(value);
    }
}
