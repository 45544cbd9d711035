namespace Berth.Kubernetes.Tests.Generation;

public sealed class KubeNamesTests
{
    [Theory]
    [InlineData("api", "api")]
    [InlineData("My_API", "my-api")]
    [InlineData("1worker", "s-1worker")]
    [InlineData("a--b__c", "a-b-c")]
    public void Label_SpecName_BecomesDns1035Label(string name, string expected) =>
        Assert.Equal(expected, KubeNames.Label(name));

    [Fact]
    public void Port_LongEndpointName_FitsFifteenCharacters() =>
        Assert.Equal("metrics-and-adm", KubeNames.Port("metrics_and_admin_port"));

    [Theory]
    [InlineData("team", true)]
    [InlineData("com.example.team", true)]
    [InlineData("example.com/team", true)]
    [InlineData("1example.com/team", true)]
    [InlineData("Example.com/team", false)]
    [InlineData("/team", false)]
    [InlineData("bad key", false)]
    [InlineData("-team", false)]
    public void IsAnnotationKey_Key_AcceptsWhatKubernetesAccepts(string key, bool expected) =>
        Assert.Equal(expected, KubeNames.IsAnnotationKey(key));
}
