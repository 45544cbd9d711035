using System.Collections.Immutable;
using Berth.Orchestration.Scheduling;
using Berth.Orchestration.State;

namespace Berth.Orchestration.Controllers;

/// <summary>An immutable picture of the control plane, published once per reconcile pass and after every API call or
/// background completion. Every reader outside the lock (the API, the autoscaler, the CLI) reads one of these, so what it
/// sees is consistent: the replicas, the revision and the ports all come from the same moment.</summary>
public sealed record ControlPlaneView(
    RevisionRecord? Current,
    ImmutableArray<ReplicaRecord> Replicas,
    ImmutableDictionary<(string Service, string Endpoint), int> StablePorts,
    ImmutableArray<NodeState> Nodes)
{
    public static ControlPlaneView Empty { get; } = new(null, [], ImmutableDictionary<(string, string), int>.Empty, []);
}
