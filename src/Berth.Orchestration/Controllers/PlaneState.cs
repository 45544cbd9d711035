using Berth.Core.Model;
using Berth.Orchestration.Scheduling;
using Berth.Orchestration.State;
using Berth.Runtime;
using Microsoft.Extensions.Logging;

namespace Berth.Orchestration.Controllers;

/// <summary>The control plane's working state: replica records and what is kept in memory beside them, the revision in
/// force and the scheduler. Mutable and touched only under the loop's lock; readers outside it use <see cref="ControlPlaneView"/>.
/// Every change of a record goes through <see cref="Save"/>/<see cref="Delete"/>, so memory and the store never differ.</summary>
internal sealed class PlaneState(OrchestratorOptions options, StateStore store, IReadOnlyDictionary<RuntimeKind, IWorkloadDriver> drivers,
    TimeProvider time, Random random, ILogger logger, EventBus events, ReconcileLoop loop, PortAllocator ports)
{
    public OrchestratorOptions Options { get; } = options;

    public StateStore Store { get; } = store;

    public IReadOnlyDictionary<RuntimeKind, IWorkloadDriver> Drivers { get; } = drivers;

    public TimeProvider Time { get; } = time;

    public Random Random { get; } = random;

    public ILogger Logger { get; } = logger;

    public ReconcileLoop Loop { get; } = loop;

    public PortAllocator Ports { get; } = ports;

    public Dictionary<string, ReplicaRecord> Replicas { get; } = new(StringComparer.Ordinal);

    public Dictionary<string, ReplicaRuntime> Runtime { get; } = new(StringComparer.Ordinal);

    /// <summary>The desired state in force; null before the first apply.</summary>
    public RevisionRecord? Current { get; set; }

    public Scheduler? Scheduler { get; set; }

    /// <summary>Set by <c>down</c>: the reconciler does nothing more.</summary>
    public bool Down { get; set; }

    public DateTimeOffset Now => Time.GetUtcNow();

    public ReplicaRecord Save(ReplicaRecord r)
    {
        Replicas[r.Id] = r;
        Store.SaveReplica(r);
        return r;
    }

    public void Delete(ReplicaRecord r)
    {
        Replicas.Remove(r.Id);
        if (Runtime.Remove(r.Id, out var rt))
        {
            rt.Watch?.Cancel();
        }

        Store.DeleteReplica(r.Id);
    }

    /// <summary>Gives back the replica's node capacity and ports.</summary>
    public void Release(ReplicaRecord r)
    {
        Scheduler?.Release(r.Id);
        foreach (var p in r.Pod ? [] : r.Ports.Values)
        {
            Ports.Release(p);
        }
    }

    public void Emit(string type, string? service, string? replica, string message)
    {
        events.Emit(type, service, replica, message);
        Log.Event(Logger, type, service, replica, message);
    }

    public IWorkloadDriver DriverFor(RuntimeKind kind) =>
        Drivers.TryGetValue(kind, out var d) ? d : throw new ControlPlaneException(ControlPlaneError.Conflict, $"no {kind} driver in this control plane");

    public Service? ServiceOf(ReplicaRecord r) => Current?.Application.FindService(r.Service);

    /// <summary>Whether a new replica of <paramref name="service"/> runs in a pod: the service is isolated and its runtime can make pods here.</summary>
    public bool InPod(Service service) => service.EffectiveNetwork == NetworkMode.Isolated && Options.PodRuntimes.Contains(service.EffectiveRuntime);

    public string NewReplicaId(string service)
    {
        while (true)
        {
            var id = $"{service}-{Random.Next(0x100000):x5}";
            if (!Replicas.ContainsKey(id))
            {
                return id;
            }
        }
    }
}
