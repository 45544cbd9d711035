using Berth.Cli.ControlPlane;
using Berth.Core.Contracts;
using Berth.Core.Model;
using Berth.Runtime;
using Berth.Runtime.Docker;

namespace Berth.Cli.Watch;

/// <summary>The sync actions: copies changed files where a service's replicas read them. A process replica runs on this
/// machine, so its files are copied once into the rule's target folder (every replica of the service shares it); a Docker
/// replica gets a tar extracted into each running container through the engine's archive API (docker cp), and a deleted
/// file removed there with <c>rm -rf</c>, as Compose does.</summary>
internal sealed class FileSync(ApiClient client) : IDisposable
{
    private DockerDriver? _docker;

    /// <summary>Copies the <paramref name="changes"/> (files changed, created or deleted under the rules' paths); returns what was done, for the log.</summary>
    public async Task<string> SyncAsync(Service service, IReadOnlyList<(WatchTarget Target, IReadOnlyCollection<string> Files)> changes, CancellationToken ct)
    {
        var count = changes.Sum(c => c.Files.Count);
        if (service.EffectiveRuntime == RuntimeKind.Process)
        {
            foreach (var (target, files) in changes)
            {
                foreach (var file in files)
                {
                    CopyOnHost(file, target.Filter.TargetOf(file, target.Rule.Target!));
                }
            }

            return $"synced {count} file{(count == 1 ? "" : "s")} into {string.Join(", ", changes.Select(c => c.Target.Rule.Target).Distinct())}";
        }

        var replicas = (await client.GetAsync($"/v1/services/{Uri.EscapeDataString(service.Name)}/replicas", ApiJson.Default.IReadOnlyListReplicaInfo, ct))
            .Where(r => r.ContainerId is not null && r.Phase is "starting" or "running" or "ready")
            .ToList();
        if (replicas.Count == 0)
        {
            return "no running container to sync into";
        }

        var docker = _docker ??= await DockerDriver.ConnectAsync(new DockerDriverOptions(), ct);
        foreach (var replica in replicas)
        {
            foreach (var (target, files) in changes)
            {
                var present = files.Where(File.Exists).ToList();
                if (present.Count > 0)
                {
                    await using var tar = await target.Filter.TarAsync(present, target.Rule.Target!, ct);
                    await docker.CopyIntoAsync(replica.ContainerId!, tar, ct);
                }

                var gone = files.Where(f => !File.Exists(f) && !Directory.Exists(f)).Select(f => target.Filter.TargetOf(f, target.Rule.Target!)).ToList();
                if (gone.Count > 0)
                {
                    var handle = new ReplicaHandle { ReplicaId = replica.Id, App = "", Service = service.Name, Kind = RuntimeKind.Docker, ContainerId = replica.ContainerId };
                    await docker.ExecAsync(handle, ["rm", "-rf", "--", .. gone], null, ct);
                }
            }
        }

        return $"synced {count} file{(count == 1 ? "" : "s")} into {replicas.Count} container{(replicas.Count == 1 ? "" : "s")}";
    }

    public void Dispose() => _docker?.Dispose();

    /// <summary>Copies (through a temporary file and a rename, so a replica never reads half a file) or deletes.</summary>
    private static void CopyOnHost(string source, string destination)
    {
        if (string.Equals(Path.GetFullPath(source), Path.GetFullPath(destination), StringComparison.Ordinal))
        {
            return; // the rule's target is the watched folder itself
        }

        if (File.Exists(source))
        {
            Directory.CreateDirectory(Path.GetDirectoryName(destination)!);
            var temporary = destination + ".berth-sync";
            File.Copy(source, temporary, overwrite: true);
            File.Move(temporary, destination, overwrite: true);
        }
        else if (Directory.Exists(source))
        {
            Directory.CreateDirectory(destination);
        }
        else if (File.Exists(destination))
        {
            File.Delete(destination);
        }
        else if (Directory.Exists(destination))
        {
            Directory.Delete(destination, recursive: true);
        }
    }
}
