using System.Net;
using System.Net.Sockets;
using Berth.Core.Model;
using Berth.Core.Probing;
using Berth.Testing;
using Microsoft.Extensions.Time.Testing;

namespace Berth.Core.Tests.Probing;

/// <summary>The probe runners shared by the orchestrator and the mesh, against real sockets on loopback.</summary>
public sealed class ProbeRunnerTests
{
    private static readonly Probe Http = new() { Kind = ProbeKind.Http, Path = "/healthz", Timeout = TimeSpan.FromSeconds(2) };

    [Fact]
    public async Task HttpRunAsync_ServerNeverAnswers_TimesOutOnTheInjectedClock()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var time = new FakeTimeProvider();
        using var runner = new HttpProbeRunner(time);

        var run = runner.RunAsync(Http, "127.0.0.1", port, CancellationToken.None);
        using var accepted = await listener.AcceptSocketAsync(); // connected; it never answers
        Assert.False(run.IsCompleted);
        time.Advance(TimeSpan.FromSeconds(2));
        var outcome = await run.WaitAsync(TimeSpan.FromSeconds(20));

        Assert.Equal(new ProbeOutcome(false, "timed out after 2s"), outcome);
    }

    [Fact]
    public async Task HttpRunAsync_StatusCodes_TwoHundredToThreeNinetyNinePass()
    {
        using var runner = new HttpProbeRunner();
        foreach (var (code, passes) in new[] { (200, true), (302, true), (399, true), (404, false), (500, false) })
        {
            var port = Ports.Free();
            using var listener = new TcpListener(IPAddress.Loopback, port);
            listener.Start();
            var serve = Task.Run(async () =>
            {
                using var socket = await listener.AcceptSocketAsync();
                var buffer = new byte[4096];
                await socket.ReceiveAsync(buffer);
                await socket.SendAsync(System.Text.Encoding.ASCII.GetBytes($"HTTP/1.1 {code} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"));
            });

            var outcome = await runner.RunAsync(Http, "127.0.0.1", port, CancellationToken.None);
            await serve;

            Assert.Equal(new ProbeOutcome(passes, $"HTTP {code} from GET /healthz"), outcome);
        }
    }

    [Fact]
    public async Task TcpRunAsync_NothingListening_FailsWithTheReason()
    {
        var outcome = await new TcpProbeRunner().RunAsync(new Probe { Kind = ProbeKind.Tcp }, "127.0.0.1", Ports.Free(), CancellationToken.None);

        Assert.False(outcome.Success);
        Assert.Contains("refused", outcome.Message, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task RunAsync_NoPort_FailsSayingHowToFixIt()
    {
        using var http = new HttpProbeRunner();

        Assert.Equal(new ProbeOutcome(false, ProbeRun.NoPort), await http.RunAsync(Http, "127.0.0.1", null, CancellationToken.None));
        Assert.Equal(new ProbeOutcome(false, ProbeRun.NoPort), await new TcpProbeRunner().RunAsync(Http, "127.0.0.1", null, CancellationToken.None));
    }

    [Theory]
    [InlineData(true, false, new[] { false, false, false }, ProbeTransition.Failed)]
    [InlineData(true, false, new[] { false, false, true, false, false }, ProbeTransition.None)]
    [InlineData(false, false, new[] { false, false, false, false }, ProbeTransition.None)]
    [InlineData(false, true, new[] { false, false, false }, ProbeTransition.Failed)]
    [InlineData(false, false, new[] { false, true, true }, ProbeTransition.Passed)]
    public void Record_Thresholds_FlipOnlyAfterEnoughInARow(bool initiallyPassing, bool failsBeforePassing, bool[] results, ProbeTransition last)
    {
        var threshold = new ProbeThreshold(initiallyPassing, failsBeforePassing);

        var transitions = results.Select(ok => threshold.Record(ok, successThreshold: 2, failureThreshold: 3)).ToList();

        Assert.Equal(last, transitions[^1]);
        Assert.All(transitions.SkipLast(1), t => Assert.Equal(ProbeTransition.None, t));
    }
}
