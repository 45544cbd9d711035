using Berth.Core.Model;

namespace Berth.Testing.ControlPlanes;

/// <summary>The app and the service the control-plane tests run over <see cref="ControlPlaneHarness"/>.</summary>
public static class HarnessApps
{
    /// <summary>An app named "shop" of <paramref name="services"/>.</summary>
    public static Application Shop(params Service[] services) => new() { Name = "shop", Services = [.. services] };

    /// <summary>Service "api": command <c>api</c>, <paramref name="replicas"/> replicas, one http endpoint on a port Berth picks,
    /// readiness GET /healthz every second (the harness's prober answers it).</summary>
    public static Service Api(int replicas = 2) => new()
    {
        Name = "api", Command = ["api"], Replicas = replicas,
        Endpoints = [new Endpoint { Name = "http" }],
        Readiness = new Probe { Kind = ProbeKind.Http, Path = "/healthz", Period = TimeSpan.FromSeconds(1) },
    };
}
