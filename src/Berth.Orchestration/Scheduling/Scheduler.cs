using System.Globalization;
using Berth.Core.Model;

namespace Berth.Orchestration.Scheduling;

/// <summary>What one replica needs from a node.</summary>
public sealed record PlacementRequest(string ReplicaId, string Service, long CpuMilli, long MemoryBytes)
{
    /// <summary>Ports the replica must listen on itself (a fixed target port); the machine's network is shared by all nodes.</summary>
    public IReadOnlyList<int> HostPorts { get; init; } = [];
}

/// <summary>Where a replica went, or why it could not go anywhere.</summary>
public readonly record struct PlacementResult(string? Node, string? Reason)
{
    public bool Placed => Node is not null;
}

/// <summary>A node's capacity and what is placed on it.</summary>
public sealed class NodeState(string name, long cpuMilli, long memoryBytes)
{
    private readonly Dictionary<string, int> _perService = new(StringComparer.Ordinal);

    public string Name { get; } = name;

    public long CpuMilli { get; } = cpuMilli;

    public long MemoryBytes { get; } = memoryBytes;

    public long AllocatedCpuMilli { get; internal set; }

    public long AllocatedMemoryBytes { get; internal set; }

    /// <summary>What scoring counts as allocated: requests with Kubernetes' non-zero defaults for replicas that request nothing.</summary>
    internal long ScoredCpuMilli { get; set; }

    internal long ScoredMemoryBytes { get; set; }

    public int Replicas { get; internal set; }

    public long FreeCpuMilli => CpuMilli - AllocatedCpuMilli;

    public long FreeMemoryBytes => MemoryBytes - AllocatedMemoryBytes;

    public int ReplicasOf(string service) => _perService.TryGetValue(service, out var n) ? n : 0;

    /// <summary>A copy frozen at this moment, for the control plane's published view.</summary>
    internal NodeState Snapshot()
    {
        var copy = new NodeState(Name, CpuMilli, MemoryBytes)
        {
            AllocatedCpuMilli = AllocatedCpuMilli,
            AllocatedMemoryBytes = AllocatedMemoryBytes,
            ScoredCpuMilli = ScoredCpuMilli,
            ScoredMemoryBytes = ScoredMemoryBytes,
            Replicas = Replicas,
        };
        foreach (var (service, n) in _perService)
        {
            copy._perService[service] = n;
        }

        return copy;
    }

    internal void Add(string service, int delta)
    {
        var n = ReplicasOf(service) + delta;
        if (n == 0)
        {
            _perService.Remove(service);
        }
        else
        {
            _perService[service] = n;
        }

        Replicas += delta;
    }
}

/// <summary>Places replicas on nodes: filter (requests fit, host ports free), then spread replicas of one service, then
/// score by policy. Kubernetes' scheduling framework in miniature; not thread-safe (the reconciler owns it).</summary>
public sealed class Scheduler
{
    /// <summary>Scoring counts a replica that requests nothing as 100m CPU, as Kubernetes' DefaultMilliCPURequest.</summary>
    public const long DefaultScoredCpuMilli = 100;

    /// <summary>And as 200 MiB of memory, as Kubernetes' DefaultMemoryRequest.</summary>
    public const long DefaultScoredMemoryBytes = 200L << 20;

    /// <summary>The node name used when the spec declares none.</summary>
    public const string LocalNodeName = "local";

    private readonly NodeState[] _nodes;
    private readonly Dictionary<string, NodeState> _byName;
    private readonly Dictionary<string, (NodeState Node, PlacementRequest Request)> _placed = new(StringComparer.Ordinal);
    private readonly Dictionary<int, string> _hostPorts = [];
    private readonly SchedulerPolicy _policy;
    private readonly Random _random;
    private readonly Func<int, bool> _portFreeOnMachine;
    private readonly Dictionary<string, int[]> _spread = new(StringComparer.Ordinal);
    private readonly Dictionary<NodeState, int> _index = [];
    private int _cursor;
    private int _nextStart;

    /// <param name="nodes">The nodes; see <see cref="NodesFor"/> for the default single node.</param>
    /// <param name="policy">How fitting nodes are scored.</param>
    /// <param name="random">Randomness for <see cref="SchedulerPolicy.Random"/>; injected so tests are repeatable.</param>
    /// <param name="portFreeOnMachine">Whether nothing else listens on a port; default: always true.</param>
    public Scheduler(IEnumerable<NodeState> nodes, SchedulerPolicy policy, Random? random = null, Func<int, bool>? portFreeOnMachine = null)
    {
        _nodes = [.. nodes];
        if (_nodes.Length == 0)
        {
            throw new ArgumentException("at least one node is needed", nameof(nodes));
        }

        _byName = _nodes.ToDictionary(n => n.Name, StringComparer.Ordinal);
        for (var i = 0; i < _nodes.Length; i++)
        {
            _index[_nodes[i]] = i;
        }

        FeasibleNodesToFind = NumFeasibleNodesToFind(_nodes.Length);
        _policy = policy;
        _random = random ?? Random.Shared;
        _portFreeOnMachine = portFreeOnMachine ?? (_ => true);
    }

    public IReadOnlyList<NodeState> Nodes => _nodes;

    /// <summary>How many fitting nodes a placement looks for before it stops searching and scores them.</summary>
    public int FeasibleNodesToFind { get; }

    /// <summary>kube-scheduler's adaptive percentageOfNodesToScore: all nodes up to 100, else 50% minus 1% per 125 nodes,
    /// at least 5% and at least 100 nodes (5,000 nodes: 500). The next search starts where the last one stopped, so every
    /// node gets its turn.</summary>
    public static int NumFeasibleNodesToFind(int nodes)
    {
        if (nodes < 100)
        {
            return nodes;
        }

        var percent = Math.Max(5, 50 - (nodes / 125));
        return Math.Max(100, nodes * percent / 100);
    }

    /// <summary>The app's nodes, or one node with this machine's cores and memory.</summary>
    public static IEnumerable<NodeState> NodesFor(Application app) =>
        app.Nodes.IsDefaultOrEmpty
            ? [new NodeState(LocalNodeName, Environment.ProcessorCount * 1000L, MachineMemoryBytes())]
            : app.Nodes.Select(n => new NodeState(n.Name, n.Cpu.MilliCores, n.Memory.Bytes));

    /// <summary>Memory available to this process's machine or container (cgroup-aware).</summary>
    public static long MachineMemoryBytes() => GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;

    /// <param name="replicaId">The replica.</param>
    /// <param name="service">Its service.</param>
    /// <param name="inPod">It runs in a pod: its ports are its pod's own, so fixed target ports never clash.</param>
    public static PlacementRequest RequestFor(string replicaId, Service service, bool inPod = false)
    {
        var ports = inPod ? [] : service.Endpoints.Where(e => e.TargetPort is not null).Select(e => e.TargetPort!.Value).ToArray();
        return new PlacementRequest(replicaId, service.Name, service.Resources.EffectiveCpuRequest.MilliCores,
            service.Resources.EffectiveMemoryRequest.Bytes) { HostPorts = ports };
    }

    public string? NodeOf(string replicaId) => _placed.TryGetValue(replicaId, out var p) ? p.Node.Name : null;

    /// <summary>Chooses a node and reserves the request on it, or says why none fits.</summary>
    public PlacementResult Place(PlacementRequest request)
    {
        if (_placed.TryGetValue(request.ReplicaId, out var existing))
        {
            return new PlacementResult(existing.Node.Name, null);
        }

        foreach (var port in request.HostPorts)
        {
            if (_hostPorts.TryGetValue(port, out var owner))
            {
                return new PlacementResult(null, $"port {port} is taken by replica {owner}; run fewer replicas or let Berth assign the port (drop targetPort)");
            }

            if (!_portFreeOnMachine(port))
            {
                return new PlacementResult(null, $"port {port} is in use by another program on this machine");
            }
        }

        NodeState? best = null;
        var bestSpread = int.MaxValue;
        var bestScore = double.MinValue;
        var ties = 0;
        var found = 0;
        var noCpu = 0;
        var noMemory = 0;
        var cpuWanted = request.CpuMilli == 0 ? DefaultScoredCpuMilli : request.CpuMilli;
        var memoryWanted = request.MemoryBytes == 0 ? DefaultScoredMemoryBytes : request.MemoryBytes;
        var start = _policy == SchedulerPolicy.RoundRobin ? _cursor : _nextStart;
        var spreadCounts = _spread.GetValueOrDefault(request.Service);
        var visited = 0;

        for (var k = 0; k < _nodes.Length && found < FeasibleNodesToFind; k++)
        {
            visited++;
            var i = start + k;
            if (i >= _nodes.Length)
            {
                i -= _nodes.Length;
            }

            var node = _nodes[i];
            var cpuOk = node.FreeCpuMilli >= request.CpuMilli;
            var memoryOk = node.FreeMemoryBytes >= request.MemoryBytes;
            if (!cpuOk || !memoryOk)
            {
                noCpu += cpuOk ? 0 : 1;
                noMemory += memoryOk ? 0 : 1;
                continue;
            }

            found++;
            var spread = spreadCounts is null ? 0 : spreadCounts[i];
            if (spread > bestSpread)
            {
                continue;
            }

            double score = _policy switch
            {
                SchedulerPolicy.LeastLoaded => -Utilization(node, cpuWanted, memoryWanted),
                SchedulerPolicy.BinPack => Utilization(node, cpuWanted, memoryWanted),
                // Round-robin takes the first node in turn; random draws among equals (reservoir sampling).
                SchedulerPolicy.RoundRobin => -k,
                SchedulerPolicy.Random => 0,
            };

            if (spread < bestSpread || score > bestScore)
            {
                best = node;
                bestSpread = spread;
                bestScore = score;
                ties = 1;
            }
            else if (_policy == SchedulerPolicy.Random && score == bestScore && _random.Next(++ties) == 0)
            {
                best = node;
            }
        }

        _nextStart = (start + visited) % _nodes.Length;

        if (best is null)
        {
            return new PlacementResult(null, Unschedulable(request, noCpu, noMemory));
        }

        Reserve(request, best);
        if (_policy == SchedulerPolicy.RoundRobin)
        {
            _cursor = (Array.IndexOf(_nodes, best) + 1) % _nodes.Length;
        }

        return new PlacementResult(best.Name, null);
    }

    /// <summary>Records a placement made earlier (adoption after a control-plane restart). False if the node is gone.</summary>
    public bool Restore(PlacementRequest request, string node)
    {
        if (_placed.ContainsKey(request.ReplicaId))
        {
            return true;
        }

        if (!_byName.TryGetValue(node, out var n))
        {
            return false;
        }

        Reserve(request, n);
        return true;
    }

    /// <summary>Frees what a replica held. Idempotent.</summary>
    public void Release(string replicaId)
    {
        if (!_placed.Remove(replicaId, out var p))
        {
            return;
        }

        var (node, request) = p;
        node.AllocatedCpuMilli -= request.CpuMilli;
        node.AllocatedMemoryBytes -= request.MemoryBytes;
        node.ScoredCpuMilli -= request.CpuMilli == 0 ? DefaultScoredCpuMilli : request.CpuMilli;
        node.ScoredMemoryBytes -= request.MemoryBytes == 0 ? DefaultScoredMemoryBytes : request.MemoryBytes;
        node.Add(request.Service, -1);
        _spread[request.Service][_index[node]]--;
        foreach (var port in request.HostPorts)
        {
            _hostPorts.Remove(port);
        }
    }

    private void Reserve(PlacementRequest request, NodeState node)
    {
        node.AllocatedCpuMilli += request.CpuMilli;
        node.AllocatedMemoryBytes += request.MemoryBytes;
        node.ScoredCpuMilli += request.CpuMilli == 0 ? DefaultScoredCpuMilli : request.CpuMilli;
        node.ScoredMemoryBytes += request.MemoryBytes == 0 ? DefaultScoredMemoryBytes : request.MemoryBytes;
        node.Add(request.Service, 1);
        if (!_spread.TryGetValue(request.Service, out var counts))
        {
            _spread[request.Service] = counts = new int[_nodes.Length];
        }

        counts[_index[node]]++;
        _placed[request.ReplicaId] = (node, request);
        foreach (var port in request.HostPorts)
        {
            _hostPorts[port] = request.ReplicaId;
        }
    }

    /// <summary>Mean of CPU and memory fractions allocated once the replica is added (Kubernetes' resource scoring).</summary>
    private static double Utilization(NodeState node, long cpu, long memory)
    {
        var c = node.CpuMilli == 0 ? 1 : (double)(node.ScoredCpuMilli + cpu) / node.CpuMilli;
        var m = node.MemoryBytes == 0 ? 1 : (double)(node.ScoredMemoryBytes + memory) / node.MemoryBytes;
        return (c + m) / 2;
    }

    private string Unschedulable(PlacementRequest request, int noCpu, int noMemory)
    {
        var parts = new List<string>();
        if (noCpu > 0)
        {
            var most = _nodes.Max(n => n.FreeCpuMilli);
            parts.Add($"{noCpu} insufficient cpu (needs {new CpuQuantity(request.CpuMilli)}, most free {new CpuQuantity(Math.Max(0, most))})");
        }

        if (noMemory > 0)
        {
            var most = _nodes.Max(n => n.FreeMemoryBytes);
            parts.Add($"{noMemory} insufficient memory (needs {new ByteSize(request.MemoryBytes)}, most free {new ByteSize(Math.Max(0, most))})");
        }

        return string.Create(CultureInfo.InvariantCulture,
            $"0/{_nodes.Length} nodes fit: {string.Join(", ", parts)}; it starts when capacity frees (scale something down or add nodes)");
    }
}
