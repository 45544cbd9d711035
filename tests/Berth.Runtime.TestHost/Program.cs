using System.Text.Json;
using Berth.Core.Model;
using Berth.Runtime;
using Berth.Runtime.Docker;
using Berth.Runtime.Process;

// usage: Berth.Runtime.TestHost STATE_ROOT APP SIGNAL_DIR PROCESSES CONTAINERS IMAGE
// Starts the replicas, prints one JSON line with their handles, then waits until it is killed.
var (root, app, signals) = (args[0], args[1], args[2]);
var (processes, containers, image) = (int.Parse(args[3]), int.Parse(args[4]), args[5]);

var handles = new List<ReplicaHandle>();
var processDriver = new ProcessDriver(new ProcessDriverOptions { StateRoot = Path.Combine(root, "runtime") });
for (var i = 0; i < processes; i++)
{
    var id = $"proc-{i}";
    var script = $"$| = 1; my $n = 0; until (-e '{signals}/stop-{id}') {{ print qq(tick {{++$n}}\\n); select(undef, undef, undef, 0.1) }} exit {10 + i}";
    handles.Add(await processDriver.StartAsync(
        new ReplicaSpec { App = app, Service = "worker", ReplicaId = id, Command = ["perl", "-e", script], StateDirectory = Path.Combine(root, "replicas", id), MemoryLimit = ByteSize.Parse("64Mi") },
        CancellationToken.None));
}

if (containers > 0)
{
    using var docker = await DockerDriver.ConnectAsync(new DockerDriverOptions(), CancellationToken.None);
    for (var i = 0; i < containers; i++)
    {
        var id = $"ctr-{i}";
        var script = $"n=0; while [ ! -e /signals/stop-{id} ]; do n=$((n+1)); echo tick $n; sleep 0.1; done; exit {20 + i}";
        handles.Add(await docker.StartAsync(
            new ReplicaSpec
            {
                App = app,
                Service = "box",
                ReplicaId = id,
                Image = image,
                Command = ["sh", "-c", script],
                StateDirectory = Path.Combine(root, "replicas", id),
                Volumes = [new VolumeMount { Type = VolumeType.Bind, Source = signals, Target = "/signals", ReadOnly = true }],
                MemoryLimit = ByteSize.Parse("64Mi"),
            },
            CancellationToken.None));
    }
}

Console.Out.WriteLine(JsonSerializer.Serialize(handles));
Console.Out.Flush();
await Task.Delay(Timeout.Infinite);
