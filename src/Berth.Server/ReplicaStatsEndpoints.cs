using System.Globalization;
using System.Text.Json;
using Berth.Core.Contracts;
using Berth.Core.Model;
using Berth.Orchestration;
using Berth.Orchestration.Controllers;
using Berth.Orchestration.State;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Berth.Server;

/// <summary><c>GET /v1/stats</c>, <c>GET /v1/top</c> and the one-off replicas of <c>berth run</c> (docs/api.md): each running replica's resource use from its driver
/// (cgroup counters for a process, the engine's stats for a container) and its processes from /proc.</summary>
internal static class ReplicaStatsEndpoints
{
    /// <summary>Replicas read at once: as the dashboard's sampler, so a large app is read in a few seconds without a burst.</summary>
    private const int Concurrency = 4;

    /// <summary>The shortest window requests per second are counted over: a second, docker stats' pace. The replicas' own
    /// reads (CPU is sampled over the driver's window) usually take about that already, so it seldom adds a wait.</summary>
    public static readonly TimeSpan RequestRateWindow = TimeSpan.FromSeconds(1);

    private static readonly HttpClient Scraper = new(new SocketsHttpHandler { UseProxy = false }) { Timeout = TimeSpan.FromSeconds(5) };

    public static void Map(RouteGroupBuilder v1, ControlPlane plane, Mesh.DataPlane.IMeshDataPlane? mesh, TimeProvider time)
    {
        v1.MapGet("/stats", async (HttpContext context) =>
        {
            var replicas = Running(plane, context);
            var started = time.GetTimestamp();
            var before = await ScrapeAsync(mesh, context.RequestAborted);
            var stats = new ReplicaStatsInfo?[replicas.Count];
            await Parallel.ForAsync(0, replicas.Count, new ParallelOptions { MaxDegreeOfParallelism = Concurrency, CancellationToken = context.RequestAborted }, async (i, ct) =>
            {
                var r = replicas[i];
                try
                {
                    var s = await plane.GetReplicaStatsAsync(r, ct);
                    var processes = await plane.GetReplicaProcessesAsync(r, ct);
                    stats[i] = new ReplicaStatsInfo(r.Id, r.Service, Phase(r), Math.Round(s.CpuPercent, 2), s.MemoryUsage.Bytes, s.MemoryLimit?.Bytes,
                        processes.Count, r.RestartCount, s.Timestamp);
                }
                catch (Exception e) when (e is ControlPlaneException or InvalidOperationException or IOException or global::Docker.DotNet.DockerApiException or Runtime.Docker.DockerUnavailableException)
                {
                    // It stopped between the listing and the read: left out, as docker stats drops a container that went.
                }
            });
            var listed = stats.OfType<ReplicaStatsInfo>().ToList();
            if (before is not null && listed.Any(s => ServesHttp(plane, s.Service)))
            {
                if (time.GetElapsedTime(started) is var spent && spent < RequestRateWindow)
                {
                    await Task.Delay(RequestRateWindow - spent, time, context.RequestAborted);
                }

                if (await ScrapeAsync(mesh, context.RequestAborted) is { } after)
                {
                    var elapsed = time.GetElapsedTime(started);
                    listed = [.. listed.Select(s => ServesHttp(plane, s.Service)
                        ? s with
                        {
                            RequestsPerSecond = MeshRequestCounts.Rate(before.Replica(s.Service, s.Replica), after.Replica(s.Service, s.Replica), elapsed),
                            ServiceRequestsPerSecond = MeshRequestCounts.Rate(before.Service(s.Service), after.Service(s.Service), elapsed),
                        }
                        : s)];
                }
            }

            return Results.Json<IReadOnlyList<ReplicaStatsInfo>>(listed, ApiJson.Default.IReadOnlyListReplicaStatsInfo);
        });
        v1.MapPost("/services/{name}/run", async (string name, HttpContext context) =>
        {
            var body = context.Request.ContentLength is > 0 || context.Request.Headers.TransferEncoding.Count > 0
                ? await ApiServer.ReadBodyAsync(context, ApiJson.Default.RunRequest, """{"command"?: ["..."]}""")
                : null;
            var run = await plane.StartOneOffAsync(name, body?.Command, context.RequestAborted);
            return Results.Json(new RunResponse(run.Id, run.Service, run.Pid, run.ContainerId, [.. run.Command]), ApiJson.Default.RunResponse);
        });
        v1.MapDelete("/runs/{id}", async (string id, HttpContext context) =>
        {
            await plane.RemoveOneOffAsync(id, remove: context.Request.Query["remove"] == "true", context.RequestAborted);
            return Results.NoContent();
        });
        v1.MapGet("/top", async (HttpContext context) =>
        {
            var result = new List<ReplicaTopInfo>();
            foreach (var r in Running(plane, context))
            {
                try
                {
                    var processes = await plane.GetReplicaProcessesAsync(r, context.RequestAborted);
                    result.Add(new ReplicaTopInfo(r.Id, r.Service, [.. processes.Select(p => new ProcessInfo(p.Pid, p.ParentPid, p.User, p.CpuPercent, p.ResidentBytes,
                        p.CpuTime.ToString(p.CpuTime.TotalDays >= 1 ? @"d\.hh\:mm\:ss" : @"hh\:mm\:ss", CultureInfo.InvariantCulture), p.Command))]));
                }
                catch (Exception e) when (e is ControlPlaneException or IOException or global::Docker.DotNet.DockerApiException or Runtime.Docker.DockerUnavailableException)
                {
                    // Gone between the listing and the read.
                }
            }

            return Results.Json<IReadOnlyList<ReplicaTopInfo>>(result, ApiJson.Default.IReadOnlyListReplicaTopInfo);
        });
    }

    /// <summary>The replicas with a process or container now, of <c>?service=NAME</c> when given (which must exist).</summary>
    private static List<ReplicaRecord> Running(ControlPlane plane, HttpContext context)
    {
        var service = context.Request.Query["service"].ToString();
        if (service.Length > 0 && plane.Current?.Application.FindService(service) is null)
        {
            throw new ControlPlaneException(ControlPlaneError.NotFound, $"no service '{service}'; GET /v1/services lists them");
        }

        return [.. plane.Replicas.Where(r => r.Handle is not null && r.Phase is ReplicaPhase.Starting or ReplicaPhase.Running or ReplicaPhase.Ready or ReplicaPhase.Terminating
            && (service.Length == 0 || r.Service == service)).OrderBy(r => r.Service, StringComparer.Ordinal).ThenBy(r => r.Id, StringComparer.Ordinal)];
    }

    /// <summary>The data plane's request counters now; null without a data plane or when it does not answer (the rates are then left out).</summary>
    private static async Task<MeshRequestCounts?> ScrapeAsync(Mesh.DataPlane.IMeshDataPlane? mesh, CancellationToken ct)
    {
        if (mesh?.AdminAddress is not { } admin)
        {
            return null;
        }

        try
        {
            return MeshRequestCounts.Parse(await Scraper.GetStringAsync(new Uri(admin, "/metrics"), ct));
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException && !ct.IsCancellationRequested)
        {
            return null;
        }
    }

    private static bool ServesHttp(ControlPlane plane, string service) =>
        plane.Current?.Application.FindService(service)?.Endpoints.Any(e => e.Protocol.IsHttp()) == true;

    private static string Phase(ReplicaRecord r) => JsonNamingPolicy.KebabCaseLower.ConvertName(r.Phase.ToString());
}
