var app = WebApplication.CreateBuilder(args).Build();
app.MapGet("/", () => "v1");
app.Run();
