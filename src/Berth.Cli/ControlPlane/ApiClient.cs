using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Berth.Core.Contracts;
using Berth.Server;

namespace Berth.Cli.ControlPlane;

/// <summary>Talks to a running control plane: address from <c>api.json</c>, token from <c>api-token</c> in the state folder.</summary>
internal sealed class ApiClient : IDisposable
{
    private readonly HttpClient _http;

    /// <summary>The control plane's process, from <c>api.json</c> (null in files older than the field).</summary>
    private readonly int? _pid;

    private ApiClient(Uri url, string token, int? pid)
    {
        _pid = pid;
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
            var written = JsonSerializer.Deserialize(File.ReadAllText(address), ApiJson.Default.ApiAddress);
            return written?.Url is not { } url ? null : new ApiClient(new Uri(url), File.ReadAllText(token).Trim(), written.Pid);
        }
        catch (Exception e) when (e is JsonException or IOException or UriFormatException)
        {
            return null;
        }
    }

    /// <summary>Whether the control plane answers. One that does not answer within <see cref="AskTimeout"/> is asked again while
    /// its process lives, for up to <see cref="BusyWait"/>: on a starved machine (CI at load 100 did this) a live control plane
    /// answered late and was taken for a dead one, so commands reported "no control plane" beside it.</summary>
    public async Task<bool> AliveAsync(CancellationToken ct)
    {
        var started = Environment.TickCount64;
        while (true)
        {
            try
            {
                using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
                cts.CancelAfter(AskTimeout);
                using var response = await _http.GetAsync("/v1/replicas", cts.Token);
                return true;
            }
            catch (Exception e) when (e is HttpRequestException or SocketException or OperationCanceledException && !ct.IsCancellationRequested)
            {
                if (_pid is not { } pid || !Lives(pid) || Environment.TickCount64 - started >= (long)BusyWait.TotalMilliseconds)
                {
                    return false;
                }
            }

            await Task.Delay(TimeSpan.FromMilliseconds(200), ct);
        }
    }

    /// <summary>How long one liveness request may take.</summary>
    private static readonly TimeSpan AskTimeout = TimeSpan.FromSeconds(5);

    /// <summary>How long a control plane whose process lives may take to answer at all.</summary>
    private static readonly TimeSpan BusyWait = TimeSpan.FromSeconds(45);

    /// <summary>Whether <paramref name="pid"/> runs (a zombie does not), from /proc/PID/stat.</summary>
    private static bool Lives(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var state = stat.AsSpan(stat.LastIndexOf(')') + 2);
            return state.Length > 0 && state[0] is not ('Z' or 'X');
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>GET <paramref name="path"/>, read as <typeparamref name="T"/> (an API contract).</summary>
    public async Task<T> GetAsync<T>(string path, JsonTypeInfo<T> type, CancellationToken ct) =>
        JsonSerializer.Deserialize(await SendAsync(HttpMethod.Get, path, null, ct), type)!;

    /// <summary>POST <paramref name="body"/> (already JSON, or null) to <paramref name="path"/>, read as <typeparamref name="T"/>.</summary>
    public async Task<T> PostAsync<T>(string path, string? body, JsonTypeInfo<T> type, CancellationToken ct) =>
        JsonSerializer.Deserialize(await SendAsync(HttpMethod.Post, path, body, ct), type)!;

    /// <summary>POST /v1/apply with the app model (the store's JSON shape, as the server reads it).</summary>
    public Task<RevisionResponse> ApplyAsync(Core.Model.Application app, CancellationToken ct, bool prune = false) =>
        PostAsync(prune ? "/v1/apply?prune=true" : "/v1/apply", JsonSerializer.Serialize(app, Orchestration.State.StateJson.Options), ApiJson.Default.RevisionResponse, ct);

    /// <summary>POST, ignoring the answer's body.</summary>
    public async Task PostAsync(string path, string? body, CancellationToken ct) => await SendAsync(HttpMethod.Post, path, body, ct);

    /// <summary>Sends and returns the answer's JSON text; an error answer becomes an <see cref="ApiException"/> with the API's message.</summary>
    public async Task<string> SendAsync(HttpMethod method, string path, string? body, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(method, path);
        if (body is not null)
        {
            request.Content = new StringContent(body, Encoding.UTF8, "application/json");
        }

        using var response = await _http.SendAsync(request, ct);
        var text = await response.Content.ReadAsStringAsync(ct);
        if (!response.IsSuccessStatusCode)
        {
            throw new ApiException((int)response.StatusCode, ErrorMessage(text) ?? response.ReasonPhrase ?? "error");
        }

        return text;
    }

    /// <summary>The API's own message from an error body, else the body itself.</summary>
    private static string? ErrorMessage(string text)
    {
        try
        {
            return text.Length == 0 ? null : JsonSerializer.Deserialize(text, ApiJson.Default.ApiError)?.Error ?? text;
        }
        catch (JsonException)
        {
            return text;
        }
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
            throw new ApiException((int)response.StatusCode, ErrorMessage(await response.Content.ReadAsStringAsync(ct)) ?? "error");
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
