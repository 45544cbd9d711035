namespace Berth.Orchestration;

public enum ControlPlaneError
{
    /// <summary>No such service, replica or revision.</summary>
    NotFound,

    /// <summary>The request is malformed or out of range.</summary>
    Invalid,

    /// <summary>The request conflicts with the current state (e.g. nothing applied yet).</summary>
    Conflict,
}

/// <summary>A user error from a control-plane operation, with a message that says what to do; the API maps it to a 4xx.</summary>
public sealed class ControlPlaneException(ControlPlaneError error, string message) : Exception(message)
{
    public ControlPlaneError Error { get; } = error;
}
