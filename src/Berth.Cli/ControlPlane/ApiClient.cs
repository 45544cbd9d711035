using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Berth.Server;

namespace Berth.Cli.ControlPlane;

/// <summary>Talks to a running control plane: address from <c>api.json</c>, token from <c>api-token</c> in the state folder.</summary>
internal sealed class ApiClient : IDisposable
{
    private readonly HttpClient _http;

    private ApiClient(Uri url, string token)
    {
        _http = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { BaseAddress = url, Timeout = Timeout.InfiniteTimeSpan };
        _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
    }

    public Uri Url => _http.BaseAddress!;

    /// <summary>A client when a control plane's address and token are in <paramref name="stateDirectory"/>; null otherwise.</summary>
    public static ApiClient? TryOpen(string stateDirectory)
    {
        var address = Path.Combine(stateDirectory, ApiServerOptions.AddressFileName);
        var token = Path.Combine(stateDirectory, ApiServerOptions.TokenFileName);
        if (!File.Exists(address) || !File.Exists(token))
        {
            return null;
        }

        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(address));
            return new ApiClient(new Uri(doc.RootElement.GetProperty("url").GetString()!), File.ReadAllText(token).Trim());
        }
        catch (Exception e) when (e is JsonException or IOException or KeyNotFoundException or UriFormatException)
        {
            return null;
        }
    }

    /// <summary>Whether the control plane answers.</summary>
    public async Task<bool> AliveAsync(CancellationToken ct)
    {
        try
        {
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
            cts.CancelAfter(TimeSpan.FromSeconds(5));
            using var response = await _http.GetAsync("/v1/replicas", cts.Token);
            return true;
        }
        catch (Exception e) when (e is HttpRequestException or SocketException or OperationCanceledException && !ct.IsCancellationRequested)
        {
            return false;
        }
    }

    public Task<JsonElement> GetAsync(string path, CancellationToken ct) => SendAsync(HttpMethod.Get, path, null, ct);

    public Task<JsonElement> PostAsync(string path, object? body, CancellationToken ct) => SendAsync(HttpMethod.Post, path, body, ct);

    public async Task<JsonElement> SendAsync(HttpMethod method, string path, object? body, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(method, path);
        if (body is not null)
        {
            request.Content = new StringContent(body as string ?? JsonSerializer.Serialize(body, Orchestration.State.StateJson.Options), Encoding.UTF8, "application/json");
        }

        using var response = await _http.SendAsync(request, ct);
        var text = await response.Content.ReadAsStringAsync(ct);
        var json = text.Length == 0 ? default : JsonDocument.Parse(text).RootElement.Clone();
        if (!response.IsSuccessStatusCode)
        {
            var message = json.ValueKind == JsonValueKind.Object && json.TryGetProperty("error", out var e) ? e.GetString() : text;
            throw new ApiException((int)response.StatusCode, message ?? response.ReasonPhrase ?? "error");
        }

        return json;
    }

    /// <summary>Lines of a streaming response (NDJSON logs, SSE events) until the server ends it or <paramref name="ct"/> fires.</summary>
    public async IAsyncEnumerable<string> StreamLinesAsync(string path, string? accept, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        if (accept is not null)
        {
            request.Headers.Accept.ParseAdd(accept);
        }

        using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
        if (!response.IsSuccessStatusCode)
        {
            var text = await response.Content.ReadAsStringAsync(ct);
            string? message;
            try
            {
                message = JsonDocument.Parse(text).RootElement.GetProperty("error").GetString();
            }
            catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
            {
                message = text;
            }

            throw new ApiException((int)response.StatusCode, message ?? "error");
        }

        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(ct));
        while (await reader.ReadLineAsync(ct) is { } line)
        {
            yield return line;
        }
    }

    public void Dispose() => _http.Dispose();
}

/// <summary>The API answered with an error; the message is the API's.</summary>
internal sealed class ApiException(int status, string message) : Exception(message)
{
    public int Status { get; } = status;
}
