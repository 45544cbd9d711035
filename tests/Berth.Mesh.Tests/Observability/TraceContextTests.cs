
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
        var next = TraceContext.Next("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").ToString();

        Assert.StartsWith("00-4bf92f3577b34da6a3ce929d0e0e4736-", next);
        Assert.EndsWith("-00", next);
        Assert.NotEqual("00f067aa0ba902b7", next[36..52]);
        Assert.True(TraceContext.TryParse(next, out _, out _));
    }

    [Fact]
    public void Next_InvalidIncoming_StartsANewSampledTrace()
    {
        var next = TraceContext.Next("nonsense").ToString();

        Assert.True(TraceContext.TryParse(next, out var traceId, out var flags));
        Assert.Equal("01", flags);
        Assert.NotEqual(TraceContext.Next(null).ToString()[3..35], traceId);
    }

    [Theory]
    [InlineData("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")]
    [InlineData("00-0000000000000000a3ce929d0e0e47f6-00f067aa0ba902b7-00")]
    [InlineData(null)]
    public void Next_BytesWrittenIntoTheHead_AreItsText(string? incoming)
    {
        var next = TraceContext.Next(incoming);
        var bytes = new byte[TraceParent.Length + 2];
        bytes[^1] = (byte)'x';

        next.WriteTo(bytes);

        Assert.Equal(next.ToString(), System.Text.Encoding.ASCII.GetString(bytes, 0, TraceParent.Length));
        Assert.Equal((byte)'x', bytes[^1]);
        Assert.False(next.IsNone);
        Assert.True(TraceContext.TryParse(next.ToString(), out var traceId, out _));
        if (incoming is not null)
        {
            Assert.Equal(incoming[3..35], traceId);
        }
    }

    [Fact]
    public void None_HasNoText()
    {
        Assert.True(default(TraceParent).IsNone);
        Assert.Null(default(TraceParent).Text());
    }
}
