using Berth.Core.Build;
using Docker.DotNet;
using Docker.DotNet.Models;

namespace Berth.Pipelines.Steps;

/// <summary>What a build-image step needs from a container engine; the runtime's Docker driver can take this over.</summary>
public interface IImageBuilder
{
    /// <summary>Builds <paramref name="dockerfile"/> in <paramref name="contextDirectory"/> and tags it; throws <see cref="Execution.StepFailedException"/> on a failed build.</summary>
    Task BuildAsync(
        string contextDirectory,
        string dockerfile,
        IReadOnlyList<string> tags,
        IReadOnlyDictionary<string, string> buildArgs,
        Action<string> onLine,
        CancellationToken cancellationToken);
}

/// <summary>Builds through the Docker Engine API (Docker.DotNet): the context goes up as the runtime's build-context tar (honouring .dockerignore).</summary>
public sealed class DockerImageBuilder(Uri? endpoint = null) : IImageBuilder
{
    public async Task BuildAsync(
        string contextDirectory,
        string dockerfile,
        IReadOnlyList<string> tags,
        IReadOnlyDictionary<string, string> buildArgs,
        Action<string> onLine,
        CancellationToken cancellationToken)
    {
        if (!Directory.Exists(contextDirectory))
        {
            throw new Execution.StepFailedException($"build context '{contextDirectory}' does not exist");
        }

        if (!File.Exists(Path.Combine(contextDirectory, dockerfile)))
        {
            throw new Execution.StepFailedException($"no {dockerfile} in the build context {contextDirectory}; set build-image.dockerfile");
        }

        using var client = new DockerClientConfiguration(endpoint ?? DefaultEndpoint()).CreateClient();
        // The runtime's build context: what .dockerignore excludes never leaves the machine's disk.
        using var tar = await BuildContext.CreateTarAsync(contextDirectory, cancellationToken).ConfigureAwait(false);
        string? error = null;
        var progress = new Progress(message =>
        {
            if (message.Error is not null || !string.IsNullOrEmpty(message.ErrorMessage))
            {
                error = message.ErrorMessage ?? message.Error?.Message;
                onLine(error ?? "build failed");
            }
            else if (!string.IsNullOrWhiteSpace(message.Stream))
            {
                foreach (var line in message.Stream.TrimEnd('\n').Split('\n'))
                {
                    onLine(line);
                }
            }
        });

        try
        {
            await client.Images.BuildImageFromDockerfileAsync(
                new ImageBuildParameters
                {
                    Dockerfile = dockerfile,
                    Tags = [.. tags],
                    BuildArgs = buildArgs.ToDictionary(),
                    Remove = true,
                    ForceRemove = true,
                    NetworkMode = "host",
                },
                tar,
                [],
                new Dictionary<string, string>(),
                progress,
                cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is DockerApiException or HttpRequestException or IOException or TimeoutException)
        {
            throw new Execution.StepFailedException($"Docker engine at {endpoint ?? DefaultEndpoint()} failed the build: {e.Message}");
        }

        if (error is not null)
        {
            throw new Execution.StepFailedException($"docker build failed: {error}");
        }
    }

    private static Uri DefaultEndpoint() =>
        Environment.GetEnvironmentVariable("DOCKER_HOST") is { Length: > 0 } host ? new Uri(host) : new Uri("unix:///var/run/docker.sock");

    /// <summary>Reports synchronously: Progress&lt;T&gt; would post to the thread pool and lose ordering.</summary>
    private sealed class Progress(Action<JSONMessage> report) : IProgress<JSONMessage>
    {
        public void Report(JSONMessage value) => report(value);
    }
}
