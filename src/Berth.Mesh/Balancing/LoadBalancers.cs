using Berth.Core.Model;
using Berth.Mesh.Routing;

namespace Berth.Mesh.Balancing;

/// <summary>Picks one endpoint among healthy candidates (never empty); the hash key is for consistent hashing.</summary>
internal interface ILoadBalancer
{
    EndpointState Pick(IReadOnlyList<EndpointState> candidates, string? hashKey);
}

/// <summary>Creates the balancer a policy names.</summary>
internal static class LoadBalancers
{
    public static ILoadBalancer Create(LoadBalancing kind, IReadOnlyList<EndpointState> all, Random random) => kind switch
    {
        LoadBalancing.RoundRobin => new RoundRobinBalancer(),
        LoadBalancing.Random => new RandomBalancer(random),
        LoadBalancing.PeakEwma => new PeakEwmaBalancer(random),
        LoadBalancing.ConsistentHash => new ConsistentHashBalancer(all, new PowerOfTwoChoicesBalancer(random)),
        LoadBalancing.LeastConnections => new LeastActiveBalancer(),
        LoadBalancing.LeastRequest => new PowerOfTwoChoicesBalancer(random),
    };
}

/// <summary>Round-robin over the candidates.</summary>
internal sealed class RoundRobinBalancer : ILoadBalancer
{
    private uint _counter;

    public EndpointState Pick(IReadOnlyList<EndpointState> candidates, string? hashKey)
    {
        var n = Interlocked.Increment(ref _counter);
        return candidates[(int)(n % (uint)candidates.Count)];
    }
}

/// <summary>Uniformly random.</summary>
internal sealed class RandomBalancer(Random random) : ILoadBalancer
{
    public EndpointState Pick(IReadOnlyList<EndpointState> candidates, string? hashKey) => candidates[random.Next(candidates.Count)];
}

/// <summary>Least-request by power of two choices: two random picks, the one with fewer requests in flight (as YARP and Envoy).</summary>
internal sealed class PowerOfTwoChoicesBalancer(Random random) : ILoadBalancer
{
    public EndpointState Pick(IReadOnlyList<EndpointState> candidates, string? hashKey)
    {
        if (candidates.Count == 1)
        {
            return candidates[0];
        }

        var a = random.Next(candidates.Count);
        var b = random.Next(candidates.Count - 1);
        if (b >= a)
        {
            b++;
        }

        return candidates[a].Active <= candidates[b].Active ? candidates[a] : candidates[b];
    }
}

/// <summary>Peak-EWMA by power of two choices (Linkerd): the lower of latency estimate × (in-flight + 1).</summary>
internal sealed class PeakEwmaBalancer(Random random) : ILoadBalancer
{
    public EndpointState Pick(IReadOnlyList<EndpointState> candidates, string? hashKey)
    {
        if (candidates.Count == 1)
        {
            return candidates[0];
        }

        var a = random.Next(candidates.Count);
        var b = random.Next(candidates.Count - 1);
        if (b >= a)
        {
            b++;
        }

        return Cost(candidates[a]) <= Cost(candidates[b]) ? candidates[a] : candidates[b];
    }

    private static double Cost(EndpointState e) => e.Ewma.EstimateTicks * (e.Active + 1);
}

/// <summary>Fewest in flight (TCP: open connections); ties go to the first.</summary>
internal sealed class LeastActiveBalancer : ILoadBalancer
{
    public EndpointState Pick(IReadOnlyList<EndpointState> candidates, string? hashKey)
    {
        var best = candidates[0];
        for (var i = 1; i < candidates.Count; i++)
        {
            if (candidates[i].Active < best.Active)
            {
                best = candidates[i];
            }
        }

        return best;
    }
}

/// <summary>
/// Consistent hashing on a ring of 160 points per endpoint (Ketama's count, FNV-1a): the same key reaches the same
/// endpoint while it is a candidate, and only that endpoint's keys move when it leaves. Without a key: the fallback.
/// </summary>
internal sealed class ConsistentHashBalancer : ILoadBalancer
{
    private const int PointsPerEndpoint = 160;

    private readonly ulong[] _points;
    private readonly EndpointState[] _owners;
    private readonly ILoadBalancer _fallback;

    public ConsistentHashBalancer(IReadOnlyList<EndpointState> all, ILoadBalancer fallback)
    {
        _fallback = fallback;
        var ring = new List<(ulong Point, EndpointState Owner)>(all.Count * PointsPerEndpoint);
        foreach (var e in all)
        {
            for (var i = 0; i < PointsPerEndpoint; i++)
            {
                ring.Add((Fnv1a($"{e.Key}#{i}"), e));
            }
        }

        ring.Sort((x, y) => x.Point.CompareTo(y.Point));
        _points = ring.Select(r => r.Point).ToArray();
        _owners = ring.Select(r => r.Owner).ToArray();
    }

    public EndpointState Pick(IReadOnlyList<EndpointState> candidates, string? hashKey)
    {
        if (hashKey is null || _points.Length == 0)
        {
            return _fallback.Pick(candidates, null);
        }

        var start = Array.BinarySearch(_points, Fnv1a(hashKey));
        if (start < 0)
        {
            start = ~start;
        }

        for (var i = 0; i < _points.Length; i++)
        {
            var owner = _owners[(start + i) % _points.Length];
            for (var c = 0; c < candidates.Count; c++)
            {
                if (ReferenceEquals(candidates[c], owner))
                {
                    return owner;
                }
            }
        }

        return _fallback.Pick(candidates, null);
    }

    internal static ulong Fnv1a(string text)
    {
        var hash = 14695981039346656037UL;
        foreach (var ch in text)
        {
            hash = (hash ^ ch) * 1099511628211UL;
        }

        // FNV alone spreads short similar keys poorly; one avalanche round (from SplitMix64) fixes that.
        hash ^= hash >> 33;
        hash *= 0xff51afd7ed558ccdUL;
        hash ^= hash >> 33;
        return hash;
    }
}
