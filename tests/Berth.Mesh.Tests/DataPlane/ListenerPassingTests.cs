namespace Berth.Mesh.Tests.DataPlane;

/// <summary>The listening-socket hand-over of an upgrade (issue #13 §1) at the socket level: a real TCP listener on loopback
/// under a bounded load of fresh connections is passed with SCM_RIGHTS over a real Unix seqpacket socket, the old owner lets
/// go as the old data plane does (detach, then stop its pending accept and dispose), and not one connection is refused.</summary>
[Collection(SerialCollection.Name)]
public sealed class ListenerPassingTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("berth-pass-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task Pass_ListenerUnderConnectLoad_OldOwnerDetachesAndDisposes_NoConnectionRefusedAndTheNewOwnerAnswers()
    {
        var old = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        old.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        old.Listen(512);
        var endpoint = (IPEndPoint)old.LocalEndPoint!;
        using var stopOld = new CancellationTokenSource();
        var oldServing = ServeAsync(old, "old", stopOld.Token);
        await using var load = new ConnectLoad(endpoint);
        await load.UntilAsync("old", 50);

        var fd = ListenerPassing.FindListening(endpoint);
        Assert.Equal((int)old.Handle, fd);
        var (text, passedFd) = PassOver(fd!.Value);
        Assert.Equal("web\nhttp", text);
        using var passed = new Socket(new SafeSocketHandle(passedFd, ownsHandle: true));
        Assert.Equal(endpoint, passed.LocalEndPoint);
        using var stopNew = new CancellationTokenSource();
        var newServing = ServeAsync(passed, "new", stopNew.Token);

        // The old owner lets go as a released data plane does: its descriptor is pointed elsewhere, then its pending accept is
        // stopped and its socket disposed (what Kestrel's unbind does).
        ListenerPassing.Detach([fd.Value]);
        await stopOld.CancelAsync();
        old.Dispose();
        await oldServing;
        await load.UntilAsync("new", load.Answers("new") + 300);
        var result = await load.StopAsync();
        await stopNew.CancelAsync();
        await newServing;

        Assert.True(result.Refused == 0 && result.Failed == 0, $"{result.Refused} connections refused, {result.Failed} failed otherwise across the hand-over (first: {result.FirstError}); {result.Total} in all");
        // The port is still listening, on the passed socket alone: the old descriptor was closed with its owner.
        Assert.Equal((int)passed.Handle, ListenerPassing.FindListening(endpoint));
    }

    [Fact]
    public void FindListening_NoSuchListener_Null()
    {
        using var connected = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        connected.Bind(new IPEndPoint(IPAddress.Loopback, 0)); // bound, not listening
        Assert.Null(ListenerPassing.FindListening((IPEndPoint)connected.LocalEndPoint!));
    }

    /// <summary>Sends <paramref name="fd"/> with a record's text and then the end record over a real seqpacket socket; returns
    /// what the receiving side got (the text and its own descriptor), after checking the sender's pid.</summary>
    private (string Text, int Fd) PassOver(int fd)
    {
        var path = Path.Combine(_dir, "pass.sock");
        using var listener = new Socket(AddressFamily.Unix, SocketType.Seqpacket, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        listener.Listen(1);
        using var sender = new Socket(AddressFamily.Unix, SocketType.Seqpacket, ProtocolType.Unspecified);
        sender.Connect(new UnixDomainSocketEndPoint(path));
        using var receiver = listener.Accept();
        Assert.Equal(Environment.ProcessId, ListenerPassing.PeerPid(receiver));

        ListenerPassing.Send(sender, "web\nhttp", fd, TimeSpan.FromSeconds(10));
        ListenerPassing.Send(sender, ListenerPassing.End, -1, TimeSpan.FromSeconds(10));
        var first = ListenerPassing.Receive(receiver, TimeSpan.FromSeconds(10)) ?? throw new InvalidOperationException("the channel ended before the listener came");
        var end = ListenerPassing.Receive(receiver, TimeSpan.FromSeconds(10));
        Assert.Equal((ListenerPassing.End, -1), end);
        Assert.NotEqual(-1, first.Fd);
        Assert.NotEqual(fd, first.Fd);
        return first;
    }

    /// <summary>Accepts until stopped and answers every connection with <paramref name="name"/>, then closes it.</summary>
    private static async Task ServeAsync(Socket listener, string name, CancellationToken ct)
    {
        var body = System.Text.Encoding.ASCII.GetBytes(name);
        try
        {
            while (true)
            {
                using var connection = await listener.AcceptAsync(ct);
                await connection.SendAsync(body, SocketFlags.None, ct);
                connection.Shutdown(SocketShutdown.Send);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }
    }

    /// <summary>Two clients, each opening a fresh connection at a time and reading its answer; bounded at 50,000
    /// connections and 2 minutes.</summary>
    private sealed class ConnectLoad : IAsyncDisposable
    {
        private readonly IPEndPoint _endpoint;
        private readonly CancellationTokenSource _stop = new(TimeSpan.FromMinutes(2));
        private readonly ConcurrentDictionary<string, int> _answers = new();
        private readonly Task[] _clients;
        private int _total;
        private int _refused;
        private int _failed;
        private string? _firstError;

        public ConnectLoad(IPEndPoint endpoint)
        {
            _endpoint = endpoint;
            _clients = [Task.Run(RunAsync), Task.Run(RunAsync)];
        }

        public int Answers(string name) => _answers.GetValueOrDefault(name);

        public async Task UntilAsync(string name, int count) =>
            await Poll.UntilAsync(() => Answers(name) >= count || _stop.IsCancellationRequested, TimeSpan.FromSeconds(90),
                $"{count} connections answered by the {name} owner (refused {_refused}, failed {_failed}: {_firstError})");

        public async Task<(int Total, int Refused, int Failed, string? FirstError)> StopAsync()
        {
            Assert.False(_stop.IsCancellationRequested, $"the load hit its cap before the test ended ({_total} connections)");
            await _stop.CancelAsync();
            await Task.WhenAll(_clients);
            return (_total, _refused, _failed, _firstError);
        }

        private async Task RunAsync()
        {
            var buffer = new byte[16];
            while (!_stop.IsCancellationRequested && Interlocked.Increment(ref _total) <= 50_000)
            {
                using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                try
                {
                    await socket.ConnectAsync(_endpoint, _stop.Token);
                    var read = 0;
                    int n;
                    while ((n = await socket.ReceiveAsync(buffer.AsMemory(read), SocketFlags.None, _stop.Token)) > 0)
                    {
                        read += n;
                    }

                    _answers.AddOrUpdate(System.Text.Encoding.ASCII.GetString(buffer, 0, read), 1, (_, c) => c + 1);
                }
                catch (OperationCanceledException) when (_stop.IsCancellationRequested)
                {
                    return;
                }
                catch (SocketException e)
                {
                    Interlocked.Increment(ref e.SocketErrorCode == SocketError.ConnectionRefused ? ref _refused : ref _failed);
                    Interlocked.CompareExchange(ref _firstError, e.Message, null);
                }
            }
        }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            await Task.WhenAll(_clients).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            _stop.Dispose();
        }
    }
}
