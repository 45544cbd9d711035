using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Berth.Core.Contracts;

namespace Berth.Pipelines.Steps;

/// <summary>Where a running control plane listens and the token it wants, as it writes them into the state folder.</summary>
public sealed record ControlPlaneEndpoint(Uri Url, string Token)
{
    /// <summary>Reads <c>api.json</c> ({"url": ...}) and <c>api-token</c> from <paramref name="stateDirectory"/>, or explains what is missing.</summary>
    public static ControlPlaneEndpoint Discover(string stateDirectory)
    {
        var apiFile = Path.Combine(stateDirectory, "api.json");
        var tokenFile = Path.Combine(stateDirectory, "api-token");
        if (!File.Exists(apiFile) || !File.Exists(tokenFile))
        {
            throw new Execution.StepFailedException(
                $"no running control plane: {apiFile} or {tokenFile} is missing; start the app with 'berth up' first");
        }

        string? url;
        try
        {
            url = JsonSerializer.Deserialize(File.ReadAllText(apiFile), ApiJson.Default.ApiAddress)?.Url;
        }
        catch (JsonException e)
        {
            throw new Execution.StepFailedException($"{apiFile} is not valid JSON ({e.Message}); restart the control plane to rewrite it");
        }

        if (url is null || !Uri.TryCreate(url, UriKind.Absolute, out var uri))
        {
            throw new Execution.StepFailedException($"{apiFile} has no valid \"url\"; restart the control plane to rewrite it");
        }

        return new ControlPlaneEndpoint(uri, File.ReadAllText(tokenFile).Trim());
    }
}

/// <summary>The two control-plane endpoints a deploy step uses (the contract in docs/api.md).</summary>
public interface IControlPlaneClient
{
    Task<long> UpdateServiceAsync(string service, ServicePatchRequest update, CancellationToken cancellationToken);

    Task<RolloutStatus> GetRolloutAsync(string service, CancellationToken cancellationToken);
}

/// <summary>Typed HTTP client for a control plane on loopback, authenticated by its bearer token.</summary>
public sealed class ControlPlaneClient(HttpClient http, ControlPlaneEndpoint endpoint) : IControlPlaneClient
{
    public async Task<long> UpdateServiceAsync(string service, ServicePatchRequest update, CancellationToken cancellationToken)
    {
        using var request = Request(HttpMethod.Patch, $"v1/services/{Uri.EscapeDataString(service)}");
        request.Content = JsonContent.Create(update, ApiJson.Default.ServicePatchRequest);
        using var response = await SendAsync(request, cancellationToken).ConfigureAwait(false);
        await EnsureAsync(response, service, cancellationToken).ConfigureAwait(false);
        try
        {
            var body = await response.Content.ReadFromJsonAsync(ApiJson.Default.RevisionResponse, cancellationToken).ConfigureAwait(false);
            return body?.Revision is > 0 and var n ? n : throw new JsonException("no revision in the body");
        }
        catch (JsonException e)
        {
            throw new Execution.StepFailedException($"the control plane answered PATCH /v1/services/{service} without a numeric \"revision\" ({e.Message})");
        }
    }

    public async Task<RolloutStatus> GetRolloutAsync(string service, CancellationToken cancellationToken)
    {
        using var request = Request(HttpMethod.Get, $"v1/services/{Uri.EscapeDataString(service)}/rollout");
        using var response = await SendAsync(request, cancellationToken).ConfigureAwait(false);
        await EnsureAsync(response, service, cancellationToken).ConfigureAwait(false);
        try
        {
            return await response.Content.ReadFromJsonAsync(ApiJson.Default.RolloutStatus, cancellationToken).ConfigureAwait(false)
                ?? throw new Execution.StepFailedException("the control plane answered the rollout query with an empty body");
        }
        catch (JsonException e)
        {
            throw new Execution.StepFailedException($"the control plane answered GET /v1/services/{service}/rollout with unexpected JSON ({e.Message})");
        }
    }

    private HttpRequestMessage Request(HttpMethod method, string path)
    {
        var request = new HttpRequestMessage(method, new Uri(endpoint.Url, path));
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", endpoint.Token);
        return request;
    }

    private async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        try
        {
            return await http.SendAsync(request, cancellationToken).ConfigureAwait(false);
        }
        catch (HttpRequestException e)
        {
            throw new Execution.StepFailedException($"control plane at {endpoint.Url} is not reachable ({e.Message}); is 'berth up' running?");
        }
        catch (TaskCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new Execution.StepFailedException($"control plane at {endpoint.Url} did not answer in {http.Timeout.TotalSeconds:0}s");
        }
    }

    private static async Task EnsureAsync(HttpResponseMessage response, string service, CancellationToken cancellationToken)
    {
        if (response.IsSuccessStatusCode)
        {
            return;
        }

        var text = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
        throw new Execution.StepFailedException(response.StatusCode switch
        {
            HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden => "the control plane refused the token in api-token; restart 'berth up' to issue a new one",
            HttpStatusCode.NotFound => $"the control plane has no service '{service}'; check deploy.service against the spec",
            _ => $"the control plane answered {(int)response.StatusCode} {response.ReasonPhrase}: {text}",
        });
    }
}
