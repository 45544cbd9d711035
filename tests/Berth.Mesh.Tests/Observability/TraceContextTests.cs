
namespace Berth.Mesh.Tests.Observability;

public sealed class TraceContextTests
{
    [Theory]
    [InlineData("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", true)]
    [InlineData("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", true)]
    [InlineData("00-00000000000000000000000000000000-00f067aa0ba902b7-01", false)]
    [InlineData("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", false)]
    [InlineData("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", false)]
    [InlineData("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false)]
    [InlineData("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7", false)]
    [InlineData("garbage", false)]
    public void TryParse_W3CExamples(string value, bool valid)
    {
        Assert.Equal(valid, TraceContext.TryParse(value, out _, out _));
    }

    [Fact]
    public void Next_ValidIncoming_KeepsTraceIdAndFlagsWithNewSpan()
    {
        var next = TraceContext.Next("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");

        Assert.StartsWith("00-4bf92f3577b34da6a3ce929d0e0e4736-", next);
        Assert.EndsWith("-00", next);
        Assert.NotEqual("00f067aa0ba902b7", next[36..52]);
        Assert.True(TraceContext.TryParse(next, out _, out _));
    }

    [Fact]
    public void Next_InvalidIncoming_StartsANewSampledTrace()
    {
        var next = TraceContext.Next("nonsense");

        Assert.True(TraceContext.TryParse(next, out var traceId, out var flags));
        Assert.Equal("01", flags);
        Assert.NotEqual(TraceContext.Next(null)[3..35], traceId);
    }
}
