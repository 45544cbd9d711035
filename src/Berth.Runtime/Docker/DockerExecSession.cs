using global::Docker.DotNet;
using global::Docker.DotNet.Models;

namespace Berth.Runtime.Docker;

/// <summary>What <c>berth exec</c> asks of a container, as <c>docker exec</c>'s options.</summary>
public sealed record DockerExecRequest(IReadOnlyList<string> Command, bool Tty, bool AttachStdin, IReadOnlyList<string> Env, string? WorkingDir, string? User);

/// <summary>An interactive command in a container through the engine's exec API (<c>docker exec</c> without the docker
/// CLI): create, start attached, copy stdin in and stdout/stderr out (one raw stream with a TTY, demultiplexed without),
/// resize the TTY on request, and the command's exit code from inspecting the exec at the end.</summary>
public sealed class DockerExecSession : IAsyncDisposable
{
    private readonly DockerClient _client;
    private readonly string _execId;
    private readonly MultiplexedStream _stream;

    private DockerExecSession(DockerClient client, string execId, MultiplexedStream stream)
    {
        _client = client;
        _execId = execId;
        _stream = stream;
    }

    /// <summary>Creates and starts the exec in <paramref name="containerId"/> on the engine this user reaches (as the driver finds it).</summary>
    public static async Task<DockerExecSession> StartAsync(string containerId, DockerExecRequest request, CancellationToken cancellationToken)
    {
        var client = new DockerClientConfiguration(DockerDriver.FindEngine(new DockerDriverOptions())).CreateClient();
        try
        {
            var created = await client.Exec.ExecCreateContainerAsync(containerId, new ContainerExecCreateParameters
            {
                Cmd = [.. request.Command],
                Tty = request.Tty,
                AttachStdin = request.AttachStdin,
                AttachStdout = true,
                AttachStderr = true,
                Env = [.. request.Env],
                WorkingDir = request.WorkingDir,
                User = request.User,
            }, cancellationToken).ConfigureAwait(false);
            var stream = await client.Exec.StartAndAttachContainerExecAsync(created.ID, request.Tty, cancellationToken).ConfigureAwait(false);
            return new DockerExecSession(client, created.ID, stream);
        }
        catch (Exception e) when (e is DockerApiException or HttpRequestException or System.Net.Sockets.SocketException or TimeoutException)
        {
            client.Dispose();
            throw new DockerUnavailableException(e is DockerApiException api ? api.ResponseBody.Trim() : $"Docker is not reachable: {e.Message}", e);
        }
    }

    /// <summary>Copies <paramref name="stdin"/> (when given) into the command and its output out until the command ends;
    /// returns its exit code.</summary>
    public async Task<int> RunAsync(Stream? stdin, Stream stdout, Stream stderr, CancellationToken cancellationToken)
    {
        if (stdin is not null)
        {
            // Not awaited: a terminal's stdin never ends, and the command's end is what ends the session.
            _ = Task.Run(async () =>
            {
                var buffer = new byte[4096];
                try
                {
                    int n;
                    while ((n = await stdin.ReadAsync(buffer, cancellationToken).ConfigureAwait(false)) > 0)
                    {
                        await _stream.WriteAsync(buffer, 0, n, cancellationToken).ConfigureAwait(false);
                    }

                    _stream.CloseWrite();
                }
                catch (Exception e) when (e is IOException or ObjectDisposedException or OperationCanceledException)
                {
                    // The command ended (the stream is closed) or the user cancelled: nothing more to send.
                }
            }, cancellationToken);
        }

        var output = new byte[81920];
        while (true)
        {
            var read = await _stream.ReadOutputAsync(output, 0, output.Length, cancellationToken).ConfigureAwait(false);
            if (read.EOF)
            {
                break;
            }

            var target = read.Target == MultiplexedStream.TargetStream.StandardError ? stderr : stdout;
            await target.WriteAsync(output.AsMemory(0, read.Count), cancellationToken).ConfigureAwait(false);
            await target.FlushAsync(cancellationToken).ConfigureAwait(false);
        }

        // The output ends a moment before the engine records the exit code.
        for (var attempt = 0; ; attempt++)
        {
            var inspect = await _client.Exec.InspectContainerExecAsync(_execId, cancellationToken).ConfigureAwait(false);
            if (!inspect.Running || attempt >= 50)
            {
                return (int)inspect.ExitCode;
            }

            await Task.Delay(TimeSpan.FromMilliseconds(100), cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Sets the TTY's size (the terminal was resized).</summary>
    public Task ResizeAsync(int columns, int rows, CancellationToken cancellationToken) =>
        _client.Exec.ResizeContainerExecTtyAsync(_execId, new ContainerResizeParameters { Width = columns, Height = rows }, cancellationToken);

    public ValueTask DisposeAsync()
    {
        _stream.Dispose();
        _client.Dispose();
        return ValueTask.CompletedTask;
    }
}
