using System.Collections.Concurrent;
using System.Net.Sockets;
using System.Text;
using Berth.Runtime.Docker;

namespace Berth.Runtime.Tests.Docker;

/// <summary>Issue #21 (round 6): connecting asks the engine's <c>/info</c> beside its ping, not after it, and still reads what
/// the engine says about itself. A small engine on a Unix socket (answering only <c>/_ping</c> and <c>/info</c>) decides the
/// order, so the test does not depend on timing.</summary>
public sealed class DockerConnectTests : IAsyncLifetime
{
    private const string InfoBody =
        """{"ServerVersion":"99.1","CgroupDriver":"systemd","CgroupVersion":"2","CPUCfsQuota":true,"MemoryLimit":false,"SecurityOptions":["name=seccomp","name=rootless"]}""";

    private readonly string _dir = Directory.CreateTempSubdirectory("berth-connect-").FullName;
    private readonly Socket _listener = new(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentQueue<string> _log = new();
    private readonly TaskCompletionSource _infoAsked = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Task? _serving;

    /// <summary>The engine answers /info only once this completes (at once unless a test holds it).</summary>
    private TaskCompletionSource _infoRelease = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private string Socket => Path.Combine(_dir, "docker.sock");

    public Task InitializeAsync() => Task.CompletedTask;

    // IAsyncLifetime, not IAsyncDisposable: xunit v2 never calls a test class's IAsyncDisposable.DisposeAsync (v3 does), so
    // whatever the test started (its app, control plane, data plane, replicas) would be left running.
    public async Task DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Dispose();
        if (_serving is not null)
        {
            await _serving.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }

        _stop.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    /// <summary>Serves each connection on its own task: <c>/info</c> at once; <c>/_ping</c> only once <c>/info</c> was asked
    /// (or after <paramref name="pingHold"/>, so that a client asking them one after the other still finishes).</summary>
    private void Serve(TimeSpan pingHold)
    {
        _listener.Bind(new UnixDomainSocketEndPoint(Socket));
        _listener.Listen();
        _serving = Task.Run(async () =>
        {
            var connections = new List<Task>();
            while (!_stop.IsCancellationRequested)
            {
                Socket client;
                try
                {
                    client = await _listener.AcceptAsync(_stop.Token);
                }
                catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
                {
                    break;
                }

                connections.Add(AnswerAsync(client, pingHold));
            }

            await Task.WhenAll(connections).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        });
    }

    private async Task AnswerAsync(Socket client, TimeSpan pingHold)
    {
        using var _ = client;
        await using var stream = new NetworkStream(client);
        var buffer = new byte[8192];
        var request = new StringBuilder();
        // Docker.DotNet ends its header lines with a bare \n (the request line with \r\n).
        while (request.ToString() is var head && !head.Contains("\n\r\n", StringComparison.Ordinal) && !head.Contains("\n\n", StringComparison.Ordinal))
        {
            var n = await stream.ReadAsync(buffer, _stop.Token);
            if (n == 0)
            {
                return;
            }

            request.Append(Encoding.ASCII.GetString(buffer, 0, n));
        }

        var path = request.ToString().Split(' ', 3)[1];
        string body;
        if (path.EndsWith("/info", StringComparison.Ordinal))
        {
            _log.Enqueue("info asked");
            _infoAsked.TrySetResult();
            await _infoRelease.Task.WaitAsync(_stop.Token);
            body = InfoBody;
        }
        else if (path.EndsWith("/_ping", StringComparison.Ordinal))
        {
            _log.Enqueue("ping asked");
            await Task.WhenAny(_infoAsked.Task, Task.Delay(pingHold, _stop.Token));
            _log.Enqueue("ping answered");
            body = "OK";
        }
        else
        {
            _log.Enqueue($"unexpected {path}");
            var missing = Encoding.ASCII.GetBytes("HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}");
            await stream.WriteAsync(missing, _stop.Token);
            return;
        }

        var type = body == "OK" ? "text/plain" : "application/json";
        var answer = Encoding.ASCII.GetBytes($"HTTP/1.1 200 OK\r\nContent-Type: {type}\r\nApi-Version: 1.41\r\nContent-Length: {body.Length}\r\nConnection: close\r\n\r\n{body}");
        await stream.WriteAsync(answer, _stop.Token);
    }

    [Fact]
    public async Task ConnectAsync_InfoAskedBesideThePing_EngineDescribedAndUsable()
    {
        // The ping is held until /info is asked (up to 20 s): asked one after the other, /info would come only after that.
        _infoRelease.SetResult();
        Serve(TimeSpan.FromSeconds(20));

        using var driver = await DockerDriver.ConnectAsync(new DockerDriverOptions { Host = $"unix://{Socket}", RequestTimeout = TimeSpan.FromSeconds(15) }, CancellationToken.None);

        var log = _log.ToList();
        Assert.True(log.IndexOf("info asked") >= 0 && log.IndexOf("info asked") < log.IndexOf("ping answered"), $"the engine saw: {string.Join(", ", log)}");
        Assert.True(driver.Capabilities.Available, driver.Capabilities.UnavailableReason);
        Assert.True(driver.Capabilities.CpuLimitsEnforced);
        Assert.False(driver.Capabilities.MemoryLimitsEnforced);
        Assert.True(driver.Rootless);
        Assert.Equal($"docker: rootless engine at unix://{Socket} (from the driver options): docker 99.1: cgroup v2 (systemd driver)", driver.Capability.Message);
    }

    [Fact]
    public async Task ConnectAsync_DescribeLater_UsableAfterThePingAndDescribedWhenInfoAnswers()
    {
        Serve(TimeSpan.Zero);

        using var driver = await DockerDriver.ConnectAsync(new DockerDriverOptions { Host = $"unix://{Socket}", RequestTimeout = TimeSpan.FromSeconds(60) },
            CancellationToken.None, describeLater: true);

        // The engine holds its /info answer: the driver is usable from the ping on, limits assumed enforced until it knows.
        Assert.False(driver.Described.IsCompleted);
        Assert.True(driver.Capabilities.Available, driver.Capabilities.UnavailableReason);
        Assert.True(driver.Capabilities.MemoryLimitsEnforced);
        Assert.Equal("docker (describing itself: /info not answered yet; limits assumed enforced, as on any Linux engine)", driver.Capabilities.LimitsMechanism);

        _infoRelease.SetResult();
        await driver.Described.WaitAsync(TimeSpan.FromSeconds(60));

        Assert.False(driver.Capabilities.MemoryLimitsEnforced);
        Assert.True(driver.Rootless);
        Assert.Equal("docker 99.1: cgroup v2 (systemd driver)", driver.Capabilities.LimitsMechanism);
    }
}
