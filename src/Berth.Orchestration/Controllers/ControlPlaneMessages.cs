using Berth.Core.Model;

namespace Berth.Orchestration.Controllers;

/// <summary>The user-facing texts the control plane and its API repeat, written once.</summary>
public static class ControlPlaneMessages
{
    public const string NothingApplied = "nothing is applied yet; run 'berth up' first";

    /// <summary>How an exit found by a restarted control plane is worded (the replica vanished without an exit record).</summary>
    public const string LostWithControlPlane = "while the control plane was down";

    public static string NoService(Application app, string service) =>
        $"no service '{service}' in app '{app.Name}'; known: {string.Join(", ", app.Services.Select(s => s.Name))}";

    /// <summary>Why a replica waits while its record cannot be written (it is never started without one).</summary>
    public static string NotStartedStoreFault(State.StateStoreException e) =>
        $"not started until its record can be written: {e.Problem}; {e.Fix}";

    public static string NoReplica(string replicaId) => $"no replica '{replicaId}'; 'berth ps' lists them";

    /// <summary>Issue #14 §10: a PATCH that sets <c>image</c> on a process service is refused rather than switching its runtime.
    /// A process service's <c>run:</c>, working folder (a host path), inherited environment and volume folders mean something
    /// else in a container, so switching in place could start a container that cannot work, with no loader to say why.</summary>
    public static ControlPlaneException ImageOnProcessServiceError(Service service) => new(ControlPlaneError.Conflict,
        $"service '{service.Name}' runs as a process ({(service.Runtime == RuntimeKind.Process ? "runtime: process" : "run: with no image")}); " +
        "a PATCH does not move a service to Docker, because its run:, working_dir and volumes mean something else in a container. " +
        "To run it from an image, set image: (and runtime: docker) in the spec and apply it with 'berth up'; to change the process, PATCH \"command\" or \"env\"");

    public static ControlPlaneException NothingAppliedError() => new(ControlPlaneError.Conflict, NothingApplied);

    public static ControlPlaneException NoServiceError(Application app, string service) => new(ControlPlaneError.NotFound, NoService(app, service));

    public static ControlPlaneException NoReplicaError(string replicaId) => new(ControlPlaneError.NotFound, NoReplica(replicaId));
}
