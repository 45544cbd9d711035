using System.Text.Json.Serialization;

namespace Berth.Core.Contracts;

/// <summary>Where a service's rollout to its newest template stands (the <c>state</c> of <c>GET /v1/services/{name}/rollout</c>).</summary>
[JsonConverter(typeof(JsonStringEnumConverter<RolloutState>))]
public enum RolloutState
{
    /// <summary>New replicas are coming up or old ones are still being replaced.</summary>
    [JsonStringEnumMemberName("progressing")]
    Progressing,

    /// <summary>Every wanted replica runs the newest template and is Ready.</summary>
    [JsonStringEnumMemberName("complete")]
    Complete,

    /// <summary>The rollout failed and the service went back to its last good template: every wanted replica runs it again and is Ready.</summary>
    [JsonStringEnumMemberName("rolled-back")]
    RolledBack,

    /// <summary>The rollout failed and is held (failure_action: pause).</summary>
    [JsonStringEnumMemberName("failed")]
    Failed,

    /// <summary>Held on request (<c>berth rollout pause</c>).</summary>
    [JsonStringEnumMemberName("paused")]
    Paused,

    /// <summary>The rollout failed and the service is going back to its last good template: not settled until every wanted
    /// replica runs that template again (then <see cref="RolledBack"/>).</summary>
    [JsonStringEnumMemberName("rolling-back")]
    RollingBack,
}

/// <summary>The wire names of <see cref="RolloutState"/>, for messages and events.</summary>
public static class RolloutStateNames
{
    public static string Name(this RolloutState state) => state switch
    {
        RolloutState.Progressing => "progressing",
        RolloutState.Complete => "complete",
        RolloutState.RolledBack => "rolled-back",
        RolloutState.Failed => "failed",
        RolloutState.Paused => "paused",
        RolloutState.RollingBack => "rolling-back",
    };

    /// <summary>Complete, rolled back, failed or paused: nothing more happens without a new change.</summary>
    public static bool IsSettled(this RolloutState state) => state switch
    {
        RolloutState.Progressing or RolloutState.RollingBack => false,
        RolloutState.Complete or RolloutState.RolledBack or RolloutState.Failed or RolloutState.Paused => true,
    };
}
