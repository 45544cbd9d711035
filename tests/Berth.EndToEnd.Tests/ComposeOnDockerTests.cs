namespace Berth.EndToEnd.Tests;

/// <summary>
/// A Compose app on the Docker driver through the real <c>berth</c> program, with images made offline: a MySQL-style service
/// reads its password from /run/secrets/db-password (the *_PASSWORD_FILE pattern), a service with only build: is built as
/// PROJECT-SERVICE and runs, and a named volume keeps its data across berth down / berth up and is gone after berth down -v.
/// </summary>
public sealed class ComposeOnDockerTests : IAsyncLifetime
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(120);
    private readonly DockerApp _docker = new("cmp");

    public async Task InitializeAsync()
    {
        if (!await _docker.PrepareAsync())
        {
            return;
        }

        _docker.RemoveOnDispose("volume", "rm", "-f", $"{_docker.Name}_data");
        _docker.RemoveOnDispose("rmi", "-f", $"{_docker.Name}-web");
        File.WriteAllText(Path.Combine(_docker.Dir, "db-password.txt"), "s3cret");
        Directory.CreateDirectory(Path.Combine(_docker.Dir, "web"));
        File.WriteAllText(Path.Combine(_docker.Dir, "web", "Dockerfile"), $"FROM {TestImages.Base}\nCOPY built.txt /built.txt\nCMD [\"sleep\", \"3600\"]\n");
        File.WriteAllText(Path.Combine(_docker.Dir, "web", "built.txt"), "built by berth up\n");
        File.WriteAllText(Path.Combine(_docker.Dir, "compose.yaml"), $$"""
            name: {{_docker.Name}}
            services:
              db:
                image: {{TestImages.Base}}
                # What a MySQL image's entrypoint does with MYSQL_ROOT_PASSWORD_FILE, and a count of starts kept in the volume.
                command: ["sh", "-c", "read p < \"$$MYSQL_ROOT_PASSWORD_FILE\"; echo \"password:$$p\" > /tmp/seen; echo start >> /var/lib/mysql/starts; exec sleep 3600"]
                environment:
                  MYSQL_ROOT_PASSWORD_FILE: /run/secrets/db-password
                secrets:
                  - db-password
                volumes:
                  - data:/var/lib/mysql
              web:
                build: ./web
            secrets:
              db-password:
                file: ./db-password.txt
            volumes:
              data:
            """);
    }

    public Task DisposeAsync() => _docker.DisposeAsync().AsTask();

    [DockerFact]
    public async Task Up_SecretsBuildOnlyServiceAndNamedVolume_WorkAsWithDockerCompose()
    {
        await UpAsync();

        // The password reached the program through the file Compose would mount, read-only and world-readable.
        Assert.Equal("password:s3cret", Exec("db", "cat", "/tmp/seen").Trim());
        Assert.StartsWith("-r--r--r--", Exec("db", "ls", "-l", "/run/secrets/db-password"), StringComparison.Ordinal);
        Assert.NotEqual(0, ExecCode("db", "sh", "-c", "echo x > /run/secrets/db-password"));

        // The build-only service was built and tagged PROJECT-SERVICE, and runs from that image.
        Assert.Equal($"{_docker.Name}-web", Docker("ps", "--filter", $"label=berth.app={_docker.Name}", "--filter", "label=berth.service=web", "--format", "{{.Image}}").Trim());
        Assert.Equal("built by berth up", Exec("web", "cat", "/built.txt").Trim());

        // The named volume is a real Docker volume, labelled with the app, named as Compose names it.
        Assert.Equal($"{_docker.Name}_data", Docker("volume", "ls", "-q", "--filter", $"label=berth.app={_docker.Name}").Trim());
        Assert.Equal("start", Exec("db", "cat", "/var/lib/mysql/starts").Trim());

        await DownAsync();
        Assert.Equal($"{_docker.Name}_data", Docker("volume", "ls", "-q", "--filter", $"label=berth.app={_docker.Name}").Trim());

        await UpAsync();
        Assert.Equal("start\nstart", Exec("db", "cat", "/var/lib/mysql/starts").Trim());

        await DownAsync("-v");
        Assert.Equal("", Docker("volume", "ls", "-q", "--filter", $"label=berth.app={_docker.Name}").Trim());

        await UpAsync();
        Assert.Equal("start", Exec("db", "cat", "/var/lib/mysql/starts").Trim());
    }

    private async Task UpAsync()
    {
        var up = await _docker.Berth.RunAsync("up", "-d");
        Assert.True(up.Code == 0, $"berth up -d failed: {up}");
        var last = "";
        try
        {
            await Poll.UntilAsync(
            async () =>
            {
                var ps = await _docker.Berth.RunAsync("ps", "-o", "json");
                var replicas = ps.Code == 0 ? JsonDocument.Parse(ps.Out).RootElement.EnumerateArray().ToList() : [];
                last = string.Join(", ", replicas.Select(r => $"{r.GetProperty("id")}={r.GetProperty("phase")}"));
                return replicas.Count(r => r.GetProperty("phase").GetString() == "ready") == 2
                    && Container("db").Length > 0 && ExecCode("db", "cat", "/tmp/seen") == 0;
            },
            Wait,
            "db and web Ready, and db past its start");
        }
        catch (TimeoutException e)
        {
            throw new TimeoutException($"{e.Message}; last berth ps: {last}; control plane log: {_docker.ControlPlaneLogTail()}", e);
        }
    }

    private async Task DownAsync(params string[] extra)
    {
        var down = await _docker.Berth.RunAsync(["down", .. extra]);
        Assert.True(down.Code == 0, $"berth down {string.Join(' ', extra)} failed: {down}");
        Assert.Equal("", Docker("ps", "-aq", "--filter", $"label=berth.app={_docker.Name}").Trim());
    }

    private string Container(string service) =>
        Docker("ps", "-q", "--filter", $"label=berth.app={_docker.Name}", "--filter", $"label=berth.service={service}").Trim();

    private string Exec(string service, params string[] argv)
    {
        var (code, output, error) = DockerApp.Docker(["exec", Container(service), .. argv]);
        Assert.True(code == 0, $"docker exec {service} {string.Join(' ', argv)} failed ({code}): {output}{error}");
        return output;
    }

    private int ExecCode(string service, params string[] argv)
    {
        var container = Container(service);
        return container.Length == 0 ? -1 : DockerApp.Docker(["exec", container, .. argv]).Code;
    }

    private static string Docker(params string[] args) => DockerApp.Docker(args).Out;
}
