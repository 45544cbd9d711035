using System.Net.Http.Headers;
using System.Text.Json;
using Berth.Core.Model;
using Berth.Orchestration;
using Berth.Orchestration.Controllers;
using Berth.Orchestration.State;
using Berth.Runtime.Process;
using Berth.Testing;
using Berth.Testing.ControlPlanes;

namespace Berth.Server.Tests;

/// <summary>Issue #16's leftover of #14 §5: the dashboard's log view and its file list read a replica's rotated logs. A real
/// process replica (the Perl supervisor rotating its files) behind the real API and dashboard endpoints.</summary>
public sealed class DashboardLogsTests : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("berth-dash-logs-").FullName;
    private StateStore _store = null!;
    private ControlPlane _plane = null!;
    private ApiServer _server = null!;
    private HttpClient _http = null!;

    public async Task InitializeAsync()
    {
        _store = StateStore.Open(_dir);
        var driver = new ProcessDriver(new ProcessDriverOptions { StateRoot = Path.Combine(_dir, "runtime"), UseCgroups = false });
        _plane = new ControlPlane(new OrchestratorOptions { StateDirectory = _dir }, _store, [driver], new RecordingRouteSink(), new ScriptedProber());
        await _plane.StartAsync(CancellationToken.None);
        _server = await ApiServer.StartAsync(_plane, new ApiServerOptions { StateDirectory = _dir }, CancellationToken.None);
        _http = new HttpClient { BaseAddress = _server.Url, Timeout = TimeSpan.FromSeconds(60) };
        _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", File.ReadAllText(Path.Combine(_dir, "api-token")));
    }

    public async Task DisposeAsync()
    {
        _http.Dispose();
        await _server.DisposeAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await _plane.DownAsync(cts.Token);
        await _plane.DisposeAsync();
        _store.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public async Task Logs_ReplicaWhoseLogsRotated_ViewStreamsEveryKeptLineInOrderAndListsFilesOldestFirst()
    {
        await _plane.ApplyAsync(new Application
        {
            Name = "dash",
            Services =
            [
                new Service
                {
                    Name = "chatty", Command = ["perl", "-e", "$| = 1; printf qq(line %05d %s\\n), $_, 'x' x 40 for 1..600"],
                    Restart = new RestartPolicy { Mode = RestartMode.Never },
                    Logging = new LogRotation(new ByteSize(4 << 10), 50),
                },
            ],
        }, "up", CancellationToken.None);
        await Poll.UntilAsync(() => _plane.Replicas.SingleOrDefault()?.Phase == ReplicaPhase.Completed, TimeSpan.FromSeconds(30), "the chatty replica to finish");
        var id = _plane.Replicas.Single().Id;

        // 600 lines of ~80 bytes in 4 KiB files: about a dozen rotated files, all kept (50).
        using var files = JsonDocument.Parse(await _http.GetStringAsync($"/dashboard/api/log-files?replica={id}"));
        var names = files.RootElement.EnumerateArray().Select(f => f.GetProperty("name").GetString()!).Where(n => n.StartsWith("stdout", StringComparison.Ordinal)).ToList();
        Assert.True(names.Count > 10, $"rotated files listed: {string.Join(", ", names)}");
        Assert.Equal("stdout.log", names[^1]);
        var generations = names.SkipLast(1).Select(n => int.Parse(n["stdout.log.".Length..], System.Globalization.CultureInfo.InvariantCulture)).ToList();
        Assert.Equal(generations.Order(), generations); // oldest first, numerically (stdout.log.2 before stdout.log.10)
        var oldest = await _http.GetStringAsync($"/dashboard/api/log-file?replica={id}&name={names[0]}");
        Assert.StartsWith("line 00001 ", oldest[(oldest.IndexOf(' ', StringComparison.Ordinal) + 1)..], StringComparison.Ordinal);

        var sse = await _http.GetStringAsync($"/dashboard/api/logs?replica={id}&tail=10000");
        var lines = sse.Split('\n').Where(l => l.StartsWith("data: ", StringComparison.Ordinal))
            .Select(l => JsonDocument.Parse(l["data: ".Length..]).RootElement.GetProperty("text").GetString()!).ToList();
        Assert.Equal(Enumerable.Range(1, 600).Select(i => $"line {i:D5} {new string('x', 40)}"), lines);
    }
}
