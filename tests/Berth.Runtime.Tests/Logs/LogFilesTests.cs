using Berth.Runtime.Logs;
using Microsoft.Extensions.Time.Testing;

namespace Berth.Runtime.Tests.Logs;

/// <summary>Following a log file across rotation, step by step on a fake clock: each poll runs when the test advances it.</summary>
public sealed class LogFilesTests : IDisposable
{
    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(50);
    private readonly string _dir = Directory.CreateTempSubdirectory("berth-logfiles-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Live => Path.Combine(_dir, "stdout.log");

    private static string Lines(params int[] numbers) =>
        string.Concat(numbers.Select(n => $"2026-12-07T18:00:{n:00}.0000000Z line {n}\n"));

    [Fact]
    public async Task Follow_LiveFileRenamedAndItsSuccessorNotYetMade_NextPollContinuesWithoutReadingTheRotatedFilesAgain()
    {
        // A CI run read lines 1-714 and then 1, 2, 3… again: a poll between the supervisor's rename of the live file and its
        // making of the next found no live file, and the poll after it started over as a first read.
        await File.WriteAllTextAsync(Live, Lines(1, 2));
        var time = new FakeTimeProvider();
        var exited = false;
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await using var follow = LogFiles.ReadAsync(Live, Path.Combine(_dir, "stderr.log"), new LogOptions { Follow = true }, () => exited, Poll, time, stop.Token)
            .GetAsyncEnumerator(stop.Token);
        var read = new List<string>();
        for (var i = 0; i < 2; i++)
        {
            Assert.True(await follow.MoveNextAsync());
            read.Add(follow.Current.Text);
        }

        var next = follow.MoveNextAsync(); // waits for the next poll
        File.Move(Live, Live + ".1");      // rotated ...
        time.Advance(Poll);                // ... and polled before the new live file exists
        Assert.False(next.IsCompleted, "nothing new to read yet");
        await File.WriteAllTextAsync(Live + ".2", Lines(3));
        await File.WriteAllTextAsync(Live, Lines(4, 5));
        time.Advance(Poll);
        exited = true;
        while (await next)
        {
            read.Add(follow.Current.Text);
            next = follow.MoveNextAsync();
            time.Advance(Poll);
        }

        Assert.Equal(["line 1", "line 2", "line 3", "line 4", "line 5"], read);
    }
}
