using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using Berth.Core.Model;
using Berth.Orchestration.Controllers;

namespace Berth.Orchestration.State;

/// <summary>The JSON shape of everything the store and the API write: camelCase, enums as kebab-case strings.</summary>
public static class StateJson
{
    public static readonly JsonSerializerOptions Options = Create();

    private static JsonSerializerOptions Create()
    {
        var o = new JsonSerializerOptions(JsonSerializerDefaults.Web)
        {
            DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
            // The store's records from source-generated metadata (issue #21: building it by reflection on first use cost a
            // new control plane ~0.5 s of its first apply); anything else (the API's ad-hoc shapes) by reflection as before.
            TypeInfoResolver = JsonTypeInfoResolver.Combine(StateJsonContext.Default, new DefaultJsonTypeInfoResolver()),
        };
        o.Converters.Add(new JsonStringEnumConverter(JsonNamingPolicy.KebabCaseLower));
        o.MakeReadOnly();
        return o;
    }
}

/// <summary>Source-generated metadata for what the state store writes; <see cref="StateJson.Options"/> supplies the naming and converters.</summary>
[JsonSerializable(typeof(RevisionRecord))]
[JsonSerializable(typeof(ReplicaRecord))]
[JsonSerializable(typeof(RolloutRecord))]
[JsonSerializable(typeof(Application))]
[JsonSerializable(typeof(Service))]
internal sealed partial class StateJsonContext : JsonSerializerContext;
