using System.Net;
using System.Net.Sockets;

namespace Berth.Orchestration.Scheduling;

/// <summary>Hands out ports that nothing on the machine listens on and that no replica or endpoint of this app holds.</summary>
public sealed class PortAllocator
{
    private readonly HashSet<int> _reserved = [];
    private readonly Func<int> _osFreePort;

    /// <param name="osFreePort">A port the OS says is free now; default: bind 127.0.0.1:0 and read it back.</param>
    public PortAllocator(Func<int>? osFreePort = null) => _osFreePort = osFreePort ?? OsFreePort;

    public bool IsReserved(int port) => _reserved.Contains(port);

    public void Reserve(int port) => _reserved.Add(port);

    public void Release(int port) => _reserved.Remove(port);

    public int Allocate()
    {
        // The OS never hands out a port that is listening; skipping ours covers replicas that are between restarts.
        for (var attempt = 0; attempt < 1000; attempt++)
        {
            var port = _osFreePort();
            if (_reserved.Add(port))
            {
                return port;
            }
        }

        throw new InvalidOperationException("no free port found after 1000 tries");
    }

    /// <summary>Whether nothing listens on <paramref name="port"/> (any IPv4 address).</summary>
    public static bool IsFreeOnMachine(int port)
    {
        try
        {
            using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            socket.Bind(new IPEndPoint(IPAddress.Any, port));
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    private static int OsFreePort()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)socket.LocalEndPoint!).Port;
    }
}
