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

    [Fact]
    public void Build_TelemetryReceiverRunning_ReplicaNamesItsServiceReplicaAndRevisionAndTheSpecWinsOverBerth()
    {
        var service = new Service
        {
            Name = "api", Command = ["api"],
            Env = ImmutableSortedDictionary<string, string>.Empty.Add("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        };
        var app = new Application { Name = "shop", Services = [service] };
        var replica = new ReplicaRecord { Id = "api-7c2e1", Service = "api", Revision = 4 };
        var options = new OrchestratorOptions
        {
            StateDirectory = "/tmp/x",
            ReplicaEnvironment = new Dictionary<string, string> { ["OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://127.0.0.1:4317", ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "grpc" },
        };

        var env = ReplicaSpecBuilder.Build(app, service, replica, new Dictionary<(string, string), int>(), options).Env;

        Assert.Equal("http://127.0.0.1:4317", env["OTEL_EXPORTER_OTLP_ENDPOINT"]);
        Assert.Equal("api", env["OTEL_SERVICE_NAME"]);
        Assert.Equal("service.instance.id=api-7c2e1,berth.app=shop,berth.service=api,berth.replica=api-7c2e1,berth.revision=4", env["OTEL_RESOURCE_ATTRIBUTES"]);
        Assert.Equal("http/protobuf", env["OTEL_EXPORTER_OTLP_PROTOCOL"]); // the spec's own value wins, as Aspire lets an app override
    }

    [Fact]
    public void Build_NoTelemetryReceiver_NoOtelVariables()
    {
        var service = new Service { Name = "api", Command = ["api"] };
        var env = ReplicaSpecBuilder.Build(new Application { Name = "shop", Services = [service] }, service,
            new ReplicaRecord { Id = "api-1", Service = "api" }, new Dictionary<(string, string), int>(), new OrchestratorOptions { StateDirectory = "/tmp/x" }).Env;

        Assert.DoesNotContain(env.Keys, k => k.StartsWith("OTEL_", StringComparison.Ordinal));
    }

    [Fact]
    public void Build_ReplicaInAPod_TelemetryEndpointIsTheHostGatewayAndThePodForwardsThereToTheReceiver()
    {
        var service = new Service { Name = "api", Command = ["api"] };
        var app = new Application { Name = "shop", Services = [service] };
        var options = new OrchestratorOptions
        {
            StateDirectory = "/tmp/x",
            ReplicaEnvironment = new Dictionary<string, string> { ["OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://127.0.0.1:4317", ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "grpc" },
        };

        var inPod = ReplicaSpecBuilder.Build(app, service, new ReplicaRecord { Id = "api-1", Service = "api", Pod = true }, new Dictionary<(string, string), int>(), options).Env;
        var onHost = ReplicaSpecBuilder.Build(app, service, new ReplicaRecord { Id = "api-2", Service = "api" }, new Dictionary<(string, string), int>(), options).Env;
        var forward = ReplicaSpecBuilder.TelemetryForward(options.ReplicaEnvironment);

        Assert.Equal("http://127.78.0.1:4317", inPod["OTEL_EXPORTER_OTLP_ENDPOINT"]);
        Assert.Equal("http://127.0.0.1:4317", onHost["OTEL_EXPORTER_OTLP_ENDPOINT"]);
        Assert.Equal(new Berth.Core.Routing.OutboundListener("host-gateway", "otlp", "127.78.0.1", 4317) { ForwardTo = "127.0.0.1:4317" }, forward?.Listener);
        Assert.Null(ReplicaSpecBuilder.TelemetryForward(new Dictionary<string, string> { ["OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://collector.example:4317" }));
    }
}
