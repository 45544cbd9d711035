
namespace Berth.Pipelines.Tests.Execution;

public class SecretMaskerTests
{
    private const string Secret = "hunter2-s3cr3t";

    [Fact]
    public void MaskText_SecretWhole_IsReplaced()
    {
        var masker = new SecretMasker([Secret]);

        Assert.Equal("token=*** and again ***.", masker.MaskText($"token={Secret} and again {Secret}."));
    }

    [Fact]
    public void Write_SecretSplitAtEveryPosition_NeverLeaksAPrefixOrSuffix()
    {
        var masker = new SecretMasker([Secret]);
        var text = $"before {Secret} after";
        for (var split = 0; split <= text.Length; split++)
        {
            var stream = masker.Open();
            var output = stream.Write(text.AsSpan(0, split)) + stream.Write(text.AsSpan(split)) + stream.Flush();

            Assert.Equal("before *** after", output);
        }
    }

    [Fact]
    public void Write_SecretOneCharacterPerWrite_IsMasked()
    {
        var stream = new SecretMasker([Secret]).Open();
        var output = string.Concat($"x{Secret}y".Select(c => stream.Write([c]))) + stream.Flush();

        Assert.Equal("x***y", output);
    }

    [Fact]
    public void MaskText_SecretBrokenAcrossLines_MasksEachLineAndKeepsLineBreaks()
    {
        var masker = new SecretMasker([Secret]);

        Assert.Equal("a***\n***b", masker.MaskText("ahunter2\n-s3cr3tb"));
        Assert.Equal("***\r\n***", masker.MaskText("hunter2-\r\ns3cr3t"));
    }

    [Fact]
    public void MaskText_MultiLineSecretPrintedWhole_IsMasked()
    {
        var masker = new SecretMasker(["-----BEGIN KEY-----\nabc123\n-----END KEY-----"]);

        var output = masker.MaskText("key:\n-----BEGIN KEY-----\nabc123\n-----END KEY-----\ndone");

        Assert.Equal("key:\n***\n***\n***\ndone", output);
    }

    [Fact]
    public void Write_PrefixThatNeverCompletes_IsReleasedOnFlush()
    {
        var stream = new SecretMasker([Secret]).Open();

        Assert.Equal("ok ", stream.Write("ok hunt"));
        Assert.Equal("hunt", stream.Flush());
    }

    [Fact]
    public void MaskText_OverlappingSecrets_LongestWins()
    {
        var masker = new SecretMasker(["abc", "abcdef"]);

        Assert.Equal("x***y", masker.MaskText("xabcdefy"));
    }
}
