using System.Net.Http.Headers;
using System.Text.Json;

namespace Berth.Testing;

/// <summary>The running control plane's HTTP API, found the way clients find it: api.json and api-token in the state folder.</summary>
public sealed class ControlPlaneApi : IDisposable
{
    private readonly HttpClient _http;

    public ControlPlaneApi(string state)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(state, "api.json")));
        _http = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { BaseAddress = new Uri(doc.RootElement.GetProperty("url").GetString()! + "/"), Timeout = TimeSpan.FromSeconds(30) };
        _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", File.ReadAllText(Path.Combine(state, "api-token")).Trim());
    }

    public async Task<JsonElement> GetAsync(string path)
    {
        using var response = await _http.GetAsync(path.TrimStart('/'));
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"GET {path}: {(int)response.StatusCode} {text}");
        return JsonDocument.Parse(text).RootElement.Clone();
    }

    /// <summary>The answer, or null while the control plane cannot give one yet (409 before 'berth up -d' applied the spec).</summary>
    public async Task<JsonElement?> TryGetAsync(string path)
    {
        using var response = await _http.GetAsync(path.TrimStart('/'));
        return response.IsSuccessStatusCode ? JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.Clone() : null;
    }

    /// <summary>Sends a request and returns the status, the content type and the body, whatever the status.</summary>
    public async Task<(int Status, string? ContentType, string Body)> SendAsync(HttpMethod method, string path, string? json = null, CancellationToken ct = default)
    {
        using var request = new HttpRequestMessage(method, path.TrimStart('/'));
        if (json is not null)
        {
            request.Content = new StringContent(json, System.Text.Encoding.UTF8, "application/json");
        }

        using var response = await _http.SendAsync(request, ct);
        return ((int)response.StatusCode, response.Content.Headers.ContentType?.MediaType, await response.Content.ReadAsStringAsync(ct));
    }

    public void Dispose() => _http.Dispose();
}
