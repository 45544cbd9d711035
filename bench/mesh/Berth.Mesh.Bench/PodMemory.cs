using System.Diagnostics;
using System.Globalization;
using Berth.Core.Model;
using Berth.Core.Routing;
using Berth.Mesh;

/// <summary>The data plane's memory with pods: a MeshHost with <c>services</c> routes, then in each of <c>pods</c> pods
/// (<c>unshare --net</c> around a sleep, loopback up) one outbound listener per service on its virtual address — the
/// listener set a data plane keeps for an app of that shape. Prints RSS and open descriptors before and after.</summary>
internal static class PodMemory
{
    /// <summary>Brings lo up with the two ioctls Berth's supervisor uses, then execs the command.</summary>
    private const string LoUp = "socket(my $s, 2, 2, 0) or die $!; my $r = pack('a16 x24', 'lo'); ioctl($s, 0x8913, $r) or die $!; "
        + "ioctl($s, 0x8914, pack('a16 s x22', 'lo', unpack('x16 s', $r) | 1)) or die $!; exec { $ARGV[0] } @ARGV or die $!;";

    public static async Task RunAsync(int pods, int services)
    {
        var processes = new List<Process>();
        try
        {
            await using var mesh = new MeshHost();
            await mesh.StartAsync(CancellationToken.None);
            for (var s = 0; s < services; s++)
            {
                using var probe = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
                probe.Start();
                var port = ((System.Net.IPEndPoint)probe.LocalEndpoint).Port;
                probe.Stop();
                await mesh.UpdateAsync(new ServiceRoute($"svc{s}", new Berth.Core.Model.Endpoint { Name = "http", Port = port }, MeshPolicy.Default, [new Upstream($"svc{s}-1", "127.0.0.1", 9, 1)]), CancellationToken.None);
            }

            GC.Collect();
            var (rssBefore, fdsBefore) = Usage();
            var clock = Stopwatch.StartNew();
            for (var p = 0; p < pods; p++)
            {
                var info = new ProcessStartInfo("unshare") { UseShellExecute = false };
                foreach (var a in (string[])["--net", "--", "perl", "-e", LoUp, "sleep", "600"])
                {
                    info.ArgumentList.Add(a);
                }

                processes.Add(Process.Start(info)!);
            }

            var host = PodSockets.InodeOf("/proc/self/ns/net");
            var opened = 0;
            for (var p = 0; p < pods; p++)
            {
                var path = $"/proc/{processes[p].Id}/ns/net";
                var deadline = Stopwatch.StartNew();
                while (PodSockets.InodeOf(path) is var n && (n == 0 || n == host) && deadline.Elapsed < TimeSpan.FromSeconds(30))
                {
                    await Task.Delay(10);
                }

                var pod = new PodNetwork($"pod{p}", path) { NamespaceInode = PodSockets.InodeOf(path) };
                await mesh.UpdatePodAsync(new PodRoute(pod, [.. Enumerable.Range(0, services).Select(s => new OutboundListener($"svc{s}", "http", $"127.77.0.{s + 1}", 8080))]), CancellationToken.None);
                opened += (await mesh.PodListenersAsync(CancellationToken.None))[pod.PodId].Count;
            }

            var took = clock.Elapsed;
            GC.Collect();
            await Task.Delay(500);
            var (rssAfter, fdsAfter) = Usage();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"pods {pods} x services {services}: {opened} outbound listeners open in {took.TotalSeconds:0.0} s; RSS {rssBefore / 1024.0:0.0} -> {rssAfter / 1024.0:0.0} MB " +
                $"(+{(rssAfter - rssBefore) / 1024.0:0.0} MB, {(rssAfter - rssBefore) / (double)Math.Max(1, opened):0.0} KB per listener); descriptors {fdsBefore} -> {fdsAfter}; " +
                $"threads {Process.GetCurrentProcess().Threads.Count}"));
        }
        finally
        {
            foreach (var p in processes)
            {
                p.Kill(entireProcessTree: true);
                p.Dispose();
            }
        }
    }

    private static (long RssKb, int Fds) Usage()
    {
        var rss = File.ReadLines("/proc/self/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
        return (long.Parse(rss.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture), Directory.GetFiles("/proc/self/fd").Length);
    }
}
