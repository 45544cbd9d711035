using System.Diagnostics;
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
        var info = new ProcessStartInfo("unshare") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in (string[])["--net", "--", "perl", "-e", LoUp, .. command])
        {
            info.ArgumentList.Add(a);
        }

        foreach (var (k, v) in env ?? new Dictionary<string, string>())
        {
            info.Environment[k] = v;
        }

        var process = Process.Start(info)!;
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var host = PodSockets.InodeOf("/proc/self/ns/net");
        await Poll.UntilAsync(() => process.HasExited || PodSockets.InodeOf($"/proc/{process.Id}/ns/net") is var n && n != 0 && n != host,
            TimeSpan.FromSeconds(10), $"pod {id}: unshare --net makes a namespace");
        Assert.False(process.HasExited, $"pod {id}: unshare --net exited with {(process.HasExited ? process.ExitCode : 0)}");
        return new TestPod(id, process);
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
