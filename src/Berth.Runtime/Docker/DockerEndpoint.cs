using System.Net.Sockets;
using Berth.Runtime.Capabilities;

namespace Berth.Runtime.Docker;

/// <summary>Which Docker engine to talk to, found as the docker CLI does: the options, else <c>DOCKER_HOST</c>, else the
/// rootful socket when this user may use it, else rootless Docker's <c>$XDG_RUNTIME_DIR/docker.sock</c> (the CLI's
/// rootless context). Each socket is tried by connecting to it, so a socket this user may not open is passed over.</summary>
internal static class DockerEndpoint
{
    /// <param name="Host">The address used.</param>
    /// <param name="Source">Where it came from, e.g. <c>the default; DOCKER_HOST is not set</c>.</param>
    /// <param name="Tried">Every socket tried with what happened, when none answered (for the error).</param>
    public sealed record Choice(string Host, string Source, IReadOnlyList<string> Tried);

    public static Choice Resolve(DockerDriverOptions options)
    {
        if (options.Host is not null)
        {
            return new Choice(options.Host, "from the driver options", []);
        }

        if (Environment.GetEnvironmentVariable("DOCKER_HOST") is { Length: > 0 } dockerHost)
        {
            return new Choice(dockerHost, "from DOCKER_HOST", []);
        }

        var runtimeDir = options.XdgRuntimeDir ?? (Environment.GetEnvironmentVariable("XDG_RUNTIME_DIR") is { Length: > 0 } xdg ? xdg : $"/run/user/{HostUser.Uid}");
        var rootless = $"unix://{Path.Combine(runtimeDir, "docker.sock")}";
        var tried = new List<string>();
        var defaultProblem = TryConnect(options.DefaultSocket);
        if (defaultProblem is null)
        {
            return new Choice(options.DefaultSocket, "the default; DOCKER_HOST is not set", []);
        }

        tried.Add($"{options.DefaultSocket} ({defaultProblem})");
        var rootlessProblem = TryConnect(rootless);
        if (rootlessProblem is null)
        {
            return new Choice(rootless, $"rootless Docker's socket in $XDG_RUNTIME_DIR; DOCKER_HOST is not set and {options.DefaultSocket} is not usable: {defaultProblem}", []);
        }

        tried.Add($"{rootless} ({rootlessProblem})");
        return new Choice(options.DefaultSocket, "the default; DOCKER_HOST is not set", tried);
    }

    /// <summary>Null when a connection to the unix socket is accepted; otherwise what went wrong, in words.</summary>
    private static string? TryConnect(string host)
    {
        if (!host.StartsWith("unix://", StringComparison.Ordinal))
        {
            return null;
        }

        var path = host["unix://".Length..];
        try
        {
            using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            socket.Connect(new UnixDomainSocketEndPoint(path));
            return null;
        }
        catch (SocketException e)
        {
            return e.SocketErrorCode switch
            {
                SocketError.AddressNotAvailable or SocketError.AddressFamilyNotSupported when !File.Exists(path) => "no such socket",
                SocketError.AccessDenied => $"permission denied: {HostUser.Describe(HostUser.Uid)} may not use it (not in the docker group?)",
                SocketError.ConnectionRefused => "connection refused: nothing listens there",
                _ when !File.Exists(path) && !Directory.Exists(path) => "no such socket",
                _ => e.Message,
            };
        }
    }
}
