using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using Berth.Core.Routing;

namespace Berth.Testing;

/// <summary>A pod made the plain way for tests of the mesh alone: <c>unshare --net</c> (root) around a command, with
/// loopback brought up first, so the command runs in a network namespace holding only loopback. Killed on dispose.</summary>
public sealed class TestPod : IDisposable
{
    /// <summary>Brings <c>lo</c> up with the same ioctls the supervisor uses, then execs the command.</summary>
    private const string LoUp = "socket(my $s, 2, 2, 0) or die $!; my $r = pack('a16 x24', 'lo'); ioctl($s, 0x8913, $r) or die $!; "
        + "ioctl($s, 0x8914, pack('a16 s x22', 'lo', unpack('x16 s', $r) | 1)) or die $!; exec { $ARGV[0] } @ARGV or die $!;";

    private readonly Process _process;

    private TestPod(string id, Process process)
    {
        _process = process;
        var path = $"/proc/{process.Id}/ns/net";
        Network = new PodNetwork(id, path) { NamespaceInode = PodSockets.InodeOf(path) };
    }

    public PodNetwork Network { get; }

    public int Pid => _process.Id;

    /// <summary>Starts <paramref name="command"/> in a new pod with <paramref name="env"/>; returns once the namespace exists.</summary>
    public static async Task<TestPod> StartAsync(string id, IReadOnlyList<string> command, IReadOnlyDictionary<string, string>? env = null)
    {
        var info = ChildProcess.Start("unshare", ["--net", "--", "perl", "-e", LoUp, .. command]);
        foreach (var (k, v) in env ?? new Dictionary<string, string>())
        {
            info.Environment[k] = v;
        }

        var process = ChildProcess.StartDrained(info);
        var host = PodSockets.InodeOf("/proc/self/ns/net");
        await Poll.UntilAsync(() => process.HasExited || PodSockets.InodeOf($"/proc/{process.Id}/ns/net") is var n && n != 0 && n != host,
            TimeSpan.FromSeconds(10), $"pod {id}: unshare --net makes a namespace");
        Assert.False(process.HasExited, $"pod {id}: unshare --net exited with {(process.HasExited ? process.ExitCode : 0)}");
        return new TestPod(id, process);
    }

    /// <summary>The whole answer to <c>GET /</c> (Host <paramref name="host"/>, Connection: close) at
    /// <paramref name="address"/>:<paramref name="port"/> from inside <paramref name="pod"/>, through a socket made in its
    /// namespace; null when nothing listens there or nothing came back.</summary>
    public static async Task<string?> GetInsideAsync(PodNetwork pod, string address, int port, string host = "x")
    {
        using var socket = await PodSockets.CreateAsync(pod, AddressFamily.InterNetwork, CancellationToken.None);
        try
        {
            await socket.ConnectAsync(address, port);
        }
        catch (SocketException)
        {
            return null;
        }

        await socket.SendAsync(Encoding.ASCII.GetBytes($"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"), SocketFlags.None);
        var text = new StringBuilder();
        var buffer = new byte[4096];
        int n;
        while ((n = await socket.ReceiveAsync(buffer, SocketFlags.None)) > 0)
        {
            text.Append(Encoding.ASCII.GetString(buffer, 0, n));
        }

        return text.Length == 0 ? null : text.ToString();
    }

    public void Dispose()
    {
        try
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit(5000);
        }
        catch (InvalidOperationException)
        {
        }

        _process.Dispose();
    }
}
