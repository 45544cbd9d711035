// Usage: Berth.Mesh.TestUpstream --port N [--name replica-1] [--exit-on /poison]
// Answers every request with 200 and its name; /status/{code} answers that code. Prints "ready" once listening.
// With --exit-on: a request for that path prints "delivered {path}" and kills the process before answering (a query of death).
using System.Globalization;

var port = 0;
var name = "upstream";
string? exitOn = null;
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
    k.Listen(System.Net.IPAddress.Loopback, port);
});
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
