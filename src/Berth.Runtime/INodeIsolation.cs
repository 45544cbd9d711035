using Berth.Core.Model;

namespace Berth.Runtime;

/// <summary>Partitions the machine into nodes: each node a cgroup with its own CPU set, CPU cap and memory cap.</summary>
public interface INodeIsolation
{
    /// <summary>Creates or updates the node's cgroup; returns its path relative to Berth's cgroup root, for <see cref="ReplicaSpec.Node"/>.</summary>
    Task<string> EnsureNodeAsync(NodeCgroupSpec node, CancellationToken cancellationToken);

    /// <summary>Removes the node's cgroup once no replica is left in it. Idempotent.</summary>
    Task RemoveNodeAsync(string path, CancellationToken cancellationToken);
}

/// <summary>A node's cgroup: where it sits under Berth's root and what it may use.</summary>
public sealed record NodeCgroupSpec
{
    /// <summary>Path relative to Berth's cgroup root, e.g. <c>shop/node-a</c>; segments of letters, digits, '.', '_' and '-'.</summary>
    public required string Path { get; init; }

    /// <summary>CPU cap of the whole node (CFS quota); null: uncapped.</summary>
    public CpuQuantity? Cpu { get; init; }

    /// <summary>Memory cap of the whole node; null: uncapped.</summary>
    public ByteSize? Memory { get; init; }

    /// <summary>The CPUs the node's replicas may run on, in cpuset list form (<c>0-1</c>, <c>1,3</c>); null: all of the parent's.</summary>
    public string? CpuSet { get; init; }

    /// <summary>The conventional path of an app's node: <c>{app}/{node}</c>.</summary>
    public static string PathFor(string app, string node) => $"{app}/{node}";
}

/// <summary>A replica could not be started: the message says why and what to change.</summary>
public sealed class ReplicaStartException(string message, Exception? inner = null) : Exception(message, inner);
