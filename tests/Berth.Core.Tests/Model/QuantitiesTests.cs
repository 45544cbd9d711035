
namespace Berth.Core.Tests.Model;

public class QuantitiesTests
{
    [Theory]
    [InlineData("500m", 500)]
    [InlineData("0.5", 500)]
    [InlineData("2", 2000)]
    [InlineData("1.5", 1500)]
    [InlineData("0.001", 1)]
    [InlineData(" 250m ", 250)]
    public void CpuQuantity_TryParse_KubernetesForms_GiveMillicores(string text, long milli)
    {
        Assert.True(CpuQuantity.TryParse(text, out var value, out var error), error);
        Assert.Equal(milli, value.MilliCores);
    }

    [Theory]
    [InlineData("", "is empty; write cores such as 0.5 or 2, or millicores such as 500m")]
    [InlineData("-1", "'-1' is not a CPU quantity; write cores such as 0.5 or 2, or millicores such as 500m")]
    [InlineData("0.0005", "'0.0005' is finer than one millicore; the smallest step is 0.001 (1m)")]
    [InlineData("2 cores", "'2 cores' is not a CPU quantity; write cores such as 0.5 or 2, or millicores such as 500m")]
    public void CpuQuantity_TryParse_BadText_SaysWhy(string text, string expected)
    {
        Assert.False(CpuQuantity.TryParse(text, out _, out var error));
        Assert.Equal(expected, error);
    }

    [Theory]
    [InlineData(500, "500m")]
    [InlineData(2000, "2")]
    [InlineData(1500, "1500m")]
    public void CpuQuantity_ToString_IsCanonical(long milli, string expected) => Assert.Equal(expected, new CpuQuantity(milli).ToString());

    [Theory]
    [InlineData("256Mi", 256L << 20)]
    [InlineData("1Gi", 1L << 30)]
    [InlineData("1.5Gi", 3L << 29)]
    [InlineData("1G", 1_000_000_000L)]
    [InlineData("500M", 500_000_000L)]
    [InlineData("128k", 128_000L)]
    [InlineData("1048576", 1048576L)]
    [InlineData("512m", 512L << 20)]
    [InlineData("64mb", 64L << 20)]
    public void ByteSize_TryParse_KubernetesAndComposeForms_GiveBytes(string text, long bytes)
    {
        Assert.True(ByteSize.TryParse(text, out var value, out var error), error);
        Assert.Equal(bytes, value.Bytes);
    }

    [Theory]
    [InlineData("12Q")]
    [InlineData("Mi")]
    [InlineData("-1Mi")]
    public void ByteSize_TryParse_BadText_Fails(string text)
    {
        Assert.False(ByteSize.TryParse(text, out _, out var error));
        Assert.Contains("not a memory size", error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(256L << 20, "256Mi")]
    [InlineData(1L << 30, "1Gi")]
    [InlineData(1_000_000_000L, "1000000000")]
    public void ByteSize_ToString_UsesTheLargestExactBinaryUnit(long bytes, string expected) => Assert.Equal(expected, new ByteSize(bytes).ToString());

    [Theory]
    [InlineData("150ms", 150)]
    [InlineData("5s", 5_000)]
    [InlineData("1m30s", 90_000)]
    [InlineData("1h", 3_600_000)]
    [InlineData("2.5s", 2_500)]
    [InlineData("0", 0)]
    [InlineData("1h2m3s4ms", 3_723_004)]
    public void Durations_TryParse_GoForms_GiveTheSpan(string text, double ms)
    {
        Assert.True(Durations.TryParse(text, out var value, out var error), error);
        Assert.Equal(TimeSpan.FromMilliseconds(ms), value);
    }

    [Theory]
    [InlineData("10", "'10' has no unit; write 10s rather than 10 (units: ns, us, ms, s, m, h)")]
    [InlineData("5sec", "'5sec' has an unknown unit 'sec'; use ns, us, ms, s, m or h")]
    [InlineData("-5s", "'-5s' is not a duration; write a number with a unit (ns, us, ms, s, m, h), such as 500ms, 10s or 1m30s")]
    [InlineData("s", "'s' is not a duration; write a number with a unit (ns, us, ms, s, m, h), such as 500ms, 10s or 1m30s")]
    public void Durations_TryParse_BadText_SaysWhy(string text, string expected)
    {
        Assert.False(Durations.TryParse(text, out _, out var error));
        Assert.Equal(expected, error);
    }

    [Theory]
    [InlineData(0, "0s")]
    [InlineData(150, "150ms")]
    [InlineData(90_000, "1m30s")]
    [InlineData(1_500, "1.5s")]
    [InlineData(5_400_000, "1h30m")]
    public void Durations_Format_RoundTrips(double ms, string expected)
    {
        var span = TimeSpan.FromMilliseconds(ms);
        Assert.Equal(expected, Durations.Format(span));
        Assert.Equal(span, Durations.Parse(expected));
    }

    [Theory]
    [InlineData("25%", 25, true)]
    [InlineData("1", 1, false)]
    [InlineData("0", 0, false)]
    public void IntOrPercent_TryParse_CountOrPercent(string text, int value, bool percent)
    {
        Assert.True(IntOrPercent.TryParse(text, out var parsed, out _));
        Assert.Equal(new IntOrPercent(value, percent), parsed);
    }

    [Fact]
    public void IntOrPercent_Resolve_RoundsSurgeUpAndUnavailableDown()
    {
        Assert.Equal(1, IntOrPercent.Percent(25).Resolve(3, roundUp: true));
        Assert.Equal(0, IntOrPercent.Percent(25).Resolve(3, roundUp: false));
        Assert.Equal(2, IntOrPercent.Count(2).Resolve(10, roundUp: false));
    }
}
