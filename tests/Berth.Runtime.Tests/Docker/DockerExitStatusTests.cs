using Berth.Runtime.Docker;

namespace Berth.Runtime.Tests.Docker;

public sealed class DockerExitStatusTests
{
    [Theory]
    [InlineData(0, false, false, null)]
    [InlineData(1, false, true, null)]
    [InlineData(128, false, true, null)]
    [InlineData(155, false, false, null)] // exit 155 is a code, not SIGPROF
    [InlineData(137, false, false, null)] // killed outside the driver: the engine cannot say
    [InlineData(137, true, false, 9)] // the kernel's OOM killer sends SIGKILL
    [InlineData(143, true, false, null)] // OOM is SIGKILL only
    [InlineData(143, false, true, 15)] // the driver's own stop: SIGTERM
    [InlineData(137, false, true, 9)] // the driver's own stop after the grace period: SIGKILL
    [InlineData(192, false, true, 64)]
    [InlineData(193, false, true, null)] // past SIGRTMAX
    [InlineData(255, false, true, null)]
    public void Signal_ExitCodeAndWhatIsKnown_SignalOnlyWhenOneWasSent(long exitCode, bool oomKilled, bool stoppedByDriver, int? expected) =>
        Assert.Equal(expected, DockerExitStatus.Signal(exitCode, oomKilled, stoppedByDriver));
}
