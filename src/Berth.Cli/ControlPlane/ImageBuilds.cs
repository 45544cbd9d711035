using Berth.Core.Model;
using Berth.Runtime;
using Berth.Runtime.Docker;

namespace Berth.Cli.ControlPlane;

/// <summary>
/// <c>berth up</c>'s image builds: each Docker service with a <c>build</c> context and an <c>image</c> name gets that image
/// built from its context and Dockerfile before the replicas start, each distinct (context, Dockerfile, tag) once, as
/// <c>docker compose up --build</c>. The service's <c>build.command</c> has already run on the host by then
/// (<see cref="ControlPlaneHost.BuildAsync"/>), so a Dockerfile can copy what the host built.
/// </summary>
internal static class ImageBuilds
{
    /// <summary>The builds to run for <paramref name="app"/>: (service, context folder, Dockerfile, tag).</summary>
    public static IReadOnlyList<(string Service, string Context, string Dockerfile, string Tag)> For(Application app) =>
        [.. app.Services
            // pull_policy never: the image on the engine is used as it is, never built or pulled.
            .Where(s => s.EffectiveRuntime == RuntimeKind.Docker && s.Build?.Context is not null && !string.IsNullOrWhiteSpace(s.Image) && s.PullPolicy != PullPolicy.Never)
            .Select(s => (Service: s.Name,
                Context: Path.IsPathRooted(s.Build!.Context!) ? s.Build.Context! : Path.GetFullPath(Path.Combine(app.BaseDirectory, s.Build.Context!)),
                Dockerfile: s.Build.Dockerfile ?? "Dockerfile",
                Tag: s.Image!))
            .DistinctBy(b => (b.Context, b.Dockerfile, b.Tag))];

    /// <summary>Builds every image of <see cref="For"/>; returns an error to print, or null when all were built.</summary>
    public static async Task<string?> BuildAsync(Application app, TextWriter log, CancellationToken ct)
    {
        var builds = For(app);
        if (builds.Count == 0)
        {
            return null;
        }

        using var connect = CancellationTokenSource.CreateLinkedTokenSource(ct);
        connect.CancelAfter(ControlPlaneHost.DockerConnectTimeout);
        DockerDriver docker;
        try
        {
            docker = await DockerDriver.ConnectAsync(new DockerDriverOptions(), connect.Token);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            return $"cannot build the image of {builds[0].Service} ({builds[0].Tag}): the Docker engine did not answer within {ControlPlaneHost.DockerConnectTimeout.TotalSeconds:0}s";
        }

        using var _ = docker;
        if (!docker.Capabilities.Available)
        {
            return $"cannot build the image of {builds[0].Service} ({builds[0].Tag}): {docker.Capabilities.UnavailableReason}";
        }

        foreach (var (service, context, dockerfile, tag) in builds)
        {
            log.WriteLine($"building image {tag} for {service} from {Path.Combine(context, dockerfile)}");
            try
            {
                await docker.BuildImageAsync(context, tag, dockerfile, ct);
            }
            catch (ReplicaStartException e)
            {
                // The engine's words for "the FROM image is not here and no registry answered" do not say what to do offline.
                var offline = e.Message.Contains("registry", StringComparison.OrdinalIgnoreCase) || e.Message.Contains("pull access denied", StringComparison.OrdinalIgnoreCase);
                return offline
                    ? $"{e.Message}\n  the Dockerfile starts FROM an image that is not on the engine and could not be pulled; make or load it locally first " +
                      "(docker load, or docker import of a root filesystem as samples/shop/docker/base-image.sh does), then run berth up again"
                    : e.Message;
            }
        }

        return null;
    }
}
