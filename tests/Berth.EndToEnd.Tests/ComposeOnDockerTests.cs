using System.Diagnostics;
using System.Text.Json;
using Berth.EndToEnd.Tests.Support;
using Berth.Runtime.Docker;
using Berth.Runtime.Tests.Docker;
using Berth.Testing;

namespace Berth.EndToEnd.Tests;

/// <summary>
/// A Compose app on the Docker driver through the real <c>berth</c> program, with images made offline: a MySQL-style service
/// reads its password from /run/secrets/db-password (the *_PASSWORD_FILE pattern), a service with only build: is built as
/// PROJECT-SERVICE and runs, and a named volume keeps its data across berth down / berth up and is gone after berth down -v.
/// </summary>
public sealed class ComposeOnDockerTests : IAsyncLifetime
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(120);
    private readonly string _dir = Directory.CreateTempSubdirectory("berth-compose-docker-").FullName;
    private readonly string _app = "cmp" + Guid.NewGuid().ToString("N")[..8];
    private readonly BerthCli _berth;

    public ComposeOnDockerTests() => _berth = new BerthCli(_dir);

    public async Task InitializeAsync()
    {
        if (!Environments.DockerAvailable)
        {
            return;
        }

        using var driver = await DockerDriver.ConnectAsync(new DockerDriverOptions(), CancellationToken.None);
        await TestImages.EnsureAsync(driver);

        File.WriteAllText(Path.Combine(_dir, "db-password.txt"), "s3cret");
        Directory.CreateDirectory(Path.Combine(_dir, "web"));
        File.WriteAllText(Path.Combine(_dir, "web", "Dockerfile"), $"FROM {TestImages.Base}\nCOPY built.txt /built.txt\nCMD [\"sleep\", \"3600\"]\n");
        File.WriteAllText(Path.Combine(_dir, "web", "built.txt"), "built by berth up\n");
        File.WriteAllText(Path.Combine(_dir, "compose.yaml"), $$"""
            name: {{_app}}
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

    public async Task DisposeAsync()
    {
        if (!Environments.DockerAvailable)
        {
            return;
        }

        try
        {
            await _berth.DownAsync();
        }
        finally
        {
            var left = Docker("ps", "-aq", "--filter", $"label=berth.app={_app}").Split('\n', StringSplitOptions.RemoveEmptyEntries);
            if (left.Length > 0)
            {
                Docker(["rm", "-f", .. left]);
            }

            Docker("volume", "rm", "-f", $"{_app}_data");
            Docker("rmi", "-f", $"{_app}-web");
            Directory.Delete(_dir, recursive: true);
        }
    }

    [DockerFact]
    public async Task Up_SecretsBuildOnlyServiceAndNamedVolume_WorkAsWithDockerCompose()
    {
        await UpAsync();

        // The password reached the program through the file Compose would mount, read-only and world-readable.
        Assert.Equal("password:s3cret", Exec("db", "cat", "/tmp/seen").Trim());
        Assert.StartsWith("-r--r--r--", Exec("db", "ls", "-l", "/run/secrets/db-password"), StringComparison.Ordinal);
        Assert.NotEqual(0, ExecCode("db", "sh", "-c", "echo x > /run/secrets/db-password"));

        // The build-only service was built and tagged PROJECT-SERVICE, and runs from that image.
        Assert.Equal($"{_app}-web", Docker("ps", "--filter", $"label=berth.app={_app}", "--filter", "label=berth.service=web", "--format", "{{.Image}}").Trim());
        Assert.Equal("built by berth up", Exec("web", "cat", "/built.txt").Trim());

        // The named volume is a real Docker volume, labelled with the app, named as Compose names it.
        Assert.Equal($"{_app}_data", Docker("volume", "ls", "-q", "--filter", $"label=berth.app={_app}").Trim());
        Assert.Equal("start", Exec("db", "cat", "/var/lib/mysql/starts").Trim());

        await DownAsync();
        Assert.Equal($"{_app}_data", Docker("volume", "ls", "-q", "--filter", $"label=berth.app={_app}").Trim());

        await UpAsync();
        Assert.Equal("start\nstart", Exec("db", "cat", "/var/lib/mysql/starts").Trim());

        await DownAsync("-v");
        Assert.Equal("", Docker("volume", "ls", "-q", "--filter", $"label=berth.app={_app}").Trim());

        await UpAsync();
        Assert.Equal("start", Exec("db", "cat", "/var/lib/mysql/starts").Trim());
    }

    private async Task UpAsync()
    {
        var up = await _berth.RunAsync("up", "-d");
        Assert.True(up.Code == 0, $"berth up -d failed: {up}");
        var last = "";
        try
        {
            await Poll.UntilAsync(
            async () =>
            {
                var ps = await _berth.RunAsync("ps", "-o", "json");
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
            throw new TimeoutException($"{e.Message}; last berth ps: {last}; control plane log: {Log()}", e);
        }
    }

    private async Task DownAsync(params string[] extra)
    {
        var down = await _berth.RunAsync(["down", .. extra]);
        Assert.True(down.Code == 0, $"berth down {string.Join(' ', extra)} failed: {down}");
        Assert.Equal("", Docker("ps", "-aq", "--filter", $"label=berth.app={_app}").Trim());
    }

    private string Log()
    {
        var log = Path.Combine(_dir, ".berth", "control-plane.log");
        return File.Exists(log) ? string.Join('\n', File.ReadLines(log).TakeLast(30)) : "(none)";
    }

    private string Container(string service) =>
        Docker("ps", "-q", "--filter", $"label=berth.app={_app}", "--filter", $"label=berth.service={service}").Trim();

    private string Exec(string service, params string[] argv)
    {
        var (code, output) = Run("docker", ["exec", Container(service), .. argv]);
        Assert.True(code == 0, $"docker exec {service} {string.Join(' ', argv)} failed ({code}): {output}");
        return output;
    }

    private int ExecCode(string service, params string[] argv)
    {
        var container = Container(service);
        return container.Length == 0 ? -1 : Run("docker", ["exec", container, .. argv]).Code;
    }

    private static string Docker(params string[] args) => Run("docker", args).Output;

    private static (int Code, string Output) Run(string program, string[] args)
    {
        var info = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        using var p = Process.Start(info)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromSeconds(60)))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{program} {string.Join(' ', args)} did not finish in 60s");
        }

        return (p.ExitCode, stdout.Result + stderr.Result);
    }
}
