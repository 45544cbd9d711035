using System.Net.Sockets;
using Berth.Core.Model;

namespace Berth.Core.Probing;

/// <summary>The result of running a probe once, with what it saw (for events and rollout messages).</summary>
public readonly record struct ProbeOutcome(bool Success, string Message);

/// <summary>Bounds one probe run by its timeout on a <see cref="TimeProvider"/> and turns the ways a probe can fail into
/// a failed outcome with the reason, so every runner answers the same way.</summary>
public static class ProbeRun
{
    public const string NoPort = "no port to probe: give the service an endpoint or the probe a port";

    public static async Task<ProbeOutcome> BoundedAsync(Probe probe, TimeProvider time, Func<CancellationToken, Task<ProbeOutcome>> run, CancellationToken cancellationToken)
    {
        using var timeout = new CancellationTokenSource(probe.Timeout, time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token);
        try
        {
            return await run(linked.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return new ProbeOutcome(false, $"timed out after {Durations.Format(probe.Timeout)}");
        }
        catch (Exception e) when (e is HttpRequestException or SocketException or IOException or System.ComponentModel.Win32Exception)
        {
            return new ProbeOutcome(false, e.Message);
        }
    }
}

/// <summary>HTTP GET: 200–399 passes (as Kubernetes), redirects are not followed.</summary>
public sealed class HttpProbeRunner(TimeProvider? time = null) : IDisposable
{
    private readonly TimeProvider _time = time ?? TimeProvider.System;
    private readonly HttpMessageInvoker _client = new(new SocketsHttpHandler
    {
        AllowAutoRedirect = false,
        UseProxy = false,
        UseCookies = false,
        ActivityHeadersPropagator = null,
        PooledConnectionLifetime = TimeSpan.FromMinutes(1),
    });

    /// <summary>For replicas in pods: a connection per probe, made inside the pod named in the request's options (pooled
    /// connections are keyed by address, and every pod has the same 127.0.0.1).</summary>
    private readonly Lazy<HttpMessageInvoker> _podClient = new(() => new HttpMessageInvoker(new SocketsHttpHandler
    {
        AllowAutoRedirect = false,
        UseProxy = false,
        UseCookies = false,
        ActivityHeadersPropagator = null,
        PooledConnectionLifetime = TimeSpan.Zero,
        ConnectCallback = async (context, ct) =>
        {
            var pod = context.InitialRequestMessage.Options.TryGetValue(PodKey, out var p) ? p : throw new InvalidOperationException("no pod on the probe request");
            var socket = await Routing.PodSockets.CreateAsync(pod, AddressFamily.InterNetwork, ct).ConfigureAwait(false);
            try
            {
                await socket.ConnectAsync(context.DnsEndPoint.Host, context.DnsEndPoint.Port, ct).ConfigureAwait(false);
                return new NetworkStream(socket, ownsSocket: true);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        },
    }));

    private static readonly HttpRequestOptionsKey<Routing.PodNetwork> PodKey = new("berth.pod");

    /// <summary>Runs <paramref name="probe"/> against <paramref name="host"/>:<paramref name="port"/>; in <paramref name="pod"/> (the replica's pod, on its loopback) when given.</summary>
    public Task<ProbeOutcome> RunAsync(Probe probe, string host, int? port, CancellationToken cancellationToken, Routing.PodNetwork? pod = null) =>
        ProbeRun.BoundedAsync(probe, _time, async ct =>
        {
            if (port is not { } p)
            {
                return new ProbeOutcome(false, ProbeRun.NoPort);
            }

            var path = probe.Path.StartsWith('/') ? probe.Path : "/" + probe.Path;
            var authority = new UriBuilder(Uri.UriSchemeHttp, host, p).Uri.GetLeftPart(UriPartial.Authority);
            using var request = new HttpRequestMessage(HttpMethod.Get, authority + path);
            foreach (var (name, value) in probe.Headers)
            {
                request.Headers.TryAddWithoutValidation(name, value);
            }

            if (pod is not null)
            {
                request.Options.Set(PodKey, pod);
            }

            using var response = await (pod is null ? _client : _podClient.Value).SendAsync(request, ct).ConfigureAwait(false);
            var code = (int)response.StatusCode;
            return new ProbeOutcome(code is >= 200 and < 400, $"HTTP {code} from GET {path}");
        }, cancellationToken);

    public void Dispose()
    {
        _client.Dispose();
        if (_podClient.IsValueCreated)
        {
            _podClient.Value.Dispose();
        }
    }
}

/// <summary>TCP connect: passes when the connection is accepted.</summary>
public sealed class TcpProbeRunner(TimeProvider? time = null)
{
    private readonly TimeProvider _time = time ?? TimeProvider.System;

    /// <summary>Runs <paramref name="probe"/> against <paramref name="host"/>:<paramref name="port"/>; in <paramref name="pod"/> (the replica's pod, on its loopback) when given.</summary>
    public Task<ProbeOutcome> RunAsync(Probe probe, string host, int? port, CancellationToken cancellationToken, Routing.PodNetwork? pod = null) =>
        ProbeRun.BoundedAsync(probe, _time, async ct =>
        {
            if (port is not { } p)
            {
                return new ProbeOutcome(false, ProbeRun.NoPort);
            }

            using var socket = pod is null ? new Socket(SocketType.Stream, ProtocolType.Tcp) : await Routing.PodSockets.CreateAsync(pod, AddressFamily.InterNetwork, ct).ConfigureAwait(false);
            await socket.ConnectAsync(host, p, ct).ConfigureAwait(false);
            return new ProbeOutcome(true, $"connected to port {p}");
        }, cancellationToken);
}
