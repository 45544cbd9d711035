using System.Net.Sockets;

namespace Berth.Testing;

/// <summary>A fact that needs a Docker engine: skips with a reason on a laptop without one, fails in CI (BERTH_REQUIRE_DOCKER=1).</summary>
public sealed class DockerFactAttribute : FactAttribute
{
    public DockerFactAttribute()
    {
        if (!Environments.DockerAvailable && !Environments.Required("BERTH_REQUIRE_DOCKER"))
        {
            Skip = "Docker engine not reachable (set DOCKER_HOST or start dockerd; CI sets BERTH_REQUIRE_DOCKER=1 so this fails there instead)";
        }
    }
}

/// <summary>A fact that needs writable cgroups (root, cgroup v1 controllers or a delegated v2 subtree).</summary>
public sealed class CgroupFactAttribute : FactAttribute
{
    public CgroupFactAttribute()
    {
        if (!Environments.CgroupsWritable && !Environments.Required("BERTH_REQUIRE_CGROUPS"))
        {
            Skip = "no writable cgroup hierarchy here (needs root with cgroup v1 cpu/memory or a delegated cgroup v2 subtree; CI sets BERTH_REQUIRE_CGROUPS=1)";
        }
    }
}

/// <summary>A fact that needs the Kubernetes schema validator (node and the npm packages .ci/setup-k8s.sh installs in
/// tests/Berth.Kubernetes.Tests/SchemaValidator): skips with a reason without them, fails in CI (BERTH_REQUIRE_NODE_VALIDATOR=1).</summary>
public sealed class NodeValidatorFactAttribute : FactAttribute
{
    public NodeValidatorFactAttribute() => Skip = SkipReason;

    /// <summary>Why a test that needs the validator skips here, or null where it runs.</summary>
    internal static string? SkipReason => Environments.NodeValidatorInstalled || Environments.Required("BERTH_REQUIRE_NODE_VALIDATOR")
        ? null
        : $"needs node and 'npm ci' in {Environments.NodeValidatorDirectory} (.ci/setup-k8s.sh does both; CI sets BERTH_REQUIRE_NODE_VALIDATOR=1 so this fails there instead)";
}

/// <summary>The theory form of <see cref="NodeValidatorFactAttribute"/>: the same skip rule, one row a case.</summary>
public sealed class NodeValidatorTheoryAttribute : TheoryAttribute
{
    public NodeValidatorTheoryAttribute() => Skip = NodeValidatorFactAttribute.SkipReason;
}

/// <summary>A fact that drives a real Chromium (Debian's <c>chromium</c>, installed by .ci/setup-browser.sh) through Playwright:
/// skips with a reason where it is not installed, fails in CI (BERTH_REQUIRE_BROWSER=1).</summary>
public sealed class BrowserFactAttribute : FactAttribute
{
    public BrowserFactAttribute()
    {
        if (Environments.Chromium is null && !Environments.Required("BERTH_REQUIRE_BROWSER"))
        {
            Skip = "no chromium here (apt-get install chromium, or bash .ci/setup-browser.sh; CI sets BERTH_REQUIRE_BROWSER=1 so this fails there instead)";
        }
    }
}

/// <summary>A fact that runs a real shell (zsh, fish; installed by .ci/setup-shells.sh): skips with a reason where it is not
/// installed, fails in CI (BERTH_REQUIRE_NO_SKIPS=1).</summary>
public sealed class ShellFactAttribute : FactAttribute
{
    public ShellFactAttribute(params string[] shells)
    {
        var missing = shells.Where(s => !Environments.OnPath(s)).ToList();
        if (missing.Count > 0 && !Environments.Required("BERTH_REQUIRE_NO_SKIPS"))
        {
            Skip = $"no {string.Join(" or ", missing)} here (bash .ci/setup-shells.sh; CI sets BERTH_REQUIRE_NO_SKIPS=1 so this fails there instead)";
        }
    }
}

/// <summary>What the machine running the tests has.</summary>
public static class Environments
{
    public static bool Required(string variable) => Environment.GetEnvironmentVariable(variable) == "1";

    public static bool DockerAvailable { get; } = ProbeDocker();

    /// <summary>The chromium executable to launch through Playwright's ExecutablePath (BERTH_CHROMIUM, else Debian's), or null.</summary>
    public static string? Chromium { get; } = new[] { Environment.GetEnvironmentVariable("BERTH_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser" }
        .FirstOrDefault(p => !string.IsNullOrEmpty(p) && File.Exists(p));

    public static bool CgroupsWritable { get; } = ProbeCgroups();

    /// <summary>Where the Kubernetes schema validator's package.json and node_modules live.</summary>
    public static string NodeValidatorDirectory => Repository.Path("tests/Berth.Kubernetes.Tests/SchemaValidator");

    public static bool NodeValidatorInstalled { get; } = OnPath("node")
        && Directory.Exists(Path.Combine(NodeValidatorDirectory, "node_modules", "kubernetes-models"))
        && Directory.Exists(Path.Combine(NodeValidatorDirectory, "node_modules", "@kubernetes-models", "istio"))
        && Directory.Exists(Path.Combine(NodeValidatorDirectory, "node_modules", "@kubernetes", "client-node"))
        && Directory.Exists(Path.Combine(NodeValidatorDirectory, "node_modules", "@evertdespiegeleer", "go-template"));

    /// <summary>Whether <paramref name="program"/> is a file in one of PATH's folders.</summary>
    public static bool OnPath(string program) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator).Any(d => File.Exists(Path.Combine(d, program)));

    private static bool ProbeDocker()
    {
        var host = Environment.GetEnvironmentVariable("DOCKER_HOST");
        var path = host is not null && host.StartsWith("unix://", StringComparison.Ordinal) ? host["unix://".Length..] : "/var/run/docker.sock";
        if (host is not null && !host.StartsWith("unix://", StringComparison.Ordinal))
        {
            return true; // tcp hosts: let the test try and report
        }

        try
        {
            using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            socket.Connect(new UnixDomainSocketEndPoint(path));
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    private static bool ProbeCgroups()
    {
        try
        {
            string[] candidates = ["/sys/fs/cgroup/memory", "/sys/fs/cgroup"];
            foreach (var dir in candidates)
            {
                if (!Directory.Exists(dir))
                {
                    continue;
                }

                var probe = Path.Combine(dir, $"berth-probe-{Environment.ProcessId}");
                try
                {
                    Directory.CreateDirectory(probe);
                    Directory.Delete(probe);
                    return true;
                }
                catch (Exception e) when (e is UnauthorizedAccessException or IOException)
                {
                }
            }
        }
        catch (Exception e) when (e is UnauthorizedAccessException or IOException)
        {
        }

        return false;
    }
}

/// <summary>Waiting without sleeping blindly: poll a condition until a deadline, then fail saying what was expected.</summary>
public static class Poll
{
    public static async Task UntilAsync(Func<Task<bool>> condition, TimeSpan timeout, string expectation, TimeSpan? interval = null)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            if (await condition())
            {
                return;
            }

            if (DateTime.UtcNow >= deadline)
            {
                throw new TimeoutException($"Timed out after {timeout.TotalSeconds:0.#}s waiting for: {expectation}");
            }

            await Task.Delay(interval ?? TimeSpan.FromMilliseconds(50));
        }
    }

    public static Task UntilAsync(Func<bool> condition, TimeSpan timeout, string expectation, TimeSpan? interval = null) =>
        UntilAsync(() => Task.FromResult(condition()), timeout, expectation, interval);
}

/// <summary>
/// Free loopback ports for test servers, taken from 20000-32767: below the kernel's ephemeral range (32768-60999 by
/// default), so a port handed out here cannot be given meanwhile to a socket that binds port 0 (a data plane's admin
/// listener, an API server, an outgoing connection). A port from bind(0) could: one was, in a CI run, taken by the
/// data plane's admin listener before the test's spec bound it. Each process walks the range from its own pid-derived
/// start, so test processes running side by side rarely meet, and a port is only handed out when binding it works.
/// </summary>
public static class Ports
{
    private const int First = 20_000;
    private const int Count = 32_768 - First;
    private static int _next = (Environment.ProcessId * 7_919) % Count;

    public static int Free()
    {
        for (var i = 0; i < Count; i++)
        {
            var port = First + (int)((uint)Interlocked.Increment(ref _next) % Count);
            if (Bindable(System.Net.IPAddress.Loopback, port) && Bindable(System.Net.IPAddress.Any, port))
            {
                return port;
            }
        }

        throw new InvalidOperationException($"no free port in {First}-{First + Count - 1}");
    }

    private static bool Bindable(System.Net.IPAddress address, int port)
    {
        try
        {
            using var listener = new System.Net.Sockets.TcpListener(address, port);
            listener.Start();
            return true;
        }
        catch (System.Net.Sockets.SocketException)
        {
            return false;
        }
    }
}
