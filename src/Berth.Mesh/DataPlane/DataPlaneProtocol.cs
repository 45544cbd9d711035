using System.Buffers;
using System.IO.Pipelines;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using Berth.Core.Routing;
using Berth.Mesh.Observability;

namespace Berth.Mesh.DataPlane;

/// <summary>
/// One message on the control plane ↔ data plane channel: a JSON object on one line. <see cref="Type"/> says which;
/// the other fields are set per type (see <see cref="DataPlaneMessageTypes"/>). Routes travel as the Core contract
/// (<see cref="ServiceRoute"/>) itself, so a field added there flows through without a change here.
/// </summary>
public sealed record DataPlaneMessage
{
    public required string Type { get; init; }

    /// <summary>Pairs a reply with its request.</summary>
    public long? Id { get; init; }

    /// <summary><c>hello</c>: the channel token (<see cref="DataPlaneFiles.TokenFile"/>).</summary>
    public string? Token { get; init; }

    /// <summary><c>snapshot</c>/<c>ack</c>/<c>nack</c>: the snapshot's version; <c>welcome</c>: the version applied.</summary>
    public long? Version { get; init; }

    /// <summary><c>snapshot</c>: every route (the whole table, not a diff); <c>welcome</c>: the routes being served.</summary>
    public IReadOnlyList<ServiceRoute>? Routes { get; init; }

    /// <summary><c>snapshot</c>: every pod's outbound listeners (the whole set); <c>welcome</c>: the pods being served.</summary>
    public IReadOnlyList<PodRoute>? Pods { get; init; }

    /// <summary><c>ack</c>: the routes whose listener could not be opened or whose policy was refused.</summary>
    public IReadOnlyList<RouteError>? Errors { get; init; }

    /// <summary><c>ack</c> and <c>in-flight</c>: every replica with requests in flight (absent ones have none).</summary>
    public IReadOnlyList<InFlightCount>? InFlight { get; init; }

    /// <summary><c>ack</c> and <c>in-flight</c>: the order <see cref="InFlight"/> was counted in (rising per data plane); a
    /// receiver ignores counts older than those it has. Absent from a data plane of an older build: always taken.</summary>
    public long? InFlightSequence { get; init; }

    /// <summary><c>requests</c>: finished requests since the last batch (traces, the live graph).</summary>
    public IReadOnlyList<MeshRequestRecord>? Requests { get; init; }

    /// <summary><c>status-reply</c>: per listener, each upstream's health, ejection and breaker.</summary>
    public IReadOnlyList<RouteStatus>? Status { get; init; }

    /// <summary><c>welcome</c>: the data plane's process id, admin endpoint and build.</summary>
    public int? Pid { get; init; }

    public string? Admin { get; init; }

    public string? Build { get; init; }

    /// <summary><c>snapshot</c>: a hand-over — the previous data plane is releasing these listeners right now, so a bind that
    /// finds the port taken is tried again (every 2ms, up to 10s) instead of refused.</summary>
    public bool? HandOver { get; init; }

    /// <summary><c>pass</c>'s ack: the Unix socket where the old data plane hands its listening sockets over; <c>prepare</c>:
    /// where the new one takes them from (with <see cref="Pid"/>, the old one's process id, checked on the socket).</summary>
    public string? Path { get; init; }

    /// <summary><c>welcome</c>: true from a standby data plane (serving nothing until its first snapshot).</summary>
    public bool? Standby { get; init; }

    /// <summary><c>error</c>/<c>nack</c>: what was wrong.</summary>
    public string? Message { get; init; }
}

/// <summary>One route the data plane could not apply, with the reason (e.g. the stable port is taken).</summary>
public sealed record RouteError(string Service, string Endpoint, string Message);

/// <summary>The message types. Control plane → data plane: hello, snapshot, status, shutdown, pass, prepare, release. Data plane → control plane:
/// welcome, error, ack, nack, status-reply, bye, in-flight (pushed when counts change), requests (pushed in batches).</summary>
public static class DataPlaneMessageTypes
{
    public const string Hello = "hello";
    public const string Welcome = "welcome";
    public const string Error = "error";
    public const string Snapshot = "snapshot";
    public const string Ack = "ack";
    public const string Nack = "nack";
    public const string Status = "status";
    public const string StatusReply = "status-reply";
    public const string Shutdown = "shutdown";

    /// <summary>A hand-over's second step, to the new data plane. With a <c>path</c>: take the old data plane's listening
    /// sockets from there (answered once they are here); without one (an old data plane of a build that cannot pass them):
    /// start binding these routes' ports, each the moment the old data plane lets go of it (answered at once).</summary>
    public const string Prepare = "prepare";

    /// <summary>A hand-over's first step, to the old data plane: offer your listening sockets to the process <c>pid</c>
    /// (SCM_RIGHTS); answered with <c>ack</c> and the <c>path</c> where they wait. An older build answers <c>error</c>.</summary>
    public const string Pass = "pass";

    /// <summary>Like <c>shutdown</c>, for a hand-over: the data plane closes its listeners and exits, keeping the saved snapshot.</summary>
    public const string Release = "release";
    public const string Bye = "bye";
    public const string InFlight = "in-flight";
    public const string Requests = "requests";
}

/// <summary>Reads and writes channel messages: UTF-8 JSON, one per line, with a cap on a line's length.</summary>
public static class DataPlaneWire
{
    /// <summary>The JSON shape: camelCase, nulls left out, enums as kebab-case strings (as the state store writes).</summary>
    public static readonly JsonSerializerOptions Json = CreateJson();

    /// <summary>A hello is small: 4 KiB before the token is checked, so an unauthenticated peer cannot make the data plane buffer much.</summary>
    public const int MaxHelloBytes = 4096;

    /// <summary>256 MiB: a snapshot of thousands of routes fits many times over.</summary>
    public const int MaxMessageBytes = 256 << 20;

    private static JsonSerializerOptions CreateJson()
    {
        var o = new JsonSerializerOptions(JsonSerializerDefaults.Web)
        {
            DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
            // The channel's messages from source-generated metadata: built by reflection on first use, the hello and the
            // welcome cost each side ~200 ms at load 30, on the path of every control plane's start (issue #21, round 7).
            // The text is the same (DataPlaneProtocolTests); any other type by reflection, as before.
            TypeInfoResolver = JsonTypeInfoResolver.Combine(DataPlaneJsonContext.Default, new DefaultJsonTypeInfoResolver()),
        };
        o.Converters.Add(new JsonStringEnumConverter(JsonNamingPolicy.KebabCaseLower));
        o.MakeReadOnly(populateMissingResolver: true);
        return o;
    }

    public static byte[] Encode(DataPlaneMessage message)
    {
        var json = JsonSerializer.SerializeToUtf8Bytes(message, Json);
        var line = new byte[json.Length + 1];
        json.CopyTo(line, 0);
        line[^1] = (byte)'\n';
        return line;
    }

    /// <summary>The next message, or null at the end of the stream. Throws <see cref="InvalidDataException"/> on a line
    /// over <paramref name="maxBytes"/> or one that is not a message.</summary>
    public static async Task<DataPlaneMessage?> ReadAsync(PipeReader reader, int maxBytes, CancellationToken cancellationToken)
    {
        while (true)
        {
            var result = await reader.ReadAsync(cancellationToken);
            var buffer = result.Buffer;
            if (buffer.PositionOf((byte)'\n') is { } end)
            {
                var line = buffer.Slice(0, end);
                if (line.Length > maxBytes)
                {
                    throw new InvalidDataException($"a data-plane message of {line.Length} bytes is over the limit of {maxBytes}");
                }

                DataPlaneMessage? message;
                try
                {
                    var reader2 = new Utf8JsonReader(line);
                    message = JsonSerializer.Deserialize<DataPlaneMessage>(ref reader2, Json);
                }
                catch (JsonException e)
                {
                    throw new InvalidDataException($"a data-plane message is not valid: {e.Message}", e);
                }
                finally
                {
                    reader.AdvanceTo(buffer.GetPosition(1, end));
                }

                return message ?? throw new InvalidDataException("a data-plane message was null");
            }

            if (buffer.Length > maxBytes)
            {
                throw new InvalidDataException($"a data-plane message is over the limit of {maxBytes} bytes");
            }

            reader.AdvanceTo(buffer.Start, buffer.End);
            if (result.IsCompleted)
            {
                return null;
            }
        }
    }

    /// <summary>Compares tokens in constant time.</summary>
    public static bool TokenMatches(string? given, string expected) =>
        given is not null && System.Security.Cryptography.CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(given), Encoding.UTF8.GetBytes(expected));
}

/// <summary>Source-generated metadata for the channel's messages and the files beside it; <see cref="DataPlaneWire.Json"/>
/// supplies the naming and converters.</summary>
[JsonSerializable(typeof(DataPlaneMessage))]
[JsonSerializable(typeof(DataPlaneInfo))]
[JsonSerializable(typeof(PodRoute))]
internal sealed partial class DataPlaneJsonContext : JsonSerializerContext;
