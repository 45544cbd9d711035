using Berth.Mesh.Http;

namespace Berth.Mesh.Tests.Http;

public sealed class HopByHopTests
{
    [Theory]
    [InlineData("keep-alive, X-Client-Hop", "X-Client-Hop", true)]
    [InlineData("keep-alive,x-client-hop", "X-Client-Hop", true)]
    [InlineData("keep-alive", "X-Client-Hop", false)]
    [InlineData("X-Client-Hopper", "X-Client-Hop", false)]
    public void Named_ConnectionTokens_MatchWholeNamesIgnoringCase(string connection, string name, bool expected) =>
        Assert.Equal(expected, Http1Forwarder.Named(connection, name));
}
