using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace Berth.Core.Contracts;

/// <summary>Source-generated JSON for the API contracts: camelCase, nulls left out, as the API has always written.</summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(RolloutStatus))]
[JsonSerializable(typeof(ApiError))]
[JsonSerializable(typeof(ApiAddress))]
[JsonSerializable(typeof(AppInfo))]
[JsonSerializable(typeof(ServiceInfo))]
[JsonSerializable(typeof(IReadOnlyList<ServiceInfo>))]
[JsonSerializable(typeof(ReplicaInfo))]
[JsonSerializable(typeof(IReadOnlyList<ReplicaInfo>))]
[JsonSerializable(typeof(IReadOnlyList<ReplicaStatsInfo>))]
[JsonSerializable(typeof(IReadOnlyList<ReplicaTopInfo>))]
[JsonSerializable(typeof(RunRequest))]
[JsonSerializable(typeof(RunResponse))]
[JsonSerializable(typeof(RevisionInfo))]
[JsonSerializable(typeof(IReadOnlyList<RevisionInfo>))]
[JsonSerializable(typeof(IReadOnlyList<RolloutHistoryEntry>))]
[JsonSerializable(typeof(EventInfo))]
[JsonSerializable(typeof(IReadOnlyList<EventInfo>))]
[JsonSerializable(typeof(LogLine))]
[JsonSerializable(typeof(IReadOnlyList<RouteInfo>))]
[JsonSerializable(typeof(ScaleRequest))]
[JsonSerializable(typeof(ServicePatchRequest))]
[JsonSerializable(typeof(UndoRequest))]
[JsonSerializable(typeof(RevisionResponse))]
[JsonSerializable(typeof(ScaleResponse))]
[JsonSerializable(typeof(UndoResponse))]
[JsonSerializable(typeof(RestartServiceResponse))]
[JsonSerializable(typeof(RestartReplicaResponse))]
[JsonSerializable(typeof(StopReplicaResponse))]
[JsonSerializable(typeof(PauseResponse))]
[JsonSerializable(typeof(ShutdownResponse))]
[JsonSerializable(typeof(DashboardLink))]
[JsonSerializable(typeof(JsonNode))]
public sealed partial class ApiJson : JsonSerializerContext;
