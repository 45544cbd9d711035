using System.Text.Json;
using Berth.Core.Contracts;
using Berth.Orchestration;
using Berth.Orchestration.Controllers;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Berth.Server;

/// <summary>Rollout history, undo, pause and resume (docs/api.md, Rollouts). Status is <c>GET /v1/services/{name}/rollout</c>.</summary>
internal static class RolloutEndpoints
{
    public static void Map(RouteGroupBuilder v1, ControlPlane plane)
    {
        v1.MapGet("/services/{name}/rollout/history", (string name) => Results.Json(plane.GetRolloutHistory(name), ApiJson.Default.IReadOnlyListRolloutHistoryEntry));
        v1.MapPost("/services/{name}/rollout/undo", async (string name, HttpContext context) =>
        {
            var to = await ReadToRevisionAsync(context);
            var revision = await plane.UndoRolloutAsync(name, to, context.RequestAborted);
            return Results.Json(new UndoResponse(revision.Number, revision.TemplateOf(name)), ApiJson.Default.UndoResponse);
        });
        v1.MapPost("/services/{name}/rollout/pause", async (string name, CancellationToken ct) =>
        {
            await plane.PauseRolloutAsync(name, ct);
            return Results.Json(new PauseResponse(name, Paused: true), ApiJson.Default.PauseResponse);
        });
        v1.MapPost("/services/{name}/rollout/resume", async (string name, CancellationToken ct) =>
        {
            await plane.ResumeRolloutAsync(name, ct);
            return Results.Json(new PauseResponse(name, Paused: false), ApiJson.Default.PauseResponse);
        });
    }

    /// <summary>An empty body means "the revision before the current one"; else an <see cref="UndoRequest"/>, <c>{"toRevision": N}</c>.</summary>
    private static async Task<long?> ReadToRevisionAsync(HttpContext context)
    {
        using var reader = new StreamReader(context.Request.Body);
        var text = await reader.ReadToEndAsync(context.RequestAborted);
        if (string.IsNullOrWhiteSpace(text))
        {
            return null;
        }

        const string Shape = """send {"toRevision": N} (a revision from GET /v1/services/{name}/rollout/history) or no body for the previous one""";
        UndoRequest? body;
        try
        {
            body = JsonSerializer.Deserialize(text, ApiJson.Default.UndoRequest);
        }
        catch (JsonException e) when (e.Path == "$.toRevision" && e.Message.Contains("could not be converted", StringComparison.Ordinal))
        {
            throw new ControlPlaneException(ControlPlaneError.Invalid, $"toRevision must be a positive whole number, got {RawValue(text)}; {Shape}");
        }
        catch (JsonException e) when (e.Path == "$" && e.Message.Contains("could not be converted", StringComparison.Ordinal))
        {
            throw new ControlPlaneException(ControlPlaneError.Invalid, $"the body must be a JSON object; {Shape}");
        }
        catch (JsonException e)
        {
            throw new ControlPlaneException(ControlPlaneError.Invalid, $"malformed JSON at line {(e.LineNumber ?? 0) + 1}, byte {(e.BytePositionInLine ?? 0) + 1}; {Shape}");
        }

        return body switch
        {
            null => throw new ControlPlaneException(ControlPlaneError.Invalid, $"the body must be a JSON object; {Shape}"),
            { ToRevision: null } => null,
            { ToRevision: > 0 and var n } => n,
            { ToRevision: var n } => throw new ControlPlaneException(ControlPlaneError.Invalid, $"toRevision must be a positive whole number, got {n}; {Shape}"),
        };
    }

    // The value the client sent for toRevision, as it wrote it, for the message (the body is known to parse as JSON by then).
    private static string RawValue(string body)
    {
        using var doc = JsonDocument.Parse(body);
        return doc.RootElement.GetProperty("toRevision").GetRawText();
    }
}
