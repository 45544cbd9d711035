using Berth.Runtime.Capabilities;
using Berth.Runtime.Docker;
using Berth.Testing;

namespace Berth.Runtime.Tests.Capabilities;

/// <summary>Issue #18: network namespaces and the Docker socket, decided by trying them on this machine.</summary>
public sealed class CapabilityProbeTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("berth-probe-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void NetworkNamespaces_ThisMachine_UsableWithTheCommandTried()
    {
        var capability = NetworkNamespaceProbe.Run(HostUser.Uid);

        var expected = HostUser.IsRoot
            ? "usable: root made a network namespace (unshare --net); isolated services run in pods (Docker services by default, process services with network: isolated)"
            : $"usable: uid {HostUser.Uid} made a user namespace with its own network namespace (unshare --user --map-root-user --net); process services with network: isolated run in pods; Docker services share the host network (the mesh cannot enter a container's namespace without root)";
        Assert.Equal(new HostCapability("network-namespaces", true, expected), capability);
    }

    [Fact]
    public void NetworkNamespaces_UserNamespacesTurnedOff_NotUsableWithTheSysctlThatFixesIt()
    {
        // An unshare that fails as the kernel makes it fail where user.max_user_namespaces is 0.
        var unshare = Path.Combine(_dir, "unshare");
        File.WriteAllText(unshare, "#!/bin/sh\necho 'unshare: unshare failed: No space left on device' >&2\nexit 1\n");
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(unshare, UnixFileMode.UserRead | UnixFileMode.UserExecute | UnixFileMode.UserWrite);
        }
        var procSys = Path.Combine(_dir, "sys");
        Directory.CreateDirectory(Path.Combine(procSys, "user"));
        File.WriteAllText(Path.Combine(procSys, "user", "max_user_namespaces"), "0\n");

        var capability = NetworkNamespaceProbe.Run(1000, unshare, procSys);

        Assert.Equal(new HostCapability("network-namespaces", false,
            "not usable: unshare --user --map-root-user --net failed for uid 1000: unshare: unshare failed: No space left on device; replicas share the host network, isolated services included",
            "allow user namespaces: sysctl -w user.max_user_namespaces=15000"), capability);
        Assert.Equal("network-namespaces: not usable: unshare --user --map-root-user --net failed for uid 1000: unshare: unshare failed: No space left on device; " +
            "replicas share the host network, isolated services included; fix: allow user namespaces: sysctl -w user.max_user_namespaces=15000", capability.Message);
    }

    [Fact]
    public void NetworkNamespaces_AppArmorRestriction_FixNamesIt()
    {
        var procSys = Path.Combine(_dir, "sys");
        Directory.CreateDirectory(Path.Combine(procSys, "kernel"));
        File.WriteAllText(Path.Combine(procSys, "kernel", "apparmor_restrict_unprivileged_userns"), "1\n");

        var capability = NetworkNamespaceProbe.Run(1000, "false", procSys);

        Assert.False(capability.Usable);
        Assert.Equal("not usable: unshare --user --map-root-user --net failed for uid 1000: exit code 1; replicas share the host network, isolated services included", capability.Detail);
        Assert.StartsWith("Ubuntu's AppArmor forbids unprivileged user namespaces: sysctl -w kernel.apparmor_restrict_unprivileged_userns=0", capability.Fix, StringComparison.Ordinal);
    }

    [DockerFact]
    public async Task ConnectAsync_DefaultSocketMissing_FindsRootlessSocketInXdgRuntimeDir()
    {
        // The engine's real socket, reached as rootless Docker's would be: $XDG_RUNTIME_DIR/docker.sock.
        var engine = Environment.GetEnvironmentVariable("DOCKER_HOST") is { } host && host.StartsWith("unix://", StringComparison.Ordinal) ? host["unix://".Length..] : "/var/run/docker.sock";
        var xdg = Path.Combine(_dir, "run-user");
        Directory.CreateDirectory(xdg);
        File.CreateSymbolicLink(Path.Combine(xdg, "docker.sock"), engine);
        var missing = $"unix://{_dir}/no-docker.sock";
        var saved = Environment.GetEnvironmentVariable("DOCKER_HOST");
        Environment.SetEnvironmentVariable("DOCKER_HOST", null);
        try
        {
            using var driver = await DockerDriver.ConnectAsync(new DockerDriverOptions { DefaultSocket = missing, XdgRuntimeDir = xdg }, CancellationToken.None);

            Assert.True(driver.Capabilities.Available, driver.Capabilities.UnavailableReason);
            Assert.Equal($"unix://{xdg}/docker.sock (rootless Docker's socket in $XDG_RUNTIME_DIR; DOCKER_HOST is not set and {missing} is not usable: no such socket)", driver.HostDescription);
            Assert.True(driver.Capability.Usable);
            Assert.StartsWith($"docker: rootful engine at unix://{xdg}/docker.sock (", driver.Capability.Message, StringComparison.Ordinal); // this engine itself runs as root
        }
        finally
        {
            Environment.SetEnvironmentVariable("DOCKER_HOST", saved);
        }
    }

    [Fact]
    public void FindEngine_DefaultSocketRefused_RootlessSocketListeningInXdgRuntimeDirChosen()
    {
        var xdg = Path.Combine(_dir, "run-user");
        Directory.CreateDirectory(xdg);
        using var rootless = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified);
        rootless.Bind(new System.Net.Sockets.UnixDomainSocketEndPoint(Path.Combine(xdg, "docker.sock")));
        rootless.Listen();
        var stale = Path.Combine(_dir, "stale.sock"); // a socket file nothing listens on any more
        using (var gone = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified))
        {
            gone.Bind(new System.Net.Sockets.UnixDomainSocketEndPoint(stale));
        }

        var saved = Environment.GetEnvironmentVariable("DOCKER_HOST");
        Environment.SetEnvironmentVariable("DOCKER_HOST", null);
        try
        {
            Assert.Equal(new Uri($"unix://{xdg}/docker.sock"), DockerDriver.FindEngine(new DockerDriverOptions { DefaultSocket = $"unix://{stale}", XdgRuntimeDir = xdg }));

            // Where the rootful socket answers, it wins (as the docker CLI's default context).
            using var rootful = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified);
            rootful.Bind(new System.Net.Sockets.UnixDomainSocketEndPoint(Path.Combine(_dir, "rootful.sock")));
            rootful.Listen();
            Assert.Equal(new Uri($"unix://{_dir}/rootful.sock"), DockerDriver.FindEngine(new DockerDriverOptions { DefaultSocket = $"unix://{_dir}/rootful.sock", XdgRuntimeDir = xdg }));
        }
        finally
        {
            Environment.SetEnvironmentVariable("DOCKER_HOST", saved);
        }
    }

    [Fact]
    public async Task ConnectAsync_NoSocketAnswers_ErrorNamesEverySocketTried()
    {
        var xdg = Path.Combine(_dir, "run-user");
        Directory.CreateDirectory(xdg);
        var missing = $"unix://{_dir}/no-docker.sock";
        var saved = Environment.GetEnvironmentVariable("DOCKER_HOST");
        Environment.SetEnvironmentVariable("DOCKER_HOST", null);
        try
        {
            using var driver = await DockerDriver.ConnectAsync(new DockerDriverOptions { DefaultSocket = missing, XdgRuntimeDir = xdg }, CancellationToken.None);

            Assert.False(driver.Capabilities.Available);
            Assert.Equal($"Docker engine not reachable: tried {missing} (no such socket), unix://{xdg}/docker.sock (no such socket). Start Docker (systemctl start docker, or run dockerd), " +
                "or set DOCKER_HOST to a running engine (rootless Docker: unix://$XDG_RUNTIME_DIR/docker.sock); the process driver needs no Docker.", driver.Capabilities.UnavailableReason);
            Assert.Equal($"docker: {driver.Capabilities.UnavailableReason}", driver.Capability.Message);
        }
        finally
        {
            Environment.SetEnvironmentVariable("DOCKER_HOST", saved);
        }
    }
}
