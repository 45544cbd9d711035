using System.Collections.Immutable;
using Berth.Core.Model;
using Berth.Core.Routing;
using Berth.Orchestration.Scheduling;
using Berth.Orchestration.State;

namespace Berth.Orchestration.Controllers;

/// <summary>Each service endpoint's stable (mesh) port: the spec's port, else the one persisted for it, else a free one,
/// assigned once and kept in the store for the life of the state folder. Callers only ever use these.</summary>
internal sealed class StablePortRegistry(StateStore store, PortAllocator ports)
{
    private ImmutableDictionary<(string Service, string Endpoint), int> _ports = ImmutableDictionary<(string, string), int>.Empty;
    private ImmutableSortedDictionary<string, string> _addresses = ImmutableSortedDictionary<string, string>.Empty;

    /// <summary>Each service's virtual address in pods (127.77.x.y), assigned once and kept, as its stable ports are.</summary>
    public ImmutableSortedDictionary<string, string> Addresses => Volatile.Read(ref _addresses);

    /// <summary>Every endpoint seen since start, including those of services since removed (their callers may still run).</summary>
    public ImmutableDictionary<(string Service, string Endpoint), int> Ports => Volatile.Read(ref _ports);

    /// <summary>Assigns (and persists) a port for every endpoint of <paramref name="app"/>; called under the lock.</summary>
    public void Assign(Application app)
    {
        var persisted = store.ListEndpointPorts();
        var next = _ports.ToBuilder();
        foreach (var s in app.Services)
        {
            foreach (var e in s.Endpoints)
            {
                var key = (s.Name, e.Name);
                var port = e.Port ?? (persisted.TryGetValue(key, out var p) ? p : ports.Allocate());
                ports.Reserve(port);
                if (!persisted.TryGetValue(key, out var old) || old != port)
                {
                    store.SaveEndpointPort(s.Name, e.Name, port);
                }

                next[key] = port;
            }
        }

        Volatile.Write(ref _ports, next.ToImmutable());
        AssignAddresses(app);
    }

    /// <summary>The stable port of an endpoint found at run time (a port an isolated service's pods listen on), assigned once
    /// and kept like the spec's own.</summary>
    public int Ensure(string service, string endpoint)
    {
        var key = (service, endpoint);
        if (Ports.TryGetValue(key, out var port))
        {
            return port;
        }

        port = store.ListEndpointPorts().TryGetValue(key, out var kept) ? kept : ports.Allocate();
        ports.Reserve(port);
        store.SaveEndpointPort(service, endpoint, port);
        Volatile.Write(ref _ports, _ports.SetItem(key, port));
        return port;
    }

    private void AssignAddresses(Application app)
    {
        var addresses = store.ListVirtualAddresses().ToImmutableSortedDictionary(StringComparer.Ordinal);
        var taken = addresses.Values.ToHashSet(StringComparer.Ordinal);
        var n = 0;
        foreach (var s in app.Services.Where(s => !addresses.ContainsKey(s.Name)))
        {
            string address;
            do
            {
                // 127.77.0.1 … 127.77.255.254: 65,024 services, never .0 or .255 (they confuse some resolvers and tools).
                n++;
                address = string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{PodDefaults.VirtualNetworkPrefix}{n / 254}.{(n % 254) + 1}");
            }
            while (taken.Contains(address));

            taken.Add(address);
            store.SaveVirtualAddress(s.Name, address);
            addresses = addresses.Add(s.Name, address);
        }

        Volatile.Write(ref _addresses, addresses);
    }
}
