using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Berth.Runtime.Docker;

/// <summary>Settings of the Docker driver; every default is named in <see cref="DockerDriverDefaults"/>.</summary>
public sealed record DockerDriverOptions
{
    /// <summary>The engine's address; null: <c>DOCKER_HOST</c>, else <see cref="DefaultSocket"/> when this user may use it,
    /// else rootless Docker's <c>$XDG_RUNTIME_DIR/docker.sock</c>, as the docker CLI and its rootless context.</summary>
    public string? Host { get; init; }

    /// <summary>The rootful engine's socket: <c>unix:///var/run/docker.sock</c>, as the docker CLI.</summary>
    public string DefaultSocket { get; init; } = DockerDriverDefaults.DefaultSocket;

    /// <summary>Where rootless Docker's socket is looked for; null: <c>$XDG_RUNTIME_DIR</c>, else <c>/run/user/UID</c> (as the docker CLI).</summary>
    public string? XdgRuntimeDir { get; init; }

    /// <summary><c>host</c>: containers share the machine's network, so the mesh reaches them on 127.0.0.1 (Berth's network rule).</summary>
    public string NetworkMode { get; init; } = DockerDriverDefaults.NetworkMode;

    /// <summary>Berth's cgroup subtree (as the process driver's): a replica on a node runs under <c>/{subtree}/{node}</c> where the engine uses cgroupfs.</summary>
    public string CgroupSubtree { get; init; } = DockerDriverDefaults.CgroupSubtree;

    /// <summary>How long a single engine call may take before Docker is reported unreachable: 100 s, as Docker.DotNet's default.</summary>
    public TimeSpan RequestTimeout { get; init; } = DockerDriverDefaults.RequestTimeout;

    /// <summary>How long <see cref="DockerDriver.ConnectAsync"/> waits for the engine to describe itself (/info) after it answered its ping: 10 s.</summary>
    public TimeSpan InfoTimeout { get; init; } = DockerDriverDefaults.InfoTimeout;

    /// <summary>See <see cref="RuntimeDefaults.StatsSampleWindow"/>.</summary>
    public TimeSpan StatsSampleWindow { get; init; } = RuntimeDefaults.StatsSampleWindow;

    /// <summary>The app's identity (<c>.berth/app-id</c>): put on every container as <see cref="BerthLabels.AppId"/>, and
    /// <see cref="DockerDriver.ListAsync"/> finds only containers that carry it (or none: made before app ids), so a
    /// same-named app in another folder is never adopted or collected. Null: containers are found by app name alone.</summary>
    public string? AppId { get; init; }

    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    public ILogger Logger { get; init; } = NullLogger.Instance;
}

/// <summary>Defaults of <see cref="DockerDriverOptions"/>.</summary>
public static class DockerDriverDefaults
{
    public const string DefaultSocket = "unix:///var/run/docker.sock";

    public const string NetworkMode = "host";

    public const string CgroupSubtree = "berth";

    public static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(100);

    public static readonly TimeSpan InfoTimeout = TimeSpan.FromSeconds(10);
}

/// <summary>The labels that let a restarted control plane find its containers again (DESIGN.md).</summary>
public static class BerthLabels
{
    public const string App = "berth.app";
    public const string Service = "berth.service";
    public const string Replica = "berth.replica";
    public const string Revision = "berth.revision";

    /// <summary>The app's random id from its state folder: which of two same-named apps a container belongs to.</summary>
    public const string AppId = "berth.app-id";

    /// <summary>On a named volume: its name in the spec.</summary>
    public const string Volume = "berth.volume";
}

/// <summary>The Docker engine cannot be reached; the message names the address (DOCKER_HOST) and how to start Docker.</summary>
public sealed class DockerUnavailableException(string message, Exception? inner = null) : RuntimeUnavailableException(message, inner);

/// <summary>The engine stopped answering at <paramref name="Since"/>, as <paramref name="Why"/> says (e.g. "Connection refused").</summary>
public sealed record EngineLoss(DateTimeOffset Since, string Why);
