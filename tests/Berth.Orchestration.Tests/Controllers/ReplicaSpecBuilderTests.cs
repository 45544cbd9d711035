using System.Collections.Immutable;
using Berth.Core.Model;
using Berth.Orchestration.Controllers;
using Berth.Orchestration.State;

namespace Berth.Orchestration.Tests.Controllers;

public sealed class ReplicaSpecBuilderTests
{
    [Theory]
    [InlineData(EndpointProtocol.Grpc, true)]
    [InlineData(EndpointProtocol.H2c, true)]
    [InlineData(EndpointProtocol.Http, false)]
    public void Build_Http2OnlyService_ListensOnAspNetCoreUrlsWithHttp2(EndpointProtocol protocol, bool http2)
    {
        var service = new Service { Name = "api", Command = ["api"], Endpoints = [new Endpoint { Name = "grpc", Protocol = protocol }] };
        var app = new Application { Name = "app", Services = [service] };
        var replica = new ReplicaRecord { Id = "api-1", Service = "api", Ports = ImmutableSortedDictionary<string, int>.Empty.Add("grpc", 41001) };

        var spec = ReplicaSpecBuilder.Build(app, service, replica, new Dictionary<(string, string), int>(), new OrchestratorOptions { StateDirectory = "/tmp/x" });

        Assert.Equal("http://127.0.0.1:41001", spec.Env["ASPNETCORE_URLS"]);
        Assert.Equal(http2, spec.Env.TryGetValue("Kestrel__EndpointDefaults__Protocols", out var p) && p == "Http2");
    }
}
