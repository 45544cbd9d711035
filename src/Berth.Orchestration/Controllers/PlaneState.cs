using Berth.Core.Model;
using Berth.Orchestration.Scheduling;
using Berth.Orchestration.State;
using Berth.Runtime;
using Microsoft.Extensions.Logging;

namespace Berth.Orchestration.Controllers;

/// <summary>The control plane's working state: replica records and what is kept in memory beside them, the revision in
/// force and the scheduler. Mutable and touched only under the loop's lock; readers outside it use <see cref="ControlPlaneView"/>.
/// Every change of a record goes through <see cref="Save"/>/<see cref="SaveFirst"/>/<see cref="Delete"/>. When the store
/// cannot be written (a full disk), memory leads and the records it could not write are written again at the start of
/// every pass (<see cref="RetryUnsaved"/>) until they are; only a start waits for its record (<see cref="SaveFirst"/>).</summary>
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

    private readonly HashSet<string> _unsaved = new(StringComparer.Ordinal);

    /// <summary>The store fault that left records unwritten; null once every record is written again.</summary>
    public StateStoreException? StoreFault { get; private set; }

    /// <summary>Keeps the record in memory and writes it; a store fault is remembered and the write retried each pass.</summary>
    public ReplicaRecord Save(ReplicaRecord r)
    {
        Replicas[r.Id] = r;
        Write(r.Id);
        return r;
    }

    /// <summary>Writes the record and only then keeps it: what a start needs (a replica never runs without its record).
    /// On a store fault nothing changes and the fault is thrown.</summary>
    public ReplicaRecord SaveFirst(ReplicaRecord r)
    {
        try
        {
            Store.SaveReplica(r);
        }
        catch (StateStoreException e)
        {
            StoreFault = e;
            throw;
        }

        Replicas[r.Id] = r;
        _unsaved.Remove(r.Id);
        return r;
    }

    public void Delete(ReplicaRecord r)
    {
        Replicas.Remove(r.Id);
        if (Runtime.Remove(r.Id, out var rt))
        {
            rt.Watch?.Cancel();
        }

        Write(r.Id);
    }

    /// <summary>Writes again what a store fault left unwritten (the newest record, or the delete). True when nothing is left.</summary>
    public bool RetryUnsaved()
    {
        foreach (var id in _unsaved.ToList())
        {
            if (!Write(id))
            {
                return false;
            }
        }

        StoreFault = null;
        return true;
    }

    private bool Write(string id)
    {
        try
        {
            if (Replicas.TryGetValue(id, out var r))
            {
                Store.SaveReplica(r);
            }
            else
            {
                Store.DeleteReplica(id);
            }

            _unsaved.Remove(id);
            return true;
        }
        catch (StateStoreException e)
        {
            if (_unsaved.Add(id) || StoreFault is null)
            {
                Log.StoreWriteFailed(Logger, id, e.Message);
            }

            StoreFault = e;
            return false;
        }
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
