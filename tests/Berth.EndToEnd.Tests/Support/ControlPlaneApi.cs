
namespace Berth.EndToEnd.Tests.Support;

/// <summary>The running control plane's HTTP API, found the way clients find it: api.json and api-token in the state folder.</summary>
internal sealed class ControlPlaneApi : IDisposable
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

    public void Dispose() => _http.Dispose();
}
