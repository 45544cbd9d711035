
namespace Berth.Mesh.Tests.Balancing;

public sealed class LoadBalancerTests
{
    private readonly FakeTimeProvider _time = new();

    [Fact]
    public void Pick_RoundRobin_CyclesInOrder()
    {
        var endpoints = Endpoints(3);
        var lb = new RoundRobinBalancer();

        var picks = Enumerable.Range(0, 6).Select(_ => lb.Pick(endpoints, null).Upstream.ReplicaId).ToArray();

        Assert.Equal(["r1", "r2", "r0", "r1", "r2", "r0"], picks);
    }

    [Fact]
    public void Pick_PowerOfTwoChoices_SkipsTheBusiestEndpoint()
    {
        var endpoints = Endpoints(2);
        for (var i = 0; i < 5; i++)
        {
            endpoints[0].Enter();
        }

        var lb = new PowerOfTwoChoicesBalancer(new Random(7));

        Assert.All(Enumerable.Range(0, 50), _ => Assert.Same(endpoints[1], lb.Pick(endpoints, null)));
    }

    [Fact]
    public void Pick_PowerOfTwoChoicesSingleCandidate_ReturnsIt()
    {
        var endpoints = Endpoints(1);

        Assert.Same(endpoints[0], new PowerOfTwoChoicesBalancer(new Random(1)).Pick(endpoints, null));
    }

    [Fact]
    public void Pick_PeakEwma_AvoidsTheSlowEndpointAtOnce()
    {
        var endpoints = Endpoints(2);
        endpoints[0].Ewma.Observe(TimeSpan.FromMilliseconds(2));
        endpoints[1].Ewma.Observe(TimeSpan.FromMilliseconds(2));
        _time.Advance(TimeSpan.FromSeconds(30));
        endpoints[0].Ewma.Observe(TimeSpan.FromMilliseconds(2));
        endpoints[1].Ewma.Observe(TimeSpan.FromMilliseconds(2));

        endpoints[1].Ewma.Observe(TimeSpan.FromMilliseconds(500)); // one slow response: the peak takes over

        var lb = new PeakEwmaBalancer(new Random(3));
        Assert.All(Enumerable.Range(0, 50), _ => Assert.Same(endpoints[0], lb.Pick(endpoints, null)));
    }

    [Fact]
    public void Observe_FastSamplesAfterAPeak_DecayTowardThem()
    {
        var ewma = new PeakEwma(_time);
        ewma.Observe(TimeSpan.FromMilliseconds(500));
        for (var i = 0; i < 30; i++)
        {
            _time.Advance(TimeSpan.FromSeconds(1));
            ewma.Observe(TimeSpan.FromMilliseconds(5));
        }

        Assert.InRange(TimeSpan.FromTicks((long)ewma.EstimateTicks).TotalMilliseconds, 5, 60);
    }

    [Fact]
    public void Pick_LeastActive_TakesFewestInFlight()
    {
        var endpoints = Endpoints(3);
        endpoints[0].Enter();
        endpoints[1].Enter();
        endpoints[1].Enter();

        Assert.Same(endpoints[2], new LeastActiveBalancer().Pick(endpoints, null));
    }

    [Fact]
    public void Pick_ConsistentHash_SameKeySameEndpointAndOnlyARemovedEndpointsKeysMove()
    {
        var endpoints = Endpoints(4);
        var lb = new ConsistentHashBalancer(endpoints, new RoundRobinBalancer());
        var keys = Enumerable.Range(0, 400).Select(i => $"user-{i}").ToArray();
        var before = keys.ToDictionary(k => k, k => lb.Pick(endpoints, k));

        Assert.All(keys, k => Assert.Same(before[k], lb.Pick(endpoints, k)));
        var remaining = endpoints.Where(e => e != endpoints[2]).ToList();
        var moved = keys.Count(k => !ReferenceEquals(before[k], lb.Pick(remaining, k)));
        Assert.Equal(keys.Count(k => ReferenceEquals(before[k], endpoints[2])), moved);
        Assert.All(endpoints, e => Assert.InRange(before.Values.Count(v => v == e), 50, 150));
    }

    [Fact]
    public void Pick_ConsistentHashWithoutKey_UsesFallback()
    {
        var endpoints = Endpoints(2);
        var lb = new ConsistentHashBalancer(endpoints, new RoundRobinBalancer());

        Assert.NotSame(lb.Pick(endpoints, null), lb.Pick(endpoints, null));
    }

    [Theory]
    [InlineData("3", 3, "", true)]
    [InlineData("v3", 3, "", true)]
    [InlineData("4", 3, "", false)]
    [InlineData("version=v2", 1, "v2", true)]
    [InlineData("version=v2", 1, "v1", false)]
    public void Matches_VersionByRevisionOrLabel(string version, long revision, string label, bool expected)
    {
        var upstream = new Upstream("r", "127.0.0.1", 1, revision);
        if (label.Length > 0)
        {
            upstream = upstream with { Labels = upstream.Labels.Add("version", label) };
        }

        Assert.Equal(expected, ServiceState.Matches(version, upstream));
    }

    private EndpointState[] Endpoints(int n) =>
        Enumerable.Range(0, n).Select(i => new EndpointState(new Upstream($"r{i}", "127.0.0.1", 9000 + i, 1), new CircuitBreaker(CircuitBreakerPolicy.Default, _time), _time)).ToArray();
}
