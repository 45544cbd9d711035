using Berth.Core.Model;
using Berth.Core.Probing;
using Berth.Mesh.Routing;
using Berth.Mesh.Tests.Support;
using Microsoft.AspNetCore.Http;

namespace Berth.Mesh.Tests.Functional;

/// <summary>The mesh's own readiness probing against real upstreams (real time, short periods, polled with deadlines).</summary>
public sealed class ActiveHealthTests
{
    [Fact]
    public async Task Readiness_UpstreamFailingProbe_LeavesRotationAndReturnsWhenPassing()
    {
        await using var a = await TestUpstream.StartAsync("a");
        await using var b = await TestUpstream.StartAsync("b");
        var aReady = false;
        a.Handler = context =>
        {
            if (context.Request.Path == "/ready")
            {
                context.Response.StatusCode = Volatile.Read(ref aReady) ? 200 : 503;
                return Task.CompletedTask;
            }

            return context.Response.WriteAsync("a");
        };
        await using var mesh = new MeshHost();
        var port = Ports.Free();
        var probe = new Probe { Kind = ProbeKind.Http, Path = "/ready", Period = TimeSpan.FromMilliseconds(100), FailureThreshold = 2, SuccessThreshold = 1 };
        await mesh.UpdateAsync(MeshTest.Route(port, MeshTest.Bare(), a.Upstream(), b.Upstream()) with { Readiness = probe }, CancellationToken.None);
        using var client = MeshTest.Client(port);

        await Poll.UntilAsync(async () => !(await mesh.RoutesAsync(CancellationToken.None)).Single().Upstreams.Single(u => u.Replica == "a").Healthy,
            TimeSpan.FromSeconds(20), "upstream a to fail its readiness probe twice");
        for (var i = 0; i < 10; i++)
        {
            Assert.Equal("b", (await MeshTest.GetAsync(client)).Body);
        }

        Volatile.Write(ref aReady, true);
        await Poll.UntilAsync(async () => (await mesh.RoutesAsync(CancellationToken.None)).Single().Upstreams.Single(u => u.Replica == "a").Healthy,
            TimeSpan.FromSeconds(20), "upstream a to pass its readiness probe again");
        var bodies = new List<string>();
        for (var i = 0; i < 10; i++)
        {
            bodies.Add((await MeshTest.GetAsync(client)).Body);
        }

        Assert.Contains("a", bodies);
    }

    [Fact]
    public async Task Readiness_EveryUpstreamFailing_StillRoutesAsPanicMode()
    {
        await using var a = await TestUpstream.StartAsync("a");
        a.AnswerOn("/ready", 503);
        await using var mesh = new MeshHost();
        var port = Ports.Free();
        var probe = new Probe { Kind = ProbeKind.Tcp, Port = Ports.Free(), Period = TimeSpan.FromMilliseconds(100), FailureThreshold = 1 };
        await mesh.UpdateAsync(MeshTest.Route(port, MeshTest.Bare(), a.Upstream()) with { Readiness = probe }, CancellationToken.None);
        using var client = MeshTest.Client(port);

        await Poll.UntilAsync(async () => !(await mesh.RoutesAsync(CancellationToken.None)).Single().Upstreams.Single().Healthy,
            TimeSpan.FromSeconds(20), "the TCP probe to a closed port to fail");

        Assert.Equal(200, (await MeshTest.GetAsync(client)).Status);
    }

    [Theory]
    [InlineData(new[] { false, false }, true)]
    [InlineData(new[] { false, false, false }, false)]
    [InlineData(new[] { false, false, true, false, false }, true)]
    public void Record_FailureThresholdThree_FlipsOnlyOnThreeInARow(bool[] results, bool healthyAfter)
    {
        var health = new ProbeThreshold(initiallyPassing: true);
        foreach (var ok in results)
        {
            health.Record(ok, successThreshold: 1, failureThreshold: 3);
        }

        Assert.Equal(healthyAfter, health.Passing);
    }
}
