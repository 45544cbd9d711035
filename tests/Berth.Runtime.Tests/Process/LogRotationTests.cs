using Berth.Runtime;

namespace Berth.Runtime.Tests.Process;

/// <summary>Issue #14 §5: the supervisor rotates a replica's logs as the kubelet does, and reads go across rotated files.</summary>
public sealed class LogRotationTests
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(60);

    /// <summary>Prints "line N" for N = 1..count, each padded to about 60 bytes, flushing as it goes.</summary>
    private static string Chatty(int count, int pauseEvery = 0) =>
        $"$| = 1; for my $i (1..{count}) {{ printf qq(line %05d %s\\n), $i, 'x' x 40; " +
        (pauseEvery > 0 ? $"select(undef, undef, undef, 0.002) if $i % {pauseEvery} == 0; " : "") + "}";

    private static async Task<ReplicaStatus> WaitAsync(ProcessDriverScope scope, ReplicaHandle handle) =>
        await scope.Driver.WaitForExitAsync(handle, new CancellationTokenSource(Long).Token);

    private static List<int> Numbers(IEnumerable<string> lines) =>
        [.. lines.Select(l => int.Parse(l.AsSpan(5, 5), System.Globalization.CultureInfo.InvariantCulture))];

    [Fact]
    public async Task StartAsync_ChattyReplica_FilesStayWithinTheBoundAndLogsReadAcrossRotationInOrder()
    {
        await using var scope = new ProcessDriverScope(useCgroups: false);
        var rotation = new LogRotation(new ByteSize(8 << 10), 3);
        var handle = await scope.StartAsync(scope.Perl("chatty", Chatty(5000)) with { Logging = rotation });

        Assert.Equal(0, (await WaitAsync(scope, handle)).ExitCode);

        // 5,000 stamped lines are ~450 KB; on disk: the live file and 2 rotated ones, none past 8 KiB.
        var dir = Path.Combine(scope.Root, "replicas", "chatty");
        var files = Directory.GetFiles(dir, "stdout.log*").Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(3, files.Count);
        Assert.Equal("stdout.log", files[0]);
        Assert.All(files, f => Assert.Matches(@"^stdout\.log(\.\d+)?$", f));
        Assert.All(files, f => Assert.InRange(new FileInfo(Path.Combine(dir, f!)).Length, 1, 8 << 10));

        var lines = (await scope.Driver.GetLogsAsync(handle, new LogOptions(), CancellationToken.None).ToListAsync()).Texts(LogStream.Stdout);
        var numbers = Numbers(lines);
        var perFile = files.Select(f => File.ReadAllLines(Path.Combine(dir, f!)).Length).ToList();
        Assert.Equal(perFile.Sum(), numbers.Count); // every line of every kept file, the rotated ones included
        Assert.True(numbers.Count > perFile.Max(), $"{numbers.Count} lines read, the biggest file holds {perFile.Max()}");
        Assert.Equal(Enumerable.Range(5001 - numbers.Count, numbers.Count), numbers); // the newest lines, in order, none twice
    }

    [Fact]
    public async Task GetLogsAsync_FollowWhileTheFileRotatesManyTimes_EveryLineOnceInOrder()
    {
        await using var scope = new ProcessDriverScope(useCgroups: false);
        var handle = await scope.StartAsync(scope.Perl("follow", Chatty(3000, pauseEvery: 25)) with { Logging = new LogRotation(new ByteSize(4 << 10), 200) });

        var lines = (await scope.Driver.GetLogsAsync(handle, new LogOptions { Follow = true }, new CancellationTokenSource(Long).Token).ToListAsync())
            .Texts(LogStream.Stdout);

        Assert.Equal(Enumerable.Range(1, 3000), Numbers(lines));
        var rotated = Directory.GetFiles(Path.Combine(scope.Root, "replicas", "follow"), "stdout.log.*").Length;
        Assert.True(rotated > 20, $"the file rotated {rotated} times while followed");
    }
}
