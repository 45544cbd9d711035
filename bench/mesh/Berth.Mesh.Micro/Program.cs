using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Running;
using Berth.Core.Model;
using Berth.Core.Routing;
using Berth.Mesh.Balancing;
using Berth.Mesh.Resilience;
using Berth.Mesh.Routing;

BenchmarkSwitcher.FromAssembly(typeof(Balancers).Assembly).Run(args);

/// <summary>Picking one of three upstreams; round-robin is the baseline.</summary>
[MemoryDiagnoser]
public class Balancers
{
    private readonly EndpointState[] _endpoints = Enumerable.Range(0, 3)
        .Select(i => new EndpointState(new Upstream($"r{i}", "127.0.0.1", 9000 + i, 1), new CircuitBreaker(CircuitBreakerPolicy.Default, TimeProvider.System), TimeProvider.System))
        .ToArray();

    private ILoadBalancer _roundRobin = null!;
    private ILoadBalancer _p2c = null!;
    private ILoadBalancer _ewma = null!;
    private ILoadBalancer _hash = null!;

    [GlobalSetup]
    public void Setup()
    {
        _roundRobin = new RoundRobinBalancer();
        _p2c = new PowerOfTwoChoicesBalancer(Random.Shared);
        _ewma = new PeakEwmaBalancer(Random.Shared);
        _hash = new ConsistentHashBalancer(_endpoints, _p2c);
    }

    [Benchmark(Baseline = true)]
    public int RoundRobin() => _roundRobin.Pick(_endpoints, null).Upstream.Port;

    [Benchmark]
    public int PowerOfTwoChoices() => _p2c.Pick(_endpoints, null).Upstream.Port;

    [Benchmark]
    public int PeakEwma() => _ewma.Pick(_endpoints, null).Upstream.Port;

    [Benchmark]
    public int ConsistentHash() => _hash.Pick(_endpoints, "user-12345").Upstream.Port;
}

/// <summary>The resilience bookkeeping one successful request costs; one clock read (which each of them does) is the baseline.</summary>
[MemoryDiagnoser]
public class Bookkeeping
{
    private readonly CircuitBreaker _breaker = new(CircuitBreakerPolicy.Default, TimeProvider.System);
    private readonly RetryBudget _budget = new(RetryPolicy.Default, TimeProvider.System);
    private readonly OutlierDetector _outliers = new(OutlierDetectionPolicy.Default, TimeProvider.System);
    private readonly OutlierState[] _pool = [new(), new(), new()];

    [Benchmark(Baseline = true)]
    public DateTimeOffset ReadClock() => TimeProvider.System.GetUtcNow();

    [Benchmark]
    public void BreakerEnterAndReport() => _breaker.Report(_breaker.TryEnter(), success: true);

    [Benchmark]
    public void BudgetDeposit() => _budget.RecordRequest();

    [Benchmark]
    public bool OutlierSuccess() => _outliers.Report(_pool[0], AttemptOutcome.Success, _pool) is null && !_outliers.IsEjected(_pool[0], out _);

    [Benchmark]
    public void AllForOneRequest()
    {
        // Service and endpoint breakers, the budget deposit and passive health, as the proxy does per attempt.
        _breaker.Report(_breaker.TryEnter(), success: true);
        _breaker.Report(_breaker.TryEnter(), success: true);
        _budget.RecordRequest();
        _outliers.Report(_pool[0], AttemptOutcome.Success, _pool);
        _outliers.IsEjected(_pool[0], out _);
    }
}

/// <summary>The timeouts' share of a request: one reusable <c>RequestTimer</c> (a client connection's) started, armed for a try
/// and reset, as the proxy does per request under the default policy; registering on and unregistering from its token as a
/// socket operation that goes pending does.</summary>
[MemoryDiagnoser]
public class Timeouts
{
    private readonly Berth.Mesh.Http.RequestTimer _timer = new(TimeProvider.System) { Reusable = true };
    private readonly CancellationTokenSource _connection = new();

    [Benchmark(Baseline = true)]
    public void StartArmReset()
    {
        using var t = _timer.Start(TimeSpan.FromSeconds(15), _connection.Token);
        t.Arm(TimeSpan.FromSeconds(5));
    }

    [Benchmark]
    public void StartArmRegisterReset()
    {
        using var t = _timer.Start(TimeSpan.FromSeconds(15), _connection.Token);
        using var r = t.Arm(TimeSpan.FromSeconds(5)).UnsafeRegister(static _ => { }, null);
    }
}
