namespace Berth.EndToEnd.Tests.Support;

/// <summary>The fixture of the end-to-end tests that run an app on the Docker driver through the real <c>berth</c>: a temporary
/// folder, a project name of its own (each container's <c>berth.app</c> label), the CLI in the folder and the test images made
/// offline. On dispose the app is taken down and, even when the test failed half-way, the containers labelled with the app are
/// removed, then what the test named with <see cref="RemoveOnDispose"/> (a volume, an image), then the folder.</summary>
public sealed class DockerApp : IAsyncDisposable, IDisposable
{
    private static readonly TimeSpan DockerTimeout = TimeSpan.FromSeconds(60);
    private readonly List<string[]> _leftovers = [];

    /// <param name="prefix">The start of the project name (a few letters); a random suffix makes it the test's own.</param>
    public DockerApp(string prefix)
    {
        Dir = Directory.CreateTempSubdirectory($"berth-{prefix}-docker-").FullName;
        Name = prefix + Guid.NewGuid().ToString("N")[..8];
        Berth = new BerthCli(Dir);
    }

    /// <summary>The app's folder.</summary>
    public string Dir { get; }

    /// <summary>The project name: the app's name in the spec and the <c>berth.app</c> label of its containers.</summary>
    public string Name { get; }

    /// <summary>The <c>berth</c> runner in the app's folder.</summary>
    public BerthCli Berth { get; }

    /// <summary>The full path of <paramref name="name"/> in the app's folder.</summary>
    public string File(string name) => Path.Combine(Dir, name);

    /// <summary>Makes the test images offline; false where there is no Docker engine (a <see cref="DockerFactAttribute"/>
    /// test is skipped then, or fails in CI).</summary>
    public async Task<bool> PrepareAsync()
    {
        if (!Environments.DockerAvailable)
        {
            return false;
        }

        await TestImages.EnsureAsync();
        return true;
    }

    /// <summary>A <c>docker</c> command run on dispose after the app's containers are gone, e.g. <c>volume rm -f NAME_data</c>.</summary>
    public void RemoveOnDispose(params string[] dockerArgs) => _leftovers.Add(dockerArgs);

    /// <summary>The ids of the app's containers, running or not.</summary>
    public string[] Containers() => Docker("ps", "-aq", "--filter", $"label=berth.app={Name}").Out.Split('\n', StringSplitOptions.RemoveEmptyEntries);

    /// <summary>The last 30 lines of the control plane's log, for a timeout's message.</summary>
    public string ControlPlaneLogTail()
    {
        var log = Path.Combine(Berth.State, "control-plane.log");
        return System.IO.File.Exists(log) ? string.Join('\n', System.IO.File.ReadLines(log).TakeLast(30)) : "(none)";
    }

    /// <summary>Runs <c>docker</c> with <paramref name="args"/> to its end (60 s at most, then its tree is killed).</summary>
    public static (int Code, string Out, string Err) Docker(params string[] args) =>
        ChildProcess.RunAsync(ChildProcess.Start("docker", args), DockerTimeout, $"docker {string.Join(' ', args)}").GetAwaiter().GetResult();

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (Environments.DockerAvailable)
            {
                try
                {
                    await Berth.DownAsync();
                }
                finally
                {
                    RemoveLeftovers();
                }
            }
        }
        finally
        {
            Directory.Delete(Dir, recursive: true);
        }
    }

    /// <summary>For a test class with a synchronous Dispose.</summary>
    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();

    private void RemoveLeftovers()
    {
        if (Containers() is { Length: > 0 } left)
        {
            Docker(["rm", "-f", .. left]);
        }

        foreach (var args in _leftovers)
        {
            Docker(args);
        }
    }
}
