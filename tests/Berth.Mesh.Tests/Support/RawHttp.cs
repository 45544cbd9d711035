using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Berth.Mesh.Tests.Support;

/// <summary>One parsed HTTP/1.1 response as bytes arrived on a raw socket: status line, headers (in order) and the decoded body.</summary>
internal sealed record RawResponse(int Status, List<KeyValuePair<string, string>> Headers, string Body, bool Chunked)
{
    public string? Header(string name) => Headers.FirstOrDefault(h => h.Key.Equals(name, StringComparison.OrdinalIgnoreCase)).Value;
}

/// <summary>A raw-socket HTTP/1.1 client: sends exactly the bytes a test writes and parses what comes back, so framing is checked, not assumed.</summary>
internal sealed class RawHttp : IDisposable
{
    private readonly TcpClient _client = new();
    private NetworkStream _stream = null!;
    private readonly MemoryStream _pending = new();

    public static async Task<RawHttp> ConnectAsync(int port)
    {
        var raw = new RawHttp();
        await raw._client.ConnectAsync(IPAddress.Loopback, port);
        raw._stream = raw._client.GetStream();
        raw._stream.ReadTimeout = 10_000;
        return raw;
    }

    public Task SendAsync(string text) => _stream.WriteAsync(Encoding.Latin1.GetBytes(text)).AsTask();

    /// <summary>Reads one response (interim 1xx included when <paramref name="interim"/>), with a 10 s deadline.</summary>
    public async Task<RawResponse> ReadAsync(bool isHead = false, bool interim = false)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var head = await ReadUntilAsync("\r\n\r\n", deadline.Token);
        var lines = head.Split("\r\n");
        var status = int.Parse(lines[0].Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
        var headers = lines.Skip(1).Where(l => l.Length > 0)
            .Select(l => new KeyValuePair<string, string>(l[..l.IndexOf(':', StringComparison.Ordinal)], l[(l.IndexOf(':', StringComparison.Ordinal) + 1)..].Trim())).ToList();
        var response = new RawResponse(status, headers, "", false);
        if ((status is >= 100 and < 200 && interim) || isHead || status is 204 or 304)
        {
            return response;
        }

        if (response.Header("Transfer-Encoding") is { } te && te.Contains("chunked", StringComparison.OrdinalIgnoreCase))
        {
            var body = new StringBuilder();
            while (true)
            {
                var size = Convert.ToInt32((await ReadUntilAsync("\r\n", deadline.Token)).Split(';')[0], 16);
                if (size == 0)
                {
                    while ((await ReadUntilAsync("\r\n", deadline.Token)).Length > 0)
                    {
                    }

                    return response with { Body = body.ToString(), Chunked = true };
                }

                body.Append(await ReadExactlyAsync(size, deadline.Token));
                await ReadUntilAsync("\r\n", deadline.Token);
            }
        }

        var length = response.Header("Content-Length") is { } cl ? int.Parse(cl, System.Globalization.CultureInfo.InvariantCulture) : 0;
        return response with { Body = await ReadExactlyAsync(length, deadline.Token) };
    }

    /// <summary>True when the server closed the connection (reads 0 bytes) within 10 s.</summary>
    public async Task<bool> ClosedAsync()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var buffer = new byte[1024];
        try
        {
            while (true)
            {
                if (await _stream.ReadAsync(buffer, deadline.Token) == 0)
                {
                    return true;
                }
            }
        }
        catch (IOException)
        {
            return true;
        }
    }

    public void Dispose() => _client.Dispose();

    private async Task<string> ReadUntilAsync(string terminator, CancellationToken cancellationToken)
    {
        while (true)
        {
            var text = Encoding.Latin1.GetString(_pending.GetBuffer(), 0, (int)_pending.Length);
            var i = text.IndexOf(terminator, StringComparison.Ordinal);
            if (i >= 0)
            {
                Consume(i + terminator.Length);
                return text[..i];
            }

            await FillAsync(cancellationToken);
        }
    }

    private async Task<string> ReadExactlyAsync(int count, CancellationToken cancellationToken)
    {
        while (_pending.Length < count)
        {
            await FillAsync(cancellationToken);
        }

        var text = Encoding.Latin1.GetString(_pending.GetBuffer(), 0, count);
        Consume(count);
        return text;
    }

    private async Task FillAsync(CancellationToken cancellationToken)
    {
        var buffer = new byte[8192];
        var n = await _stream.ReadAsync(buffer, cancellationToken);
        if (n == 0)
        {
            throw new IOException("the server closed the connection");
        }

        _pending.Seek(0, SeekOrigin.End);
        _pending.Write(buffer, 0, n);
    }

    private void Consume(int count)
    {
        var rest = _pending.GetBuffer().AsSpan(count, (int)_pending.Length - count).ToArray();
        _pending.SetLength(0);
        _pending.Write(rest);
    }
}

/// <summary>
/// A raw-socket upstream: reads each request head (and a Content-Length or chunked body, raw), records the bytes, and
/// answers with whatever bytes the test set — so the test sees exactly what the mesh sent and controls what it gets back.
/// </summary>
internal sealed class RawUpstream : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accepting;

    public RawUpstream()
    {
        _listener.Start();
        _accepting = AcceptAsync();
    }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    /// <summary>Every request as received: head and raw body bytes.</summary>
    public System.Collections.Concurrent.ConcurrentQueue<string> Requests { get; } = new();

    /// <summary>The response bytes for a request (given the head).</summary>
    public Func<string, string> Respond { get; set; } = _ => "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

    /// <summary>Close the connection after each response (a close-delimited body ends there).</summary>
    public bool CloseAfterRespond { get; init; }

    public Berth.Core.Routing.Upstream Upstream(string name = "raw") => new(name, "127.0.0.1", Port, 1);

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        try
        {
            await _accepting;
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }

        _stop.Dispose();
    }

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            var socket = await _listener.AcceptSocketAsync(_stop.Token);
            _ = ServeAsync(socket);
        }
    }

    private async Task ServeAsync(Socket socket)
    {
        using var _ = socket;
        var pending = new List<byte>();
        var buffer = new byte[8192];
        try
        {
            while (true)
            {
                int end;
                while ((end = IndexOf(pending, "\r\n\r\n")) < 0)
                {
                    var n = await socket.ReceiveAsync(buffer, _stop.Token);
                    if (n == 0)
                    {
                        return;
                    }

                    pending.AddRange(buffer.AsSpan(0, n).ToArray());
                }

                var head = Encoding.Latin1.GetString(pending.GetRange(0, end + 4).ToArray());
                pending.RemoveRange(0, end + 4);
                var bodyEnd = 0;
                var lower = head.ToLowerInvariant();
                if (lower.Contains("\r\ntransfer-encoding: chunked", StringComparison.Ordinal))
                {
                    while ((bodyEnd = IndexOf(pending, "\r\n0\r\n\r\n")) < 0 && !StartsWith(pending, "0\r\n\r\n"))
                    {
                        var n = await socket.ReceiveAsync(buffer, _stop.Token);
                        if (n == 0)
                        {
                            return;
                        }

                        pending.AddRange(buffer.AsSpan(0, n).ToArray());
                    }

                    bodyEnd = bodyEnd < 0 ? 5 : bodyEnd + 7;
                }
                else if (System.Text.RegularExpressions.Regex.Match(lower, "\r\ncontent-length: *([0-9]+)") is { Success: true } m)
                {
                    bodyEnd = int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
                    while (pending.Count < bodyEnd)
                    {
                        var n = await socket.ReceiveAsync(buffer, _stop.Token);
                        if (n == 0)
                        {
                            return;
                        }

                        pending.AddRange(buffer.AsSpan(0, n).ToArray());
                    }
                }

                var body = Encoding.Latin1.GetString(pending.GetRange(0, bodyEnd).ToArray());
                pending.RemoveRange(0, bodyEnd);
                Requests.Enqueue(head + body);
                await socket.SendAsync(Encoding.Latin1.GetBytes(Respond(head)), _stop.Token);
                if (CloseAfterRespond)
                {
                    socket.Shutdown(SocketShutdown.Both);
                    return;
                }
            }
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }
    }

    private static bool StartsWith(List<byte> data, string text) =>
        data.Count >= text.Length && Encoding.Latin1.GetString(data.GetRange(0, text.Length).ToArray()) == text;

    private static int IndexOf(List<byte> data, string text) =>
        Encoding.Latin1.GetString(data.ToArray()).IndexOf(text, StringComparison.Ordinal);
}

/// <summary>
/// A real mesh serving route <c>api</c> to one <see cref="RawUpstream"/>, and a raw-socket client connected to it: the bytes
/// the client sends and gets back, and the requests the upstream receives, are what a test checks. Disposing it closes
/// the connection, then stops the mesh and the upstream.
/// </summary>
internal sealed class RawMesh(RawUpstream upstream, ServedMesh mesh, RawHttp client) : IAsyncDisposable
{
    /// <summary>The upstream behind the mesh (answers 200 "ok" unless the test gave one that answers otherwise).</summary>
    public RawUpstream Upstream { get; } = upstream;

    /// <summary>The client's connection to the mesh.</summary>
    public RawHttp Client { get; } = client;

    /// <summary>Every request the upstream received, as it received it.</summary>
    public System.Collections.Concurrent.ConcurrentQueue<string> Requests => Upstream.Requests;

    /// <summary>Serves <paramref name="upstream"/> (default: a <see cref="RawUpstream"/> answering 200 "ok") through a mesh
    /// with <paramref name="options"/>, and connects a raw client to it.</summary>
    public static async Task<RawMesh> ConnectAsync(RawUpstream? upstream = null, MeshHostOptions? options = null)
    {
        upstream ??= new RawUpstream();
        ServedMesh? served = null;
        try
        {
            served = await MeshTest.ServeAsync(upstream.Upstream(), options);
            return new RawMesh(upstream, served, await RawHttp.ConnectAsync(served.Port));
        }
        catch
        {
            if (served is not null)
            {
                await served.DisposeAsync();
            }

            await upstream.DisposeAsync();
            throw;
        }
    }

    public Task SendAsync(string text) => Client.SendAsync(text);

    /// <inheritdoc cref="RawHttp.ReadAsync"/>
    public Task<RawResponse> ReadAsync(bool isHead = false, bool interim = false) => Client.ReadAsync(isHead, interim);

    /// <inheritdoc cref="RawHttp.ClosedAsync"/>
    public Task<bool> ClosedAsync() => Client.ClosedAsync();

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        try
        {
            await mesh.DisposeAsync();
        }
        finally
        {
            await Upstream.DisposeAsync();
        }
    }
}
