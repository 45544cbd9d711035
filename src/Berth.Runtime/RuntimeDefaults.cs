namespace Berth.Runtime;

/// <summary>Defaults shared by the drivers, each named after the peer it follows.</summary>
public static class RuntimeDefaults
{
    /// <summary>10 s between SIGTERM and SIGKILL, as <c>docker stop</c>.</summary>
    public static readonly TimeSpan GracePeriod = TimeSpan.FromSeconds(10);

    /// <summary>The window a first CPU sample is taken over when there is no earlier one: 500 ms (docker stats reads every ~1 s).</summary>
    public static readonly TimeSpan StatsSampleWindow = TimeSpan.FromMilliseconds(500);
}
