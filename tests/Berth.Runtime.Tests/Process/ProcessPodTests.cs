using System.Net.Sockets;
using Berth.Core.Routing;

namespace Berth.Runtime.Tests.Process;

/// <summary>Process replicas in pods: each in its own network namespace holding only loopback, with the app's names in
/// its own /etc/hosts, reached only through sockets made inside the pod.</summary>
public sealed class ProcessPodTests
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(30);

    private static readonly PodSpec Names = new([new("api", "127.77.0.1"), new("web", "127.77.0.2"), new("web-alias", "127.77.0.2")]);

    [Fact]
    public async Task StartAsync_TwoPodsOnTheSamePort_BothServeOnTheirOwnLoopbackAndNotOnTheHosts()
    {
        await using var scope = new ProcessDriverScope(useCgroups: false);
        var port = Ports.Free();
        var a = await scope.StartAsync(Server(scope, "pod-a", port, "a"));
        var b = await scope.StartAsync(Server(scope, "pod-b", port, "b"));

        Assert.NotNull(a.Pod);
        Assert.NotNull(b.Pod);
        Assert.NotEqual(a.Pod.NamespaceInode, b.Pod.NamespaceInode);
        Assert.NotEqual(PodSockets.InodeOf("/proc/self/ns/net"), a.Pod.NamespaceInode);
        Assert.Equal("ok a", await GetInPodAsync(a.Pod, port));
        Assert.Equal("ok b", await GetInPodAsync(b.Pod, port));
        using var host = new Socket(SocketType.Stream, ProtocolType.Tcp);
        var refused = await Assert.ThrowsAsync<SocketException>(() => host.ConnectAsync("127.0.0.1", port));
        Assert.Equal(SocketError.ConnectionRefused, refused.SocketErrorCode);
    }

    [Fact]
    public async Task StartAsync_Pod_HostsFileNamesEveryServiceAndOnlyLoopbackExists()
    {
        await using var scope = new ProcessDriverScope(useCgroups: false);
        var handle = await scope.StartAsync(scope.Spec("names", "sh", "-c", "cat /etc/hosts; ls /sys/class/net; exec sleep 60") with { Pod = Names });

        await Poll.UntilAsync(async () => (await Stdout(scope, handle)).Contains("lo"), Long, "the pod's replica prints its hosts file and interfaces");
        var lines = await Stdout(scope, handle);
        Assert.Contains("127.0.0.1\tlocalhost", lines);
        Assert.Contains("127.77.0.1\tapi", lines);
        Assert.Contains("127.77.0.2\tweb web-alias", lines);
        Assert.Equal("lo", lines[^1]);
        Assert.DoesNotContain("127.77.0.1\tapi", File.ReadAllLines("/etc/hosts"));
    }

    [Fact]
    public async Task ExecAsync_Pod_RunsInThePodsNamespace()
    {
        await using var scope = new ProcessDriverScope(useCgroups: false);
        var port = Ports.Free();
        var handle = await ServingInPodAsync(scope, "exec", port);

        var result = await scope.Driver.ExecAsync(handle, ["sh", "-c", "readlink /proc/self/ns/net; grep api /etc/hosts"], null, CancellationToken.None);

        Assert.Equal(0, result.ExitCode);
        Assert.Equal($"net:[{handle.Pod!.NamespaceInode}]\n127.77.0.1\tapi\n", result.Output);
    }

    [Fact]
    public async Task StartAsync_Pods_OneReplicaCannotReachAnothersPort()
    {
        await using var scope = new ProcessDriverScope(useCgroups: false);
        var port = Ports.Free();
        await ServingInPodAsync(scope, "target", port);

        var intruder = await scope.StartAsync(scope.Perl("intruder", $"use IO::Socket::INET; my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => {port}); print $s ? qq(connected\\n) : qq(refused: $!\\n);") with { Pod = Names });
        await Poll.UntilAsync(async () => (await Stdout(scope, intruder)).Length > 0, Long, "the intruder reports its connect");

        Assert.Equal(["refused: Connection refused"], await Stdout(scope, intruder));
    }

    /// <summary>Starts <see cref="Server"/> in a pod of its own and returns once it answers there.</summary>
    private static async Task<ReplicaHandle> ServingInPodAsync(ProcessDriverScope scope, string id, int port)
    {
        var handle = await scope.StartAsync(Server(scope, id, port, id));
        await GetInPodAsync(handle.Pod!, port);
        return handle;
    }

    private static ReplicaSpec Server(ProcessDriverScope scope, string id, int port, string v) =>
        scope.Spec(id, [.. TestHttpServer.Command]) with
        {
            Pod = Names,
            Env = System.Collections.Immutable.ImmutableSortedDictionary<string, string>.Empty.Add("PORT", port.ToString(System.Globalization.CultureInfo.InvariantCulture)).Add("V", v),
        };

    private static async Task<string[]> Stdout(ProcessDriverScope scope, ReplicaHandle handle) =>
        (await scope.Driver.GetLogsAsync(handle, new LogOptions { Stderr = false }, CancellationToken.None).ToListAsync()).Texts(LogStream.Stdout);

    /// <summary>GET / inside the pod, through a socket made in its namespace; retried until the server listens.</summary>
    private static async Task<string> GetInPodAsync(PodNetwork pod, int port)
    {
        string? answer = null;
        await Poll.UntilAsync(async () => (answer = await TestPod.GetInsideAsync(pod, "127.0.0.1", port)) is not null, Long,
            $"the replica in pod {pod.PodId} answers on its 127.0.0.1:{port}");
        return answer!.Split("\r\n\r\n")[^1];
    }
}
