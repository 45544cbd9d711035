using System.Collections.Concurrent;
using System.Net;
using System.Text;
using System.Text.Json;
using Berth.Testing;

namespace Berth.Pipelines.Tests.Steps;

/// <summary>
/// The client side of the control plane's contract over real HTTP on loopback: PATCH /v1/services/{name} answers
/// {revision}, GET .../rollout answers {revision, state, message} — the fields the real ApiServer sends, as the
/// end-to-end DeliveryPipelineTests read them from it. Each rollout reports "progressing", then the outcome the test
/// scripts in <see cref="Outcome"/>. It records what it was sent; it proves nothing about what a real control plane
/// does with a rolled-back revision (the end-to-end test does, against the real one).
/// </summary>
internal sealed class FakeControlPlane : IAsyncDisposable
{
    private readonly HttpListener _listener = new();
    private readonly Task _loop;
    private readonly ConcurrentDictionary<string, Service> _services = new();

    public FakeControlPlane(string stateDirectory, string token = "test-token")
    {
        Token = token;
        var port = Ports.Free();
        Url = $"http://127.0.0.1:{port}/";
        _listener.Prefixes.Add(Url);
        _listener.Start();
        _loop = Task.Run(LoopAsync);
        Directory.CreateDirectory(stateDirectory);
        File.WriteAllText(Path.Combine(stateDirectory, "api.json"), JsonSerializer.Serialize(new { url = $"http://127.0.0.1:{port}" }));
        File.WriteAllText(Path.Combine(stateDirectory, "api-token"), token);
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(Path.Combine(stateDirectory, "api-token"), UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }
    }

    public string Url { get; }

    public string Token { get; }

    public ConcurrentQueue<string> Requests { get; } = new();

    public ConcurrentQueue<string> Bodies { get; } = new();

    /// <summary>How many GETs report "progressing" before the rollout settles.</summary>
    public int ProgressingPolls { get; init; } = 2;

    /// <summary>How the next rollouts end: "complete", "rolled-back" or "failed".</summary>
    public string Outcome { get; set; } = "complete";

    public void AddService(string name, string image) => _services[name] = new Service { Image = image, Revision = 1, Target = 1 };

    public Service Get(string name) => _services[name];

    private async Task LoopAsync()
    {
        while (_listener.IsListening)
        {
            HttpListenerContext context;
            try
            {
                context = await _listener.GetContextAsync();
            }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException)
            {
                return;
            }

            try
            {
                await HandleAsync(context);
            }
            finally
            {
                context.Response.Close();
            }
        }
    }

    private async Task HandleAsync(HttpListenerContext context)
    {
        var request = context.Request;
        var path = request.Url!.AbsolutePath;
        Requests.Enqueue($"{request.HttpMethod} {path}");
        if (request.Headers["Authorization"] != $"Bearer {Token}")
        {
            context.Response.StatusCode = 401;
            return;
        }

        var parts = path.Trim('/').Split('/');
        if (parts.Length < 3 || parts[0] != "v1" || parts[1] != "services" || !_services.TryGetValue(parts[2], out var service))
        {
            context.Response.StatusCode = 404;
            return;
        }

        object response;
        lock (service)
        {
            if (request.HttpMethod == "PATCH" && parts.Length == 3)
            {
                var body = new StreamReader(request.InputStream).ReadToEnd();
                Bodies.Enqueue(body);
                using var json = JsonDocument.Parse(body);
                service.PendingImage = json.RootElement.TryGetProperty("image", out var image) ? image.GetString() : service.Image;
                service.Target = service.Revision + 1;
                service.State = "progressing";
                service.Polls = 0;
                response = new { revision = service.Target };
            }
            else if (request.HttpMethod == "GET" && parts.Length == 4 && parts[3] == "rollout")
            {
                if (service.State == "progressing" && ++service.Polls > ProgressingPolls)
                {
                    if (Outcome != "complete")
                    {
                        service.State = Outcome;
                        service.Message = "new replicas never became ready; rolled back";
                    }
                    else
                    {
                        service.State = "complete";
                        service.Image = service.PendingImage!;
                        service.Revision = service.Target;
                        service.Message = "";
                    }
                }

                response = new { revision = service.Target, state = service.State, message = service.Message };
            }
            else
            {
                context.Response.StatusCode = 405;
                return;
            }
        }

        var bytes = Encoding.UTF8.GetBytes(JsonSerializer.Serialize(response));
        context.Response.ContentType = "application/json";
        await context.Response.OutputStream.WriteAsync(bytes);
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            // Close stops and removes the prefixes once; Stop() then Close() removes twice, which can rebind the port and throw.
            _listener.Close();
        }
        catch (HttpListenerException)
        {
        }

        await _loop;
    }

    public sealed class Service
    {
        public required string Image { get; set; }

        public string? PendingImage { get; set; }

        public long Revision { get; set; }

        public long Target { get; set; }

        public string State { get; set; } = "complete";

        public string Message { get; set; } = "";

        public int Polls { get; set; }
    }
}
