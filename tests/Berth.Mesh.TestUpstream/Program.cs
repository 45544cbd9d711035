// Usage: Berth.Mesh.TestUpstream --port N [--name replica-1] [--exit-on /poison] [--grpc]
// Answers every request with 200 and its name; /status/{code} answers that code. Prints "ready" once listening.
// With --exit-on: a request for that path prints "delivered {path}" and kills the process before answering (a query of death).
// With --grpc: HTTP/2 only (h2c, prior knowledge), a real Grpc.AspNetCore server of test.Echo/Echo answering "name:request"
// with the trailer x-replica: name.
using System.Globalization;
using Berth.Mesh.TestGrpc;
using Grpc.Core;

var port = 0;
var name = "upstream";
string? exitOn = null;
var grpc = args.Contains("--grpc");
for (var i = 0; i + 1 < args.Length; i += 2)
{
    switch (args[i])
    {
        case "--port":
            port = int.Parse(args[i + 1], CultureInfo.InvariantCulture);
            break;
        case "--name":
            name = args[i + 1];
            break;
        case "--exit-on":
            exitOn = args[i + 1];
            break;
    }
}

var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions { Args = args });
builder.WebHost.UseKestrelCore().ConfigureKestrel(k =>
{
    k.AddServerHeader = false;
    k.Listen(System.Net.IPAddress.Loopback, port, l => l.Protocols = grpc ? Microsoft.AspNetCore.Server.Kestrel.Core.HttpProtocols.Http2 : Microsoft.AspNetCore.Server.Kestrel.Core.HttpProtocols.Http1AndHttp2);
});
if (grpc)
{
    builder.Services.AddRouting();
    builder.Services.AddGrpc();
    builder.Services.AddSingleton(new EchoService(name));
    var server = builder.Build();
    server.UseRouting();
    server.MapGrpcService<EchoService>();
    await server.StartAsync();
    Console.WriteLine("ready");
    await server.WaitForShutdownAsync();
    return;
}

var app = builder.Build();
var body = System.Text.Encoding.UTF8.GetBytes(name);
app.Run(context =>
{
    var path = context.Request.Path.Value ?? "/";
    if (exitOn is not null && path == exitOn)
    {
        Console.Out.WriteLine("delivered " + path);
        Console.Out.Flush();
        System.Diagnostics.Process.GetCurrentProcess().Kill();
    }

    if (path.StartsWith("/status/", StringComparison.Ordinal) && int.TryParse(path.AsSpan(8), NumberStyles.None, CultureInfo.InvariantCulture, out var code))
    {
        context.Response.StatusCode = code;
    }

    context.Response.ContentType = "text/plain";
    context.Response.ContentLength = body.Length;
    return context.Response.Body.WriteAsync(body).AsTask();
});
await app.StartAsync();
Console.WriteLine("ready");
await app.WaitForShutdownAsync();
