using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http.Features;

namespace Berth.Mesh.Transport;

/// <summary>
/// A Kestrel transport on the mesh's own event loops (<see cref="EventLoop"/>, <see cref="LoopSocket"/>), for plain
/// HTTP/1.1 listeners: a connection's bytes go from the socket into Kestrel's input pipe and from its output pipe to the
/// socket on the loop that owns it, pipes scheduled inline, so the mesh's HTTP/1.1 server, the proxy and the write of the
/// answer run on the thread that read the readiness edge, as in an nginx worker. Kestrel's HTTP layer, limits and
/// connection middleware are unchanged (it is only the transport under them, as the socket transport was). Binds IP
/// endpoints and listening descriptors handed over (<see cref="FileHandleEndPoint"/>); anything else is left to the
/// socket transport.
/// </summary>
internal sealed class LoopTransportFactory : IConnectionListenerFactory, IConnectionListenerFactorySelector
{
    public bool CanBind(EndPoint endpoint) => endpoint is IPEndPoint or FileHandleEndPoint;

    public ValueTask<IConnectionListener> BindAsync(EndPoint endpoint, CancellationToken cancellationToken = default)
    {
        Socket socket;
        if (endpoint is FileHandleEndPoint handle)
        {
            socket = new Socket(new SafeSocketHandle((IntPtr)(long)handle.FileHandle, ownsHandle: true));
        }
        else
        {
            var ip = (IPEndPoint)endpoint;
            socket = new Socket(ip.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            if (ip.Address.Equals(IPAddress.IPv6Any))
            {
                socket.DualMode = true;
            }

            try
            {
                socket.Bind(ip);
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.AddressAlreadyInUse)
            {
                socket.Dispose();
                throw new AddressInUseException(e.Message, e);
            }

            socket.Listen(512);
        }

        socket.Blocking = false;
        var local = socket.LocalEndPoint ?? endpoint;
        var fd = (int)socket.SafeHandle.DangerousGetHandle();
        socket.SafeHandle.SetHandleAsInvalid(); // the loop socket owns the descriptor from here
        return ValueTask.FromResult<IConnectionListener>(new LoopListener(new LoopSocket(fd, EventLoop.Next(), listening: true), local));
    }

    private sealed class LoopListener(LoopSocket socket, EndPoint local) : IConnectionListener
    {
        private volatile bool _unbound;

        public EndPoint EndPoint => local;

        public async ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
        {
            while (true)
            {
                int fd;
                try
                {
                    fd = await socket.AcceptAsync(cancellationToken);
                }
                catch (Exception e) when (_unbound && e is SocketException or ObjectDisposedException)
                {
                    return null;
                }
                catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionReset or SocketError.ConnectionAborted)
                {
                    continue; // the client gave up while queued
                }

                var connection = new LoopConnection(new LoopSocket(fd, EventLoop.Next()), local);
                connection.Start();
                return connection;
            }
        }

        public ValueTask UnbindAsync(CancellationToken cancellationToken = default)
        {
            _unbound = true;
            socket.Abort();
            return ValueTask.CompletedTask;
        }

        public ValueTask DisposeAsync()
        {
            _unbound = true;
            socket.Dispose();
            return ValueTask.CompletedTask;
        }
    }
}

/// <summary>One accepted connection as Kestrel sees it: two inline pipes between its socket and the HTTP layer.</summary>
internal sealed class LoopConnection : ConnectionContext, IConnectionIdFeature, IConnectionTransportFeature, IConnectionItemsFeature,
    IConnectionLifetimeFeature, IConnectionEndPointFeature
{
    private static long s_ids;
    private static readonly PipeOptions Options = new(readerScheduler: PipeScheduler.Inline, writerScheduler: PipeScheduler.Inline,
        pauseWriterThreshold: 1024 * 1024, resumeWriterThreshold: 512 * 1024, minimumSegmentSize: 4096, useSynchronizationContext: false);

    private readonly LoopSocket _socket;
    private readonly Pipe _input = new(Options);
    private readonly Pipe _output = new(Options);
    private readonly CancellationTokenSource _closed = new();
    private readonly FeatureCollection _features = new();
    private Task _receiving = Task.CompletedTask;
    private Task _sending = Task.CompletedTask;
    private EndPoint? _remote;
    private int _closedFired;

    public LoopConnection(LoopSocket socket, EndPoint local)
    {
        _socket = socket;
        LocalEndPoint = local;
        ConnectionId = "L" + Interlocked.Increment(ref s_ids).ToString("X", System.Globalization.CultureInfo.InvariantCulture);
        Transport = new DuplexPipe(_input.Reader, _output.Writer);
        _features.Set<IConnectionIdFeature>(this);
        _features.Set<IConnectionTransportFeature>(this);
        _features.Set<IConnectionItemsFeature>(this);
        _features.Set<IConnectionLifetimeFeature>(this);
        _features.Set<IConnectionEndPointFeature>(this);
    }

    public override string ConnectionId { get; set; }

    public override IFeatureCollection Features => _features;

    public override IDictionary<object, object?> Items { get; set; } = new Dictionary<object, object?>();

    public override IDuplexPipe Transport { get; set; }

    public override CancellationToken ConnectionClosed { get => _closed.Token; set => throw new NotSupportedException(); }

    public override EndPoint? LocalEndPoint { get; set; }

    public override EndPoint? RemoteEndPoint
    {
        get => _remote ??= PeerOf(_socket.Descriptor);
        set => _remote = value;
    }

    public void Start()
    {
        _receiving = ReceiveAsync();
        _sending = SendAsync();
    }

    public override void Abort(ConnectionAbortedException abortReason)
    {
        _socket.Abort();
        _output.Reader.CancelPendingRead();
    }

    public override void Abort() => Abort(new ConnectionAbortedException("berth mesh: connection aborted"));

    public override async ValueTask DisposeAsync()
    {
        _socket.Abort();
        _output.Reader.CancelPendingRead();
        await Task.WhenAll(_receiving, _sending).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        _socket.Dispose(); // _closed is not disposed: its cancellation may still be queued
    }

    private async Task ReceiveAsync()
    {
        Exception? error = null;
        var writer = _input.Writer;
        try
        {
            while (true)
            {
                var memory = writer.GetMemory(4096);
                var n = await _socket.ReceiveAsync(memory);
                if (n == 0)
                {
                    break;
                }

                writer.Advance(n);
                var flushed = await writer.FlushAsync();
                if (flushed.IsCompleted || flushed.IsCanceled)
                {
                    break;
                }
            }
        }
        catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionReset or SocketError.OperationAborted or SocketError.Shutdown)
        {
            error = new ConnectionResetException(e.Message, e);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            error = new ConnectionAbortedException(e.Message, e);
        }
        finally
        {
            await writer.CompleteAsync(error);
            FireClosed();
        }
    }

    private async Task SendAsync()
    {
        var reader = _output.Reader;
        try
        {
            while (true)
            {
                var result = await reader.ReadAsync();
                if (result.IsCanceled)
                {
                    break;
                }

                var buffer = result.Buffer;
                foreach (var segment in buffer)
                {
                    await _socket.SendAsync(segment);
                }

                reader.AdvanceTo(buffer.End);
                if (result.IsCompleted)
                {
                    break;
                }
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // The peer went away: the receive side sees it too.
        }
        finally
        {
            await reader.CompleteAsync();
            _socket.ShutdownWrite();
        }
    }

    private void FireClosed()
    {
        if (Interlocked.Exchange(ref _closedFired, 1) == 0)
        {
            // Off the loop: whoever waits on ConnectionClosed must not run on the thread every other connection needs.
            ThreadPool.UnsafeQueueUserWorkItem(static s => ((CancellationTokenSource)s!).Cancel(), _closed);
        }
    }

    private static EndPoint? PeerOf(int fd)
    {
        if (fd < 0)
        {
            return null;
        }

        using var probe = new Socket(new SafeSocketHandle((IntPtr)fd, ownsHandle: false));
        return probe.RemoteEndPoint;
    }

    private sealed class DuplexPipe(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input => input;

        public PipeWriter Output => output;
    }
}
