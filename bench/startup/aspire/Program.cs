// The shop sample (samples/shop/berth.yaml) as an Aspire AppHost: db and worker first, api once both are healthy,
// frontend once api is healthy. Each replica runs the same built app as under berth (samples/shop/app), by project.
using System.Net.Sockets;
using Microsoft.Extensions.Diagnostics.HealthChecks;

var builder = DistributedApplication.CreateBuilder(args);
var shop = Path.GetFullPath(Path.Combine(builder.AppHostDirectory, "..", "..", "..", "samples", "shop", "app", "Shop.csproj"));

// db speaks TCP: Aspire has no TCP health check of its own, so the twin adds the same check berth's tcp probe makes.
var db = builder.AddProject("db", shop, launchProfileName: null)
    .WithArgs("db")
    .WithEndpoint(name: "tcp", scheme: "tcp", env: "PORT");
var dbEndpoint = db.GetEndpoint("tcp");
builder.Services.AddHealthChecks().AddAsyncCheck("db-tcp", async ct =>
{
    try
    {
        using var client = new TcpClient();
        await client.ConnectAsync(dbEndpoint.Host, dbEndpoint.Port, ct);
        return HealthCheckResult.Healthy();
    }
    catch (SocketException e)
    {
        return HealthCheckResult.Unhealthy(e.Message);
    }
});
db.WithHealthCheck("db-tcp");

var worker = builder.AddProject("worker", shop, launchProfileName: null)
    .WithArgs("worker")
    .WithHttpEndpoint(env: "PORT")
    .WithReplicas(2)
    .WithHttpHealthCheck("/healthz");

var api = builder.AddProject("api", shop, launchProfileName: null)
    .WithArgs("api")
    .WithHttpEndpoint(env: "PORT")
    .WithReplicas(2)
    .WithHttpHealthCheck("/healthz")
    .WithReference(worker)
    .WithReference(dbEndpoint)
    .WaitFor(worker)
    .WaitFor(db);

builder.AddProject("frontend", shop, launchProfileName: null)
    .WithArgs("frontend")
    .WithHttpEndpoint(env: "PORT")
    .WithHttpHealthCheck("/healthz")
    .WithReference(api)
    .WaitFor(api);

builder.Build().Run();
