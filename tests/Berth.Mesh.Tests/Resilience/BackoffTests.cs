
namespace Berth.Mesh.Tests.Resilience;

public sealed class BackoffTests
{
    private static readonly TimeSpan Base = TimeSpan.FromMilliseconds(25);
    private static readonly TimeSpan Cap = TimeSpan.FromMilliseconds(250);

    [Theory]
    [InlineData(0, 25)]
    [InlineData(1, 50)]
    [InlineData(2, 100)]
    [InlineData(3, 200)]
    [InlineData(4, 250)]
    [InlineData(40, 250)]
    public void FullJitter_TopOfRange_IsBaseTimesTwoToTheRetryCappedAtMax(int retry, int ceilingMs)
    {
        var top = Backoff.FullJitter(retry, Base, Cap, new FixedRandom(0.999999));

        Assert.InRange(top.TotalMilliseconds, ceilingMs * 0.999, ceilingMs);
        Assert.Equal(TimeSpan.Zero, Backoff.FullJitter(retry, Base, Cap, new FixedRandom(0)));
    }

    [Fact]
    public void FullJitter_SeededRandom_SpreadsOverTheWholeRange()
    {
        var random = new Random(42);
        var samples = Enumerable.Range(0, 2000).Select(_ => Backoff.FullJitter(1, Base, Cap, random).TotalMilliseconds).ToArray();

        Assert.All(samples, s => Assert.InRange(s, 0, 50));
        Assert.InRange(samples.Average(), 23, 27);
    }

    private sealed class FixedRandom(double value) : Random
    {
        public override double NextDouble() => value;
    }
}
