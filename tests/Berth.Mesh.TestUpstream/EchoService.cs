using Grpc.Core;

namespace Berth.Mesh.TestGrpc;

/// <summary>A one-method gRPC service bound by hand as generated code is (no .proto): strings as UTF-8 messages.</summary>
[BindServiceMethod(typeof(EchoBase), nameof(BindService))]
public abstract class EchoBase
{
    private static readonly Marshaller<string> Utf8 = Marshallers.Create(System.Text.Encoding.UTF8.GetBytes, System.Text.Encoding.UTF8.GetString);

    /// <summary>test.Echo/Echo, unary.</summary>
    public static readonly Method<string, string> EchoMethod = new(MethodType.Unary, "test.Echo", "Echo", Utf8, Utf8);

    public static void BindService(ServiceBinderBase binder, EchoBase? service) =>
        binder.AddMethod(EchoMethod, service is null ? null : service.Echo);

    public abstract Task<string> Echo(string request, ServerCallContext context);
}

/// <summary>Answers "name:request" with the trailer x-replica.</summary>
public sealed class EchoService(string name) : EchoBase
{
    public override Task<string> Echo(string request, ServerCallContext context)
    {
        context.ResponseTrailers.Add("x-replica", name);
        return Task.FromResult($"{name}:{request}");
    }
}
