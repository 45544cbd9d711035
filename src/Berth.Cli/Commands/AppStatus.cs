using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Berth.Cli.ControlPlane;
using Berth.Core.Contracts;
using static Berth.Cli.Commands.ControlPlaneCommands;

namespace Berth.Cli.Commands;

/// <summary>Where the app is and whether it is up: each service's stable addresses, and waiting until every service is Ready
/// (<c>up --wait</c>, <c>restart --wait</c>, as docker compose up --wait).</summary>
internal static class AppStatus
{
    /// <summary>How long <c>--wait</c> waits by default: 5 minutes (compose waits without limit unless --wait-timeout is
    /// given; a bound keeps a script from hanging on a service that never gets Ready).</summary>
    internal static readonly TimeSpan DefaultWaitTimeout = TimeSpan.FromMinutes(5);

    /// <summary>How often <c>--wait</c> asks: 100 ms (two loopback API calls; a coarser poll added up to its whole period to
    /// every <c>up --wait</c>, issue #21).</summary>
    private static readonly TimeSpan WaitPoll = TimeSpan.FromMilliseconds(100);

    public static Option<string?> WaitTimeoutOption() => new("--wait-timeout")
    {
        Description = $"With --wait: give up after this long (e.g. 90s, 2m), as docker compose up --wait-timeout (default {DefaultWaitTimeout.TotalMinutes:0}m).",
        HelpName = "DURATION",
    };

    /// <summary>Prints, on stderr, one line per service endpoint: <c>frontend  http://127.0.0.1:7100</c>.</summary>
    public static async Task PrintAddressesAsync(ApiClient client, CancellationToken ct)
    {
        IReadOnlyList<ServiceInfo> services;
        try
        {
            services = await client.GetAsync("/v1/services", ApiJson.Default.IReadOnlyListServiceInfo, ct);
        }
        catch (ApiException e) when (e.Status == 409)
        {
            return; // nothing applied yet
        }

        var lines = services.SelectMany(s => s.Endpoints.Select(e => (Name: s.Endpoints.Count == 1 ? s.Name : $"{s.Name}/{e.Name}", e.Url))).ToList();
        var width = lines.Count == 0 ? 0 : lines.Max(l => l.Name.Length);
        foreach (var (name, url) in lines)
        {
            Status($"  {name.PadRight(width)}  {url}");
        }
    }

    /// <summary>Waits until each of <paramref name="services"/> (null: every one not stopped) has as many Ready replicas as it
    /// wants, each Ready since <paramref name="since"/>. Fails at once when a replica failed for good, else at the timeout,
    /// naming what is not Ready and why.</summary>
    public static async Task<int> WaitReadyAsync(ApiClient client, IReadOnlyList<string>? services, string? timeout, DateTimeOffset since, CancellationToken ct)
    {
        var limit = DefaultWaitTimeout;
        if (timeout is not null && !Core.Model.Durations.TryParse(timeout, out limit, out var error))
        {
            Error($"--wait-timeout: {error}");
            return ExitCodes.Usage;
        }

        var waited = Stopwatch.StartNew();
        while (true)
        {
            IReadOnlyList<ServiceInfo> all;
            try
            {
                all = await client.GetAsync("/v1/services", ApiJson.Default.IReadOnlyListServiceInfo, ct);
            }
            catch (ApiException e) when (e.Status == 409 && waited.Elapsed < limit)
            {
                await Task.Delay(WaitPoll, ct); // a detached control plane applies the spec right after its API answers
                continue;
            }

            var replicas = await client.GetAsync("/v1/replicas", ApiJson.Default.IReadOnlyListReplicaInfo, ct);
            var wanted = all.Where(s => services is null ? !s.Stopped : services.Contains(s.Name)).ToList();
            var notReady = wanted
                .Select(s => (Service: s, Mine: replicas.Where(r => r.Service == s.Name).ToList()))
                .Where(x => x.Mine.Count(r => r.Phase is "ready" or "completed" && (r.ReadyAt ?? r.StartedAt ?? r.CreatedAt) >= since) < x.Service.Desired)
                .ToList();
            if (notReady.Count == 0)
            {
                Status($"ready: {string.Join(", ", wanted.Select(s => $"{s.Name} {s.Desired.ToString(CultureInfo.InvariantCulture)}/{s.Desired.ToString(CultureInfo.InvariantCulture)}"))} ({waited.Elapsed.TotalSeconds:0.0}s)");
                return ExitCodes.Ok;
            }

            var failed = notReady.SelectMany(x => x.Mine).Where(r => r.Phase == "failed").ToList();
            if (failed.Count > 0 || waited.Elapsed >= limit)
            {
                Error(failed.Count > 0
                    ? $"{string.Join(", ", failed.Select(r => r.Id))} failed; not every service can get Ready"
                    : $"not every service was Ready within {timeout ?? $"{DefaultWaitTimeout.TotalMinutes:0}m"}");
                foreach (var (service, mine) in notReady)
                {
                    var ready = mine.Count(r => r.Phase is "ready" or "completed");
                    var why = mine.Where(r => r.Phase is not ("ready" or "completed"))
                        .Select(r => $"{r.Id} {r.Phase}{(r.Reason is { Length: > 0 } reason ? $": {reason}" : "")}");
                    Status($"  {service.Name}: {ready}/{service.Desired} ready; {string.Join("; ", why.DefaultIfEmpty("no replica yet"))}");
                }

                Status("'berth ps' and 'berth events' show more; 'berth logs SERVICE' shows what it printed");
                return ExitCodes.Failed;
            }

            await Task.Delay(WaitPoll, ct);
        }
    }
}
