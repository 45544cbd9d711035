using System.Collections.Immutable;
using System.Globalization;
using Berth.Core.Model;
using Berth.Core.Routing;
using Berth.Orchestration.State;

namespace Berth.Orchestration.Controllers;

/// <summary>
/// The ports a pod's processes listen on, read from the kernel's socket table of the pod's namespace
/// (<c>/proc/PID/net/tcp</c> and <c>tcp6</c> of a process in the pod). Compose needs no <c>ports:</c> or <c>expose:</c> for
/// one container to call another on any port (a bridge network reaches them all); a pod holding only loopback is
/// reached only through the mesh, so for an isolated service that declares no port the mesh learns its ports by looking.
/// </summary>
internal static class PodPorts
{
    /// <summary>The discovered endpoint for a port: <c>tcp-8080</c>, as the loader names a second Compose port.</summary>
    public static string EndpointName(int port) => string.Create(CultureInfo.InvariantCulture, $"tcp-{port}");

    /// <summary>Listening TCP ports in <paramref name="pod"/> (any address), or none when its process is gone.</summary>
    public static ImmutableSortedSet<int> Listening(PodNetwork pod)
    {
        var proc = Path.GetDirectoryName(Path.GetDirectoryName(pod.NamespacePath));
        if (proc is null || (pod.NamespaceInode != 0 && PodSockets.InodeOf(pod.NamespacePath) != pod.NamespaceInode))
        {
            return [];
        }

        // The namespace's TCP socket counts first (issue #21): reading net/tcp walks the kernel's whole connection hash table,
        // shared by every namespace (~15 ms a table on the loaded 2-core machine, so 40 pods cost a second on every publish),
        // while sockstat reads two counters. A pod with no TCP socket at all listens on nothing. Only zero is taken as an
        // answer: discounting the data plane's own outbound listeners by their number made a replica's socket count as one
        // of them where the data plane could not open its listener (the replica held the address), so the replica's port
        // vanished and came back on every publish (a route flapping every few milliseconds, seen in a Docker pods test).
        if (TcpSocketsInUse(proc, "sockstat", "TCP:") is >= 0 and var v4 && TcpSocketsInUse(proc, "sockstat6", "TCP6:") is >= 0 and var v6 && v4 + v6 == 0)
        {
            return [];
        }

        var ports = ImmutableSortedSet.CreateBuilder<int>();
        foreach (var table in (string[])["tcp", "tcp6"])
        {
            string[] lines;
            try
            {
                lines = File.ReadAllLines(Path.Combine(proc, "net", table));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                continue;
            }

            // "  0: 0100007F:1F90 00000000:0000 0A …": local address:port in hex, state 0A = LISTEN.
            foreach (var line in lines.Skip(1))
            {
                var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (fields.Length > 3 && fields[3] == "0A" && fields[1].LastIndexOf(':') is var colon and > 0 && !MeshOwned(fields[1].AsSpan(0, colon))
                    && int.TryParse(fields[1].AsSpan(colon + 1), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var port))
                {
                    ports.Add(port);
                }
            }
        }

        return ports.ToImmutable();
    }

    /// <summary>A socket the data plane holds in the pod (an outbound listener on a service's virtual address in 127.77/16,
    /// or a host-gateway mirror in 127.78/16), not one of the replica's: its hex address (little-endian) ends in 4D7F / 4E7F.</summary>
    private static bool MeshOwned(ReadOnlySpan<char> hex) => hex.Length == 8 && (hex.EndsWith("4D7F") || hex.EndsWith("4E7F"));

    /// <summary>The <c>inuse</c> count of one protocol line of <c>/proc/PID/net/sockstat[6]</c> (per network namespace), or
    /// -1 when it cannot be read (then the tables are read, as before).</summary>
    private static int TcpSocketsInUse(string proc, string file, string prefix)
    {
        try
        {
            foreach (var line in File.ReadLines(Path.Combine(proc, "net", file)))
            {
                // "TCP: inuse 0 orphan 0 tw 0 alloc 28 mem 0" / "TCP6: inuse 1"
                var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (fields.Length > 2 && fields[0] == prefix && fields[1] == "inuse")
                {
                    return int.TryParse(fields[2], NumberStyles.None, CultureInfo.InvariantCulture, out var n) ? n : -1;
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }

        return -1;
    }

    /// <summary>The app with each isolated service that declares no endpoint given one TCP endpoint per port its running
    /// replicas listen on, and the replicas with those ports (what routes and pods are published from). Stable ports for
    /// them come from <paramref name="stable"/> (assigned once and kept, as for declared endpoints).</summary>
    public static (Application App, IReadOnlyCollection<ReplicaRecord> Replicas) WithDiscovered(Application app, IReadOnlyCollection<ReplicaRecord> replicas,
        Func<string, string, int> stable)
    {
        var found = new Dictionary<string, ImmutableSortedSet<int>>(StringComparer.Ordinal);
        var services = app.Services.ToDictionary(s => s.Name, StringComparer.Ordinal);
        foreach (var r in replicas)
        {
            if (r.Handle?.Pod is { } pod && r.Phase is ReplicaPhase.Running or ReplicaPhase.Ready
                && services.TryGetValue(r.Service, out var s) && s.Endpoints.IsDefaultOrEmpty)
            {
                found[r.Id] = Listening(pod);
            }
        }

        if (found.Count == 0)
        {
            return (app, replicas);
        }

        var byService = replicas.Where(r => found.ContainsKey(r.Id)).GroupBy(r => r.Service)
            .ToDictionary(g => g.Key, g => g.SelectMany(r => found[r.Id]).ToImmutableSortedSet(), StringComparer.Ordinal);
        var next = app with
        {
            Services = [.. app.Services.Select(s => byService.TryGetValue(s.Name, out var ports)
                ? s with { Endpoints = [.. ports.Select(p => new Endpoint { Name = EndpointName(p), TargetPort = p, Protocol = EndpointProtocol.Tcp, Port = stable(s.Name, EndpointName(p)) })] }
                : s)],
        };
        var withPorts = replicas.Select(r => found.TryGetValue(r.Id, out var ports)
            ? r with { Ports = r.Ports.SetItems(ports.Select(p => KeyValuePair.Create(EndpointName(p), p))) }
            : r).ToList();
        return (next, withPorts);
    }
}
